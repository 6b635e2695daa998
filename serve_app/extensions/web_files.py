"""`GET /extensions`: the `.js` files the frontend loads at start-up, and their content types.

The frontend's own extensions live under `extensions/` of its static folder and keep that
URL path (`/extensions/core/...`); a pack's WEB_DIRECTORY is served at
`/extensions/<url-quoted pack name>/`. Hidden files and folders are left out, as ComfyUI's
glob leaves them out.
"""

from __future__ import annotations

import importlib.util
import logging
import mimetypes
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from serve_app.extensions.static import open_folder

logger = logging.getLogger(__name__)

FRONTEND_PACKAGE = "comfyui_frontend_package"
TEMPLATES_PACKAGE = "comfyui_workflow_templates"
FRONTEND_EXTENSIONS = "extensions"
EXTENSION_URL_ROOT = "/extensions"

# Fixed here rather than left to `mimetypes`, whose answer for .js varies by platform and
# Python version; browsers refuse to run a module served with a non-JavaScript type.
CONTENT_TYPES: dict[str, str] = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".map": "application/json",
    ".html": "text/html",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
}


def content_type(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix in CONTENT_TYPES:
        return CONTENT_TYPES[suffix]
    guessed, _encoding = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def frontend_static_root(configured: str) -> Path | None:
    """The frontend's static folder: the configured one, else the installed package's."""
    if configured:
        return Path(configured)
    root = _package_folder(FRONTEND_PACKAGE, "static")
    if root is None:
        logger.warning("%s is not installed: no frontend", FRONTEND_PACKAGE)
    return root


def templates_root() -> Path | None:
    """The workflow templates package's folder (ComfyUI serves it at /templates), if installed."""
    return _package_folder(TEMPLATES_PACKAGE, "templates")


def _package_folder(package: str, folder: str) -> Path | None:
    # find_spec, not import: the packages hold only data, and importing them has no purpose.
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / folder
        if candidate.is_dir():
            return candidate
    return None


def js_files(folder: Path | str, prefix: str = "") -> list[str]:
    """Keys (relative POSIX paths, sorted) of the visible `.js` files under folder/prefix."""
    store = open_folder(folder)
    if store is None:
        return []
    return [
        info.key
        for info in store.list(prefix, recursive=True)
        if info.key.endswith(".js") and not _hidden(info.key)
    ]


def _hidden(key: str) -> bool:
    return any(segment.startswith(".") for segment in key.split("/"))


def extension_urls(frontend_root: Path | None, web_directories: Mapping[str, str]) -> list[str]:
    """The frontend's `/extensions/...` files, then each pack's, in pack order."""
    urls: list[str] = []
    if frontend_root is not None:
        urls.extend("/" + quote(key) for key in js_files(frontend_root, FRONTEND_EXTENSIONS))
    for name, folder in web_directories.items():
        pack = quote(name, safe="")
        urls.extend(f"{EXTENSION_URL_ROOT}/{pack}/{quote(key)}" for key in js_files(folder))
    return urls
