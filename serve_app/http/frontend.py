"""The ComfyUI web frontend (comfyui-frontend-package) served at `/` (§1.0).

The static files answer only GET/HEAD requests that no API route claims: the catch-all route
steps aside for every path another route matches (also by a different method, so that route
keeps its 405, and also with the trailing slash toggled, so Starlette keeps redirecting), and
for the prefixes that belong to others (`/api`, `/internal`, `/ws`, `/extensions`). The
workflow templates package, when installed, is served under `/templates` as ComfyUI does.

Files are looked up through a FileStore over the folder, so client paths get the same key
checks (`..`, absolute, NUL, backslash, percent-encoded forms) as every other route.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from serve_app.edge import EdgeServices
from serve_app.extensions.web_files import (
    FRONTEND_PACKAGE,
    TEMPLATES_PACKAGE,
    templates_root,
)
from serve_app.extensions.web_files import frontend_static_root as frontend_root
from serve_app.files.ranges import not_modified
from storage.content_store import StoreError
from storage.file_store import FileStore
from storage.store_keys import StoreKeyError

logger = logging.getLogger(__name__)

INDEX_FILE = "index.html"

# First path segments the frontend never answers: API copies, the internal sub-app, the
# WebSocket, and custom-node web files (served by the extensions routes).
FRONTEND_RESERVED = frozenset({"api", "internal", "ws", "extensions", "templates"})

NO_STORE_INDEX = {
    "Cache-Control": "no-store, must-revalidate",
    "Pragma": "no-cache",
    "Expires": "0",
}
IMMUTABLE = "public, max-age=31536000, immutable"
# ComfyUI's cache middleware: images may be cached for a day; scripts, styles and template
# indexes must always be fetched again.
IMAGE_MAX_AGE = "public, max-age=86400"
NO_STORE = "no-store"
# Anything else is revalidated (ETag / Last-Modified make that a cheap 304).
REVALIDATE = "no-cache"

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".ico", ".svg", ".avif", ".tif", ".tiff"}
)
# Vite's output names: `<name>-<8 base64url chars>.<ext>`, sometimes with `.map` after it.
_HASHED_NAME = re.compile(r"^.+-[A-Za-z0-9_-]{8}\.[A-Za-z0-9]+(\.map)?$")

# Module scripts are refused by browsers unless served as JavaScript; the platform's
# mimetypes table is not relied on for the types the app cannot start without.
MEDIA_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".json": "application/json",
    ".map": "application/json",
    ".wasm": "application/wasm",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".webp": "image/webp",
    ".png": "image/png",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
}


def cache_control(key: str, hashed_dir: str | None = None) -> dict[str, str]:
    """The caching headers of a static file `key` (a path relative to its folder)."""
    if key == INDEX_FILE:
        return dict(NO_STORE_INDEX)
    name = key.rsplit("/", 1)[-1].lower()
    suffix = os.path.splitext(name)[1]
    # Only the bundler's own output folder: copied files below it (assets/images/...) keep
    # their names across releases, however much a name looks like it carries a hash.
    if hashed_dir is not None and key.rpartition("/")[0] == hashed_dir:
        if _HASHED_NAME.match(name):
            return {"Cache-Control": IMMUTABLE}
    if suffix in (".js", ".css") or (name.startswith("index") and suffix == ".json"):
        return {"Cache-Control": NO_STORE}
    if suffix in IMAGE_SUFFIXES:
        return {"Cache-Control": IMAGE_MAX_AGE}
    return {"Cache-Control": REVALIDATE}


def media_type(key: str) -> str | None:
    """None lets FileResponse guess from the platform's table."""
    return MEDIA_TYPES.get(os.path.splitext(key)[1].lower())


