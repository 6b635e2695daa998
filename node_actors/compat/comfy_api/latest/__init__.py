"""`comfy_api.latest`: the V3 node API (io, ui, ComfyExtension, ComfyAPI) for custom packs."""

from . import _io as io
from . import _ui as ui
from ._api import ComfyAPI, ComfyAPISync, ComfyExtension

ComfyAPI_latest = ComfyAPI  # noqa: N816 - ComfyUI's public name

__all__ = ["ComfyAPI", "ComfyAPISync", "ComfyAPI_latest", "ComfyExtension", "io", "ui"]
