"""comfyray's stand-in for ComfyUI's `comfy` package: only the names custom packs need."""
