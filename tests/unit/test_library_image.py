"""Core image nodes, ImageCrop and RebatchImages on small tensors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from node_actors.library import image as image_nodes
from node_actors.library import image_crop, pixels, rebatch_images
from node_actors.library.image import (
    EmptyImage,
    ImageBatch,
    ImageInvert,
    ImagePadForOutpaint,
    ImageScale,
    ImageScaleBy,
)
from node_actors.library.image_crop import ImageCrop
from node_actors.library.rebatch_images import RebatchImages


def ramp(batch: int, height: int, width: int, channels: int = 3) -> torch.Tensor:
    count = batch * height * width * channels
    return torch.linspace(0, 1, count, dtype=torch.float32).reshape(batch, height, width, channels)


# ---- pixels helpers -----------------------------------------------------------------------


def test_to_uint8_clips_then_truncates() -> None:
    values = torch.tensor([-0.2, 0.0, 0.5, 0.999, 1.0, 1.5])
    assert pixels.to_uint8(values).tolist() == [0, 0, 127, 254, 255, 255]


def test_tensor_pil_round_trip() -> None:
    image = torch.tensor([[[1.0, 0.0, 0.5], [0.25, 0.75, 1.0]]])
    pil = pixels.tensor_to_pil(image)
    assert pil.mode == "RGB" and pil.size == (2, 1)
    back = pixels.pil_to_image(pil)
    assert back.shape == (1, 1, 2, 3) and back.dtype == torch.float32
    assert back[0, 0, 0].tolist() == pytest.approx([1.0, 0.0, 127 / 255])


def test_resize_rejects_unknown_method_and_zero_size() -> None:
    with pytest.raises(ValueError):
        pixels.resize_image(ramp(1, 2, 2), 4, 4, "bislerp")
    with pytest.raises(ValueError):
        pixels.resize_image(ramp(1, 2, 2), 0, 4, "bilinear")


# ---- EmptyImage / ImageInvert -------------------------------------------------------------


def test_empty_image_shape_and_color() -> None:
    (out,) = EmptyImage().generate(width=4, height=3, batch_size=2, color=0xFF8000)
    assert out.shape == (2, 3, 4, 3) and out.dtype == torch.float32
    assert torch.allclose(out[1, 2, 3], torch.tensor([1.0, 128 / 255, 0.0]))
    (black,) = EmptyImage().generate(width=1, height=1)
    assert black.tolist() == [[[[0.0, 0.0, 0.0]]]]


def test_empty_image_input_spec() -> None:
    spec = EmptyImage.INPUT_TYPES()["required"]
    assert list(spec) == ["width", "height", "batch_size", "color"]
    assert spec["color"] == (
        "INT",
        {"default": 0, "min": 0, "max": 0xFFFFFF, "step": 1, "display": "color"},
    )
    assert spec["width"][1] == {"default": 512, "min": 1, "max": 16384, "step": 1}


def test_image_invert() -> None:
    image = torch.tensor([[[[0.0, 0.25, 1.0]]]])
    (out,) = ImageInvert().invert(image)
    assert out.tolist() == [[[[1.0, 0.75, 0.0]]]]


# ---- ImageScale / ImageScaleBy ------------------------------------------------------------


def test_image_scale_zero_by_zero_returns_input() -> None:
    image = ramp(1, 2, 3)
    (out,) = ImageScale().upscale(image, "bilinear", 0, 0, "disabled")
    assert out is image


def test_image_scale_zero_side_keeps_aspect_ratio() -> None:
    image = ramp(2, 4, 8)
    (out,) = ImageScale().upscale(image, "nearest-exact", 0, 2, "disabled")
    assert out.shape == (2, 2, 4, 3)
    (out,) = ImageScale().upscale(image, "nearest-exact", 2, 0, "disabled")
    assert out.shape == (2, 1, 2, 3)


def test_image_scale_nearest_doubles_pixels() -> None:
    image = torch.tensor([[[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]]])  # 1x2
    (out,) = ImageScale().upscale(image, "nearest-exact", 4, 2, "disabled")
    assert out.shape == (1, 2, 4, 3)
    assert out[0, :, :, 0].tolist() == [[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]]


def test_image_scale_center_crop_keeps_the_middle() -> None:
    # 1x4 image, target 1x2 (aspect 2 vs 4): centre crop keeps columns 1 and 2.
    image = torch.tensor([[[[0.1] * 3, [0.2] * 3, [0.3] * 3, [0.4] * 3]]])
    (out,) = ImageScale().upscale(image, "nearest-exact", 2, 1, "center")
    assert torch.allclose(out[0, 0, :, 0], torch.tensor([0.2, 0.3]))
    # Without the crop, nearest-exact samples the centres of each half: columns 1 and 3.
    (plain,) = ImageScale().upscale(image, "nearest-exact", 2, 1, "disabled")
    assert torch.allclose(plain[0, 0, :, 0], torch.tensor([0.2, 0.4]))


def test_image_scale_lanczos_goes_through_pil() -> None:
    image = ramp(1, 6, 5)
    (out,) = ImageScale().upscale(image, "lanczos", 3, 4, "disabled")
    assert out.shape == (1, 4, 3, 3) and out.dtype == torch.float32
    expected = Image.fromarray(pixels.to_uint8(image[0])).resize((3, 4), Image.Resampling.LANCZOS)
    assert np.array_equal(pixels.to_uint8(out[0]), np.asarray(expected))


def test_image_scale_by_rounds_sizes() -> None:
    (out,) = ImageScaleBy().upscale(ramp(1, 3, 3), "bilinear", 2.5)
    assert out.shape == (1, 8, 8, 3)
    (tiny,) = ImageScaleBy().upscale(ramp(1, 3, 3), "area", 0.01)
    assert tiny.shape == (1, 1, 1, 3)


def test_image_scale_input_spec_matches_comfyui() -> None:
    spec = ImageScale.INPUT_TYPES()["required"]
    assert list(spec) == ["image", "upscale_method", "width", "height", "crop"]
    assert spec["upscale_method"] == (["nearest-exact", "bilinear", "area", "bicubic", "lanczos"],)
    assert spec["crop"] == (["disabled", "center"],)
    assert spec["width"] == ("INT", {"default": 512, "min": 0, "max": 16384, "step": 1})
    scale_by = ImageScaleBy.INPUT_TYPES()["required"]["scale_by"]
    assert scale_by == ("FLOAT", {"default": 1.0, "min": 0.01, "max": 8.0, "step": 0.01})


# ---- ImageBatch ---------------------------------------------------------------------------


def test_image_batch_resizes_the_second_image() -> None:
    first = torch.zeros(2, 4, 4, 3)
    second = torch.ones(1, 2, 2, 3)
    (out,) = ImageBatch().batch(first, second)
    assert out.shape == (3, 4, 4, 3)
    assert torch.allclose(out[2], torch.ones(4, 4, 3))
    assert torch.equal(out[:2], first)


def test_image_batch_gives_rgb_an_opaque_alpha() -> None:
    rgba = torch.zeros(1, 2, 2, 4)
    rgb = torch.full((1, 2, 2, 3), 0.5)
    (out,) = ImageBatch().batch(rgba, rgb)
    assert out.shape == (2, 2, 2, 4)
    assert torch.all(out[1, ..., 3] == 1.0) and torch.all(out[1, ..., :3] == 0.5)


# ---- ImagePadForOutpaint ------------------------------------------------------------------


def test_pad_for_outpaint_shapes_fill_and_mask() -> None:
    image = ramp(2, 2, 3)
    out, mask = ImagePadForOutpaint().expand_image(image, 1, 2, 0, 1, feathering=0)
    assert out.shape == (2, 5, 4, 3) and mask.shape == (1, 5, 4)
    assert torch.equal(out[:, 2:4, 1:4, :], image)
    assert torch.all(out[:, 0:2] == 0.5) and torch.all(out[:, :, 0] == 0.5)
    assert torch.all(mask[0, 2:4, 1:4] == 0.0)
    assert torch.all(mask[0, 0:2] == 1.0) and torch.all(mask[0, 4] == 1.0)
    assert torch.all(mask[0, :, 0] == 1.0)


def test_pad_for_outpaint_feathers_only_padded_sides() -> None:
    image = torch.zeros(1, 10, 10, 3)
    _, mask = ImagePadForOutpaint().expand_image(image, 8, 0, 0, 0, feathering=4)
    inner = mask[0, :, 8:]
    # Distance to the padded left edge is the column index: ((4 - d) / 4) ** 2 below 4.
    assert torch.allclose(inner[5, :5], torch.tensor([1.0, 0.5625, 0.25, 0.0625, 0.0]))
    # Top, right and bottom were not padded, so rows near them do not fade.
    assert torch.allclose(inner[0, 4:], torch.zeros(6))
    assert torch.allclose(inner[:, 9], torch.zeros(10))


def test_pad_for_outpaint_ignores_a_feather_wider_than_half() -> None:
    _, mask = ImagePadForOutpaint().expand_image(torch.zeros(1, 6, 6, 3), 8, 8, 8, 8, 3)
    assert torch.all(mask[0, 8:14, 8:14] == 0.0)


def test_pad_for_outpaint_spec() -> None:
    spec = ImagePadForOutpaint.INPUT_TYPES()["required"]
    assert list(spec) == ["image", "left", "top", "right", "bottom", "feathering"]
    assert spec["left"] == ("INT", {"default": 0, "min": 0, "max": 16384, "step": 8})
    assert spec["feathering"][1]["default"] == 40
    assert ImagePadForOutpaint.RETURN_TYPES == ("IMAGE", "MASK")


# ---- ImageCrop ----------------------------------------------------------------------------


def test_image_crop_region_and_clamped_origin() -> None:
    image = ramp(1, 4, 5)
    (out,) = ImageCrop().crop(image, 2, 3, 1, 1)
    assert torch.equal(out, image[:, 1:4, 1:3, :])
    (edge,) = ImageCrop().crop(image, 3, 3, 99, 99)
    assert edge.shape == (1, 1, 1, 3)
    assert torch.equal(edge, image[:, 3:4, 4:5, :])


# ---- RebatchImages ------------------------------------------------------------------------


def test_rebatch_images_regroups_across_the_list() -> None:
    first = ramp(3, 2, 2)
    second = ramp(2, 2, 2) + 5
    (batches,) = RebatchImages().rebatch([first, second], [2])
    assert [b.shape[0] for b in batches] == [2, 2, 1]
    assert torch.equal(batches[0], first[:2])
    assert torch.equal(batches[1], torch.cat([first[2:], second[:1]]))
    assert torch.equal(batches[2], second[1:])
    assert RebatchImages.INPUT_IS_LIST is True and RebatchImages.OUTPUT_IS_LIST == (True,)
    spec = RebatchImages.INPUT_TYPES()["required"]
    assert spec["batch_size"] == ("INT", {"default": 1, "min": 1, "max": 4096})


# ---- registration -------------------------------------------------------------------------


def test_modules_export_names_and_python_modules() -> None:
    assert set(image_nodes.NODE_CLASS_MAPPINGS) == {
        "EmptyImage",
        "ImageInvert",
        "ImageScale",
        "ImageScaleBy",
        "ImageBatch",
        "ImagePadForOutpaint",
    }
    assert not hasattr(image_nodes, "PYTHON_MODULE")  # nodes.py -> "nodes"
    assert image_nodes.NODE_DISPLAY_NAME_MAPPINGS["ImageScale"] == "Upscale Image"
    assert image_crop.PYTHON_MODULE == "comfy_extras.nodes_images"
    assert rebatch_images.PYTHON_MODULE == "comfy_extras.nodes_rebatch"
    assert rebatch_images.NODE_DISPLAY_NAME_MAPPINGS == {"RebatchImages": "Rebatch Images"}
    for module in (image_nodes, image_crop, rebatch_images):
        for cls in module.NODE_CLASS_MAPPINGS.values():
            json.dumps(cls.INPUT_TYPES())
            assert callable(getattr(cls, cls.FUNCTION))
            assert isinstance(cls.RETURN_TYPES, tuple) and isinstance(cls.CATEGORY, str)
