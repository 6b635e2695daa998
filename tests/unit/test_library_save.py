"""SaveImage and PreviewImage: file names, counters, subfolders, PNG chunks and specs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from node_actors import folders
from node_actors.folders import FolderPaths
from node_actors.library import save
from node_actors.library.save import PreviewImage, SaveImage


@pytest.fixture
def fp(tmp_path: Path) -> Iterator[FolderPaths]:
    paths = FolderPaths(tmp_path)
    folders.install(paths)
    yield paths
    folders.uninstall()


def test_save_writes_counted_pngs_and_returns_ui(fp: FolderPaths) -> None:
    images = torch.rand(2, 3, 4, 3)
    out = SaveImage().save_images(images, "ComfyUI")
    assert out["ui"] == {
        "images": [
            {"filename": "ComfyUI_00001_.png", "subfolder": "", "type": "output"},
            {"filename": "ComfyUI_00002_.png", "subfolder": "", "type": "output"},
        ]
    }
    assert out["result"][0] is images
    with Image.open(fp.output_dir / "ComfyUI_00002_.png") as img:
        assert img.size == (4, 3) and img.mode == "RGB"
    again = SaveImage().save_images(images[:1], "ComfyUI")
    assert again["ui"]["images"][0]["filename"] == "ComfyUI_00003_.png"


def test_save_rounds_as_comfyui(fp: FolderPaths) -> None:
    values = torch.tensor([-0.2, 0.0, 0.5, 0.999, 1.0, 1.5])
    image = values.reshape(1, 1, 6, 1).expand(1, 1, 6, 3).contiguous()
    SaveImage().save_images(image, "round")
    with Image.open(fp.output_dir / "round_00001_.png") as img:
        assert np.asarray(img)[0, :, 0].tolist() == [0, 0, 127, 254, 255, 255]


def test_save_into_subfolder_with_batch_number(fp: FolderPaths) -> None:
    out = SaveImage().save_images(torch.zeros(2, 2, 2, 3), "runs/day/img_%batch_num%")
    names = [(i["subfolder"], i["filename"]) for i in out["ui"]["images"]]
    assert names == [("runs/day", "img_0_00001_.png"), ("runs/day", "img_1_00002_.png")]
    assert (fp.output_dir / "runs" / "day" / "img_1_00002_.png").is_file()


def test_save_writes_prompt_and_extra_pnginfo_chunks(fp: FolderPaths) -> None:
    prompt = {"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}}}
    workflow = {"nodes": [{"id": 1}], "links": []}
    SaveImage().save_images(
        torch.zeros(1, 2, 2, 3), "meta", prompt=prompt, extra_pnginfo={"workflow": workflow}
    )
    with Image.open(fp.output_dir / "meta_00001_.png") as img:
        assert json.loads(img.text["prompt"]) == prompt
        assert json.loads(img.text["workflow"]) == workflow
    SaveImage().save_images(torch.zeros(1, 2, 2, 3), "bare")
    with Image.open(fp.output_dir / "bare_00001_.png") as img:
        assert "prompt" not in img.text


def test_save_refuses_prefix_outside_output(fp: FolderPaths) -> None:
    with pytest.raises(ValueError, match="outside the output folder"):
        SaveImage().save_images(torch.zeros(1, 2, 2, 3), "../escape")
    assert not list(fp.base_dir.glob("escape*"))


def test_preview_writes_to_temp_with_random_suffix(fp: FolderPaths) -> None:
    node = PreviewImage()
    assert node.compress_level == 1
    out = node.save_images(torch.zeros(2, 2, 2, 3))
    entries = out["ui"]["images"]
    assert all(e["type"] == "temp" and e["subfolder"] == "" for e in entries)
    pattern = re.compile(r"ComfyUI_temp_([abcdefghijklmnopqrstupvxyz]{5})_0000([12])_\.png")
    matches = [pattern.fullmatch(e["filename"]) for e in entries]
    assert all(matches)
    assert matches[0].group(1) == matches[1].group(1)  # one suffix per node instance
    assert [m.group(2) for m in matches] == ["1", "2"]
    for e in entries:
        assert (fp.temp_dir / e["filename"]).is_file()
    assert not any(fp.output_dir.iterdir())
    assert save.PREVIEW_ALPHABET == "abcdefghijklmnopqrstupvxyz"


def test_save_image_object_info_shape() -> None:
    # §5: SaveImage's input spec exactly, serialized as JSON.
    spec = json.loads(json.dumps(SaveImage.INPUT_TYPES()))
    assert spec == {
        "required": {
            "images": ["IMAGE", {"tooltip": "The images to save."}],
            "filename_prefix": [
                "STRING",
                {
                    "default": "ComfyUI",
                    "tooltip": "The prefix for the file to save. This may include formatting "
                    "information such as %date:yyyy-MM-dd% or %Empty Latent Image.width% to "
                    "include values from nodes.",
                },
            ],
        },
        "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
    }
    assert SaveImage.RETURN_TYPES == ("IMAGE",) and SaveImage.RETURN_NAMES == ("images",)
    assert SaveImage.OUTPUT_NODE is True and SaveImage.CATEGORY == "image"
    assert SaveImage.DESCRIPTION == "Saves the input images to your ComfyUI output directory."
    assert SaveImage.ESSENTIALS_CATEGORY == "Basics"
    assert not hasattr(save, "PYTHON_MODULE")  # python_module "nodes"
    assert save.NODE_DISPLAY_NAME_MAPPINGS == {
        "SaveImage": "Save Image",
        "PreviewImage": "Preview Image",
    }


def test_preview_image_spec() -> None:
    assert PreviewImage.INPUT_TYPES() == {
        "required": {"images": ("IMAGE",)},
        "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
    }
    assert PreviewImage.OUTPUT_NODE is True and PreviewImage.FUNCTION == "save_images"
