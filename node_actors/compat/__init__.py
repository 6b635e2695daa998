"""ComfyUI-named modules for custom node packs (folder_paths, comfy, comfy_execution,
comfy_api, server).

Import them only by their top-level names after `node_actors.compat_path.install_compat_path()`
(never as `node_actors.compat.<name>`): a second import path would create second copies of
classes such as GraphBuilder's prefix state or the V3 ComfyNode base. This file exists so
that packaging tools ship the folder.
"""