class StaticFolder:
    """One read-only folder of web files, every lookup confined by the store's key checks."""

    def __init__(self, root: Path, *, hashed_dir: str | None = None) -> None:
        self.root = root.resolve()
        self.store = FileStore(self.root, fsync=False)
        self.hashed_dir = hashed_dir

    def _find(self, key: str) -> tuple[Path, os.stat_result] | None:
        path = self.store.local_path(key)
        if path is None:
            return None
        try:
            st = path.stat()
        except (OSError, ValueError):
            return None
        return (path, st) if stat.S_ISREG(st.st_mode) else None

    async def respond(self, request: Request, key: str) -> Response:
        try:
            found = await run_in_threadpool(self._find, key)
        except StoreKeyError as exc:
            logger.info("refused static path %r: %s", key, exc)
            return PlainTextResponse(f"{exc.status}: {_REASONS[exc.status]}", exc.status)
        except StoreError as exc:
            logger.warning("static lookup of %r failed: %s", key, exc)
            found = None
        if found is None:
            return PlainTextResponse("404: Not Found", 404)
        path, st = found
        headers = cache_control(key, self.hashed_dir)
        response = FileResponse(path, stat_result=st, headers=headers, media_type=media_type(key))
        if not_modified(
            request.headers.get("if-none-match"),
            request.headers.get("if-modified-since"),
            response.headers["etag"],
            st.st_mtime,
        ):
            kept = {name: response.headers[name] for name in ("etag", "last-modified")}
            return Response(status_code=304, headers={**kept, **headers})
        return response


_REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found"}


class StaticRoute(Route):
    """`{prefix}/{path}` from one folder, for paths that no other route of `app` claims."""

    def __init__(
        self,
        app: FastAPI,
        prefix: str,
        folder: StaticFolder,
        *,
        reserved: frozenset[str] = frozenset(),
        index: str | None = None,
        name: str,
    ) -> None:
        self._app = app
        self._folder = folder
        self._reserved = reserved
        self._index = index
        super().__init__(
            f"{prefix}/{{path:path}}",
            self._serve,
            methods=["GET", "HEAD"],
            include_in_schema=False,
            name=name,
        )

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return Match.NONE, {}
        match, child = super().matches(scope)
        if match is not Match.FULL:
            return Match.NONE, {}
        path: str = child["path_params"]["path"]
        if path.split("/", 1)[0] in self._reserved or self._claimed_elsewhere(scope):
            return Match.NONE, {}
        return match, child

    def _claimed_elsewhere(self, scope: Scope) -> bool:
        path: str = scope["path"]
        toggled = path.rstrip("/") if path.endswith("/") else path + "/"
        variants = [scope] if path == "/" else [scope, {**scope, "path": toggled}]
        # Other static routes are left out: they defer to this one in turn.
        others: list[BaseRoute] = [
            route for route in self._app.router.routes if not isinstance(route, StaticRoute)
        ]
        return any(
            route.matches(variant)[0] is not Match.NONE for variant in variants for route in others
        )

    async def _serve(self, request: Request) -> Response:
        key: str = request.path_params["path"]
        if self._index is not None and key in ("", self._index):
            key = self._index
        if key.strip("/") == "":
            return PlainTextResponse("404: Not Found", 404)
        return await self._folder.respond(request, key)


def install_frontend(app: FastAPI, edge: EdgeServices | None) -> None:
    """Serve the frontend's files under `/` (and templates under `/templates`), after every
    API route."""
    templates = templates_root()
    if templates is not None:
        app.router.routes.append(
            StaticRoute(app, "/templates", StaticFolder(templates), name="templates")
        )
    else:
        logger.info("%s is not installed: /templates answers 404", TEMPLATES_PACKAGE)
    configured = edge.config.front_end_root if edge is not None else ""
    root = frontend_root(configured)
    if root is None or not (root / INDEX_FILE).is_file():
        logger.error(
            "no web frontend: %s has no %s (install comfyui-frontend-package or set front_end_root)",
            root if root is not None else FRONTEND_PACKAGE,
            INDEX_FILE,
        )
        return
    folder = StaticFolder(root, hashed_dir="assets")
    app.router.routes.append(
        StaticRoute(app, "", folder, reserved=FRONTEND_RESERVED, index=INDEX_FILE, name="frontend")
    )
    logger.info("serving the web frontend from %s", root)
