"""Image conversions of the file routes: /view previews and channels, the merged mask upload.

Inputs are seekable file objects (spooled copies of store objects); outputs are the encoded
bytes of a new, small image. Untrusted bytes: every decoder failure is an ImageError, which
the routes answer with 400.
"""

from __future__ import annotations

import io
import logging
from typing import IO

from PIL import Image, PngImagePlugin

logger = logging.getLogger(__name__)

PREVIEW_FORMATS = ("webp", "jpeg")
MASK_PNG_COMPRESS_LEVEL = 4


class ImageError(ValueError):
    """The bytes are not an image this server can convert."""


def _open(fileobj: IO[bytes], what: str) -> Image.Image:
    try:
        fileobj.seek(0)
        image = Image.open(fileobj)
        image.load()
    # Decoders of hostile or truncated files raise many types (OSError, SyntaxError,
    # ValueError, EOFError, DecompressionBombError, struct.error...): all mean "not usable".
    except Exception as exc:
        raise ImageError(f"{what} is not a readable image ({type(exc).__name__})") from None
    return image


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    try:
        image.save(out, format=fmt, **options)
    except Exception as exc:  # an unusual mode or size the encoder refuses
        raise ImageError(f"cannot encode the image as {fmt} ({type(exc).__name__})") from None
    return out.getvalue()


def _displayable(image: Image.Image) -> Image.Image:
    """RGB or RGBA, the modes every preview encoder takes."""
    if image.mode in ("RGB", "RGBA"):
        return image
    try:
        return image.convert("RGBA" if image.has_transparency_data else "RGB")
    except Exception as exc:
        raise ImageError(f"cannot convert a {image.mode} image ({type(exc).__name__})") from None


def _alpha(image: Image.Image) -> Image.Image | None:
    """The alpha channel (mode L), or None when the image has no transparency."""
    if "A" in image.getbands():
        return image.getchannel("A")
    if image.has_transparency_data:
        return _displayable(image).getchannel("A")
    return None


def preview(fileobj: IO[bytes], fmt: str, quality: int, *, rgb: bool) -> bytes:
    """The image re-encoded as webp or jpeg; `rgb` (and always jpeg) drops the alpha."""
    if fmt not in PREVIEW_FORMATS:
        raise ValueError(f"preview format must be one of {PREVIEW_FORMATS}, not {fmt!r}")
    image = _displayable(_open(fileobj, "the file"))
    if rgb or fmt == "jpeg":
        image = image.convert("RGB")
    return _encode(image, fmt.upper(), quality=max(0, min(100, quality)))


def rgb_png(fileobj: IO[bytes]) -> bytes:
    """The image as a PNG without its alpha (`channel=rgb`)."""
    image = _displayable(_open(fileobj, "the file")).convert("RGB")
    return _encode(image, "PNG")


def alpha_png(fileobj: IO[bytes]) -> bytes:
    """An RGBA PNG whose colour is black and whose alpha is the image's (`channel=a`).

    An image without transparency gives an opaque result (alpha 255), as in ComfyUI.
    """
    image = _open(fileobj, "the file")
    alpha = _alpha(image) or Image.new("L", image.size, 255)
    result = Image.new("RGBA", image.size, (0, 0, 0, 0))
    result.putalpha(alpha)
    return _encode(result, "PNG")


def _png_text(image: Image.Image) -> PngImagePlugin.PngInfo:
    """The PNG text chunks of `image` (workflow, prompt, ...), ready to be written again."""
    info = PngImagePlugin.PngInfo()
    text = getattr(image, "text", None)
    if isinstance(text, dict):
        for key, value in text.items():
            info.add_text(str(key), str(value))
    return info


def merge_mask(original: IO[bytes], mask: IO[bytes]) -> bytes:
    """A PNG of the original's colour with the mask's alpha, keeping the original's text chunks.

    What the frontend's mask editor saves: it uploads only the painted alpha, and the
    server puts it on the image it was painted over.
    """
    base = _open(original, "the original image")
    painted = _open(mask, "the mask image")
    alpha = _alpha(painted)
    if alpha is None:
        raise ImageError("the mask image has no alpha channel")
    if painted.size != base.size:
        raise ImageError(
            f"the mask is {painted.size[0]}x{painted.size[1]} but the original is "
            f"{base.size[0]}x{base.size[1]}"
        )
    text = _png_text(base)
    merged = _displayable(base).convert("RGBA")
    merged.putalpha(alpha)
    return _encode(merged, "PNG", pnginfo=text, compress_level=MASK_PNG_COMPRESS_LEVEL)
