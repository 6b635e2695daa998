"""comfyray's stand-in for ComfyUI's `comfy_execution` package (names packs import)."""
