"""SaveImage and PreviewImage: write IMAGE batches as PNG files, as ComfyUI's nodes.py does.

SaveImage writes `<prefix>_<counter:05>_.png` into the output folder with the prompt and the
extra_pnginfo entries as PNG text chunks; PreviewImage writes the same way into the temp
folder, faster (compress level 1) and under a per-instance random prefix.
"""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path
from typing import Any

import torch
from PIL.PngImagePlugin import PngInfo

from node_actors import context, folders
from node_actors.library.pixels import tensor_to_pil

logger = logging.getLogger(__name__)

# ComfyUI's alphabet for the preview suffix: no "w", and "p" twice.
PREVIEW_ALPHABET = "abcdefghijklmnopqrstupvxyz"


def png_metadata(prompt: Any, extra_pnginfo: Any) -> PngInfo:
    """`prompt` and each extra_pnginfo key (usually `workflow`) as JSON tEXt chunks."""
    info = PngInfo()
    if prompt is not None:
        info.add_text("prompt", json.dumps(prompt))
    if isinstance(extra_pnginfo, dict):
        for key, value in extra_pnginfo.items():
            info.add_text(str(key), json.dumps(value))
    elif extra_pnginfo is not None:
        logger.warning("extra_pnginfo is a %s, not a dict; not written", type(extra_pnginfo))
    return info


class SaveImage:
    def __init__(self) -> None:
        self.type = "output"
        self.prefix_append = ""
        self.compress_level = 4

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The images to save."}),
                "filename_prefix": (
                    "STRING",
                    {
                        "default": "ComfyUI",
                        "tooltip": "The prefix for the file to save. This may include formatting "
                        "information such as %date:yyyy-MM-dd% or %Empty Latent Image.width% to "
                        "include values from nodes.",
                    },
                ),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    FUNCTION = "save_images"
    OUTPUT_NODE = True
    CATEGORY = "image"
    ESSENTIALS_CATEGORY = "Basics"
    DESCRIPTION = "Saves the input images to your ComfyUI output directory."
    SEARCH_ALIASES = [
        "save",
        "save image",
        "export image",
        "output image",
        "write image",
        "download",
    ]

    def target_dir(self) -> Path:
        return folders.installed().output_dir

    def save_images(
        self,
        images: torch.Tensor,
        filename_prefix: str = "ComfyUI",
        prompt: Any = None,
        extra_pnginfo: Any = None,
    ) -> dict[str, Any]:
        paths = folders.installed()
        full_folder, base, counter, subfolder, _ = paths.get_save_image_path(
            filename_prefix + self.prefix_append,
            self.target_dir(),
            images[0].shape[1],
            images[0].shape[0],
        )
        metadata = png_metadata(prompt, extra_pnginfo)
        results = []
        for batch_number, image in enumerate(images):
            name = base.replace("%batch_num%", str(batch_number))
            file = f"{name}_{counter:05}_.png"
            tensor_to_pil(image).save(
                os.path.join(full_folder, file),
                pnginfo=metadata,
                compress_level=self.compress_level,
            )
            results.append({"filename": file, "subfolder": subfolder, "type": self.type})
            counter += 1
        logger.debug(
            "%s: wrote %d %s image(s) to %s",
            context.log_ids(),
            len(results),
            self.type,
            full_folder,
        )
        return {"ui": {"images": results}, "result": (images,)}


class PreviewImage(SaveImage):
    def __init__(self) -> None:
        super().__init__()
        self.type = "temp"
        # Fixed per instance: the worker keeps node instances, so a node's previews share it.
        self.prefix_append = "_temp_" + "".join(random.choice(PREVIEW_ALPHABET) for _ in range(5))
        self.compress_level = 1

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {"images": ("IMAGE",)},
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    DESCRIPTION = "Preview the images without saving them to the ComfyUI output directory."
    SEARCH_ALIASES = [
        "preview",
        "preview image",
        "show image",
        "view image",
        "display image",
        "image viewer",
    ]

    def target_dir(self) -> Path:
        return folders.installed().temp_dir


NODE_CLASS_MAPPINGS = {"SaveImage": SaveImage, "PreviewImage": PreviewImage}

NODE_DISPLAY_NAME_MAPPINGS = {"SaveImage": "Save Image", "PreviewImage": "Preview Image"}
