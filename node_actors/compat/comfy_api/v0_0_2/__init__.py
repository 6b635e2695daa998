"""`comfy_api.v0_0_2`: the same surface as `comfy_api.latest`."""

from comfy_api.latest import ComfyAPI, ComfyAPISync, ComfyExtension, io, ui

__all__ = ["ComfyAPI", "ComfyAPISync", "ComfyExtension", "io", "ui"]
