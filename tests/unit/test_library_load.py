"""LoadImage and LoadImageMask: pixels, masks, frames, hashing, validation, confinement."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from node_actors import folders
from node_actors.folders import FolderPaths
from node_actors.library import load
from node_actors.library.load import LoadImage, LoadImageMask


@pytest.fixture
def fp(tmp_path: Path) -> Iterator[FolderPaths]:
    paths = FolderPaths(tmp_path / "comfy")
    folders.install(paths)
    yield paths
    folders.uninstall()


def write_rgba(path: Path) -> None:
    pixels = np.zeros((2, 3, 4), dtype=np.uint8)
    pixels[..., 0] = 255  # red
    pixels[..., 1] = [[0, 51, 102], [153, 204, 255]]  # green ramp
    pixels[..., 3] = [[255, 0, 255], [51, 255, 255]]
    Image.fromarray(pixels, "RGBA").save(path)


def test_load_rgba_gives_image_and_inverted_alpha(fp: FolderPaths) -> None:
    write_rgba(fp.input_dir / "a.png")
    image, mask = LoadImage().load_image("a.png")
    assert image.shape == (1, 2, 3, 3) and image.dtype == torch.float32
    assert torch.all(image[..., 0] == 1.0)
    assert image[0, 1, 2, 1].item() == 1.0 and image[0, 0, 1, 1].item() == pytest.approx(0.2)
    assert mask.shape == (1, 2, 3)
    assert torch.allclose(mask[0], torch.tensor([[0.0, 1.0, 0.0], [0.8, 0.0, 0.0]]))


def test_load_without_alpha_gives_64x64_zero_mask(fp: FolderPaths) -> None:
    Image.new("RGB", (5, 4), (10, 20, 30)).save(fp.input_dir / "rgb.jpg", quality=100)
    image, mask = LoadImage().load_image("rgb.jpg")
    assert image.shape == (1, 4, 5, 3)
    assert mask.shape == (1, 64, 64) and torch.all(mask == 0)


def test_load_multi_frame_gif_is_batched(fp: FolderPaths) -> None:
    frames = [Image.new("RGB", (4, 4), (v, v, v)) for v in (0, 128, 255)]
    frames[0].save(fp.input_dir / "anim.gif", save_all=True, append_images=frames[1:])
    image, mask = LoadImage().load_image("anim.gif")
    assert image.shape == (3, 4, 4, 3)
    assert image[:, 0, 0, 0].tolist() == pytest.approx([0.0, 128 / 255, 1.0], abs=0.02)
    assert mask.shape[0] == 3


def test_load_16_bit_greyscale(fp: FolderPaths) -> None:
    array = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(array).save(fp.input_dir / "deep.png")
    image, _ = LoadImage().load_image("deep.png")
    assert image.shape == (1, 1, 3, 3)
    assert image[0, 0, :, 1].tolist() == pytest.approx([0.0, 0.5, 1.0], abs=1e-4)


def test_load_annotated_output_file(fp: FolderPaths) -> None:
    write_rgba(fp.output_dir / "made.png")
    image, _ = LoadImage().load_image("made.png [output]")
    assert image.shape == (1, 2, 3, 3)


def test_load_refuses_paths_outside_input(fp: FolderPaths) -> None:
    write_rgba(fp.base_dir / "secret.png")
    for name in ("../secret.png", str(fp.base_dir / "secret.png"), "x\x00.png"):
        with pytest.raises(ValueError):
            LoadImage().load_image(name)
        assert LoadImage.VALIDATE_INPUTS(name) == f"Invalid image file: {name}"
        with pytest.raises(ValueError):
            LoadImage.IS_CHANGED(name)


def test_is_changed_is_the_file_sha256(fp: FolderPaths) -> None:
    path = fp.input_dir / "a.png"
    write_rgba(path)
    first = LoadImage.IS_CHANGED("a.png")
    assert first == hashlib.sha256(path.read_bytes()).hexdigest()
    Image.new("RGB", (1, 1)).save(path)
    assert LoadImage.IS_CHANGED("a.png") != first
    assert LoadImageMask.IS_CHANGED("a.png", "red") == LoadImage.IS_CHANGED("a.png")


def test_validate_inputs(fp: FolderPaths) -> None:
    write_rgba(fp.input_dir / "a.png")
    assert LoadImage.VALIDATE_INPUTS("a.png") is True
    assert LoadImage.VALIDATE_INPUTS("missing.png") == "Invalid image file: missing.png"
    assert LoadImageMask.VALIDATE_INPUTS("a.png") is True


def test_load_image_combo_lists_input_images(fp: FolderPaths) -> None:
    write_rgba(fp.input_dir / "b.png")
    write_rgba(fp.input_dir / "a.png")
    (fp.input_dir / "notes.txt").write_text("x")
    spec = json.loads(json.dumps(LoadImage.INPUT_TYPES()))
    assert spec == {"required": {"image": [["a.png", "b.png"], {"image_upload": True}]}}
    assert LoadImage.RETURN_TYPES == ("IMAGE", "MASK") and LoadImage.CATEGORY == "image"
    mask_spec = LoadImageMask.INPUT_TYPES()["required"]
    assert list(mask_spec) == ["image", "channel"]
    assert mask_spec["channel"] == (["alpha", "red", "green", "blue"],)
    assert not hasattr(load, "PYTHON_MODULE")
    assert load.NODE_DISPLAY_NAME_MAPPINGS["LoadImageMask"] == "Load Image (as Mask)"


def test_load_image_mask_channels(fp: FolderPaths) -> None:
    write_rgba(fp.input_dir / "a.png")
    (alpha,) = LoadImageMask().load_image_mask("a.png", "alpha")
    assert torch.allclose(alpha[0], torch.tensor([[0.0, 1.0, 0.0], [0.8, 0.0, 0.0]]))
    (red,) = LoadImageMask().load_image_mask("a.png", "red")
    assert red.shape == (1, 2, 3) and torch.all(red == 1.0)
    (green,) = LoadImageMask().load_image_mask("a.png", "green")
    assert green[0, 0].tolist() == pytest.approx([0.0, 0.2, 0.4])
    with pytest.raises(ValueError):
        LoadImageMask().load_image_mask("a.png", "purple")
