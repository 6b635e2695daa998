"""Image conversions of /view and /upload/mask (serve_app/files/images.py)."""

from __future__ import annotations

import io

import pytest
from PIL import Image, PngImagePlugin

from serve_app.files.images import ImageError, alpha_png, merge_mask, preview, rgb_png


def png(image: Image.Image, **text: str) -> io.BytesIO:
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info)
    out.seek(0)
    return out


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


RGBA = Image.new("RGBA", (6, 4), (200, 100, 50, 77))
RGB = Image.new("RGB", (6, 4), (1, 2, 3))


def test_webp_preview_keeps_alpha_unless_rgb() -> None:
    result = decode(preview(png(RGBA), "webp", 90, rgb=False))
    assert (result.format, result.mode, result.size) == ("WEBP", "RGBA", (6, 4))
    assert result.getpixel((0, 0))[3] == 77
    assert decode(preview(png(RGBA), "webp", 90, rgb=True)).mode == "RGB"


def test_jpeg_preview_is_rgb_and_quality_matters() -> None:
    noisy = Image.effect_noise((64, 64), 80).convert("RGB")
    low = preview(png(noisy), "jpeg", 5, rgb=False)
    high = preview(png(noisy), "jpeg", 95, rgb=False)
    assert decode(low).format == "JPEG" and decode(low).mode == "RGB"
    assert len(low) < len(high)


def test_preview_of_palette_and_grey_images() -> None:
    assert decode(preview(png(RGB.convert("P")), "webp", 90, rgb=False)).size == (6, 4)
    assert decode(preview(png(RGB.convert("L")), "jpeg", 90, rgb=False)).mode == "RGB"


def test_rgb_png_drops_alpha() -> None:
    result = decode(rgb_png(png(RGBA)))
    assert (result.format, result.mode) == ("PNG", "RGB")
    assert result.getpixel((0, 0)) == (200, 100, 50)


def test_alpha_png_is_black_with_the_alpha() -> None:
    result = decode(alpha_png(png(RGBA)))
    assert (result.format, result.mode) == ("PNG", "RGBA")
    assert result.getpixel((0, 0)) == (0, 0, 0, 77)


def test_alpha_png_of_an_opaque_image_is_opaque() -> None:
    assert decode(alpha_png(png(RGB))).getpixel((0, 0)) == (0, 0, 0, 255)


def test_alpha_png_of_a_grey_alpha_image() -> None:
    assert decode(alpha_png(png(Image.new("LA", (2, 2), (9, 33))))).getpixel((1, 1)) == (
        0,
        0,
        0,
        33,
    )


def test_merge_mask_puts_the_mask_alpha_on_the_original_and_keeps_text() -> None:
    original = Image.new("RGB", (4, 4), (10, 20, 30))
    mask = Image.new("RGBA", (4, 4), (255, 255, 255, 0))
    mask.putpixel((1, 2), (0, 0, 0, 200))
    merged = decode(merge_mask(png(original, workflow='{"w": 1}', prompt="{}"), png(mask)))
    assert (merged.format, merged.mode) == ("PNG", "RGBA")
    assert merged.getpixel((1, 2)) == (10, 20, 30, 200)
    assert merged.getpixel((0, 0)) == (10, 20, 30, 0)
    assert merged.text == {"workflow": '{"w": 1}', "prompt": "{}"}


def test_merge_mask_replaces_an_existing_alpha() -> None:
    merged = decode(merge_mask(png(RGBA), png(Image.new("RGBA", (6, 4), (0, 0, 0, 5)))))
    assert merged.getpixel((0, 0)) == (200, 100, 50, 5)


@pytest.mark.parametrize(
    ("original", "mask", "words"),
    [
        (RGB, RGB, "no alpha"),
        (RGB, Image.new("RGBA", (3, 3)), "3x3"),
    ],
)
def test_merge_mask_refusals(original: Image.Image, mask: Image.Image, words: str) -> None:
    with pytest.raises(ImageError, match=words):
        merge_mask(png(original), png(mask))


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image", png(RGB).getvalue()[:40], b"GIF89a" + b"\x00" * 20],
)
def test_unreadable_bytes_are_image_errors(data: bytes) -> None:
    for convert in (
        lambda f: preview(f, "webp", 90, rgb=False),
        rgb_png,
        alpha_png,
        lambda f: merge_mask(f, png(RGBA)),
        lambda f: merge_mask(png(RGBA), f),
    ):
        with pytest.raises(ImageError):
            convert(io.BytesIO(data))


def test_unknown_preview_format_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="preview format"):
        preview(png(RGB), "png", 90, rgb=False)
