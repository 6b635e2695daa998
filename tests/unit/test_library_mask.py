"""SolidMask, InvertMask, MaskToImage and ImageToMask."""

from __future__ import annotations

import pytest
import torch

from node_actors.library import mask as mask_nodes
from node_actors.library.mask import ImageToMask, InvertMask, MaskToImage, SolidMask


def test_solid_mask() -> None:
    (out,) = SolidMask().solid(0.25, 3, 2)
    assert out.shape == (1, 2, 3) and out.dtype == torch.float32
    assert torch.all(out == 0.25)


def test_invert_mask() -> None:
    (out,) = InvertMask().invert(torch.tensor([[[0.0, 0.25, 1.0]]]))
    assert out.tolist() == [[[1.0, 0.75, 0.0]]]


def test_mask_to_image_repeats_grey_into_rgb() -> None:
    mask = torch.tensor([[[0.0, 0.5]], [[1.0, 0.25]]])  # [2,1,2]
    (image,) = MaskToImage().mask_to_image(mask)
    assert image.shape == (2, 1, 2, 3)
    assert image[1, 0, 1].tolist() == [0.25, 0.25, 0.25]
    (single,) = MaskToImage().mask_to_image(torch.ones(2, 3))
    assert single.shape == (1, 2, 3, 3)


def test_image_to_mask_picks_the_channel() -> None:
    image = torch.tensor([[[[0.1, 0.2, 0.3, 0.4]]]])
    for channel, value in (("red", 0.1), ("green", 0.2), ("blue", 0.3), ("alpha", 0.4)):
        (out,) = ImageToMask().image_to_mask(image, channel)
        assert out.shape == (1, 1, 1)
        assert out.item() == pytest.approx(value)
    with pytest.raises(ValueError, match="no alpha channel"):
        ImageToMask().image_to_mask(image[..., :3], "alpha")


def test_mask_module_registration() -> None:
    assert mask_nodes.PYTHON_MODULE == "comfy_extras.nodes_mask"
    assert set(mask_nodes.NODE_CLASS_MAPPINGS) == {
        "SolidMask",
        "InvertMask",
        "MaskToImage",
        "ImageToMask",
    }
    assert mask_nodes.NODE_DISPLAY_NAME_MAPPINGS["ImageToMask"] == "Convert Image to Mask"
    assert ImageToMask.INPUT_TYPES()["required"]["channel"][0] == ["red", "green", "blue", "alpha"]
    assert SolidMask.INPUT_TYPES()["required"]["value"] == (
        "FLOAT",
        {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01},
    )
    assert MaskToImage.RETURN_TYPES == ("IMAGE",) and ImageToMask.RETURN_TYPES == ("MASK",)
