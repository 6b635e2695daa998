"""Routes for custom-node web files, i18n, workflow templates, global subgraphs, node replacements.

The JSON routes are served bare and under `/api` (RouteFamily.COMFY). The two static file
routes are served at one path each, as ComfyUI's static routes are never mirrored:
`/extensions/<pack>/<file>` only bare and `/api/workflow_templates/<pack>/<file>` only under
`/api`; build_extension_files_router holds them, mounted with RouteFamily.INTERNAL (as is).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from serve_app.edge import EdgeDep, EdgeServices
from serve_app.extensions import (
    NodeReplacementRegistry,
    StaticFile,
    SubgraphCatalogs,
    build_translations,
    content_type,
    extension_urls,
    find_static,
    frontend_static_root,
    template_folders,
    workflow_templates,
)
from serve_app.http.backend import BackendDep, ComfyBackend
from serve_app.http.responses import json_response
from storage.content_store import ObjectNotFoundError, StoreError
from storage.store_keys import StoreKeyError

logger = logging.getLogger(__name__)

API_PREFIX = "/api"
EXTENSIONS_PATH = "/extensions"
TEMPLATES_PATH = "/workflow_templates"
# ComfyUI's cache middleware: scripts and styles must be refetched after an update.
NO_STORE_SUFFIXES = (".js", ".css")


class SubgraphNodePack(BaseModel):
    node_pack: str


class GlobalSubgraphInfo(BaseModel):
    """A global subgraph blueprint, without its data (the listing's entries)."""

    source: str
    name: str
    info: SubgraphNodePack


class GlobalSubgraphData(GlobalSubgraphInfo):
    """A global subgraph blueprint with `data`, its JSON text."""

    data: str


def _not_found() -> Response:
    return json_response({"error": "Not Found"}, 404)


async def _serve_static(folders: list[Path], *parts: str) -> Response:
    """Stream the file `parts` names from the first folder holding it (confined)."""
    try:
        found: StaticFile = await run_in_threadpool(find_static, folders, *parts)
        chunks = await run_in_threadpool(found.chunks)
    except StoreKeyError as exc:
        logger.info("refused static path %r: %s", "/".join(parts), exc)
        return json_response({"error": str(exc)}, exc.status)
    except ObjectNotFoundError:
        return _not_found()
    except StoreError as exc:
        logger.warning("static file %r cannot be read: %s", "/".join(parts), exc)
        return _not_found()
    headers = {"Content-Length": str(found.size)}
    if found.key.endswith(NO_STORE_SUFFIXES):
        headers["Cache-Control"] = "no-store"
    return StreamingResponse(
        iterate_in_threadpool(chunks), media_type=content_type(found.key), headers=headers
    )


async def get_extension_file(pack: str, path: str, edge: EdgeDep, backend: BackendDep) -> Response:
    web_directories = await backend.web_directories()
    if pack in web_directories:
        # A pack's folder answers for its name, even over the frontend's own files.
        return await _serve_static([Path(web_directories[pack])], path)
    root = frontend_static_root(edge.config.front_end_root)
    if root is None:
        return _not_found()
    return await _serve_static([root], EXTENSIONS_PATH.lstrip("/"), pack, path)


async def custom_node_dirs(edge: EdgeServices, backend: ComfyBackend) -> list[str]:
    """The configured custom_nodes folder, then those extra_model_paths.yaml adds (as the
    workers loaded them), as ComfyUI's folder_paths lists `custom_nodes`."""
    loaded = (await backend.folder_paths()).get("custom_nodes", [])
    return list(dict.fromkeys([*edge.config.custom_node_dirs, *loaded]))


async def get_workflow_template_file(
    module: str, file: str, edge: EdgeDep, backend: BackendDep
) -> Response:
    dirs = await custom_node_dirs(edge, backend)
    folders = await run_in_threadpool(template_folders, dirs, module)
    if not folders:
        return _not_found()
    return await _serve_static(folders, file)


def build_extension_files_router() -> APIRouter:
    """The static file routes, each at its one path; mount with RouteFamily.INTERNAL."""
    router = APIRouter()
    router.add_api_route(
        EXTENSIONS_PATH + "/{pack}/{path:path}",
        get_extension_file,
        methods=["GET"],
        include_in_schema=False,
    )
    router.add_api_route(
        API_PREFIX + TEMPLATES_PATH + "/{module}/{file:path}",
        get_workflow_template_file,
        methods=["GET"],
        include_in_schema=False,
    )
    return router


def build_extensions_router(replacements: NodeReplacementRegistry | None = None) -> APIRouter:
    """Routes declared at their bare paths; mount them with RouteFamily.COMFY.

    `replacements` is where node packs register replacements (empty by default).
    """
    registry = replacements if replacements is not None else NodeReplacementRegistry()
    subgraphs = SubgraphCatalogs()

    async def get_extensions(edge: EdgeDep, backend: BackendDep) -> Response:
        web_directories = await backend.web_directories()
        root = frontend_static_root(edge.config.front_end_root)
        return json_response(await run_in_threadpool(extension_urls, root, web_directories))

    async def get_i18n(edge: EdgeDep, backend: BackendDep) -> Response:
        dirs = await custom_node_dirs(edge, backend)
        return json_response(await run_in_threadpool(build_translations, dirs))

    async def get_workflow_templates(edge: EdgeDep, backend: BackendDep) -> Response:
        dirs = await custom_node_dirs(edge, backend)
        return json_response(await run_in_threadpool(workflow_templates, dirs))

    async def get_global_subgraphs(edge: EdgeDep, backend: BackendDep) -> Response:
        dirs = await custom_node_dirs(edge, backend)
        catalog = subgraphs.for_folders(dirs, edge.config.base_dir)
        return json_response(await run_in_threadpool(catalog.listing))

    async def get_global_subgraph(id: str, edge: EdgeDep, backend: BackendDep) -> Response:
        dirs = await custom_node_dirs(edge, backend)
        catalog = subgraphs.for_folders(dirs, edge.config.base_dir)
        # ComfyUI answers an unknown id with 200 and null, not 404.
        return json_response(await run_in_threadpool(catalog.get, id))

    async def get_node_replacements() -> Response:
        return json_response(registry.as_json())

    router = APIRouter()
    router.add_api_route(
        EXTENSIONS_PATH,
        get_extensions,
        methods=["GET"],
        operation_id="getExtensions",
        tags=["extensions"],
        summary="List frontend extension JS file paths",
        description="URL paths of the frontend's own `/extensions/core/...` scripts and of "
        "every `.js` file in each custom node pack's WEB_DIRECTORY, which the frontend loads "
        "on startup.",
        response_model=list[str],
    )
    router.add_api_route(
        TEMPLATES_PATH,
        get_workflow_templates,
        methods=["GET"],
        operation_id="getWorkflowTemplates",
        tags=["extensions"],
        summary="Get workflow template mappings",
        description="`{pack folder name: [workflow names]}` from each pack's "
        "`example_workflows` (or `example`, `examples`, `workflow`, `workflows`) folder; the "
        "files are served at `/api/workflow_templates/<pack>/<name>.json`.",
        response_model=dict[str, list[str]],
    )
    router.add_api_route(
        "/i18n",
        get_i18n,
        methods=["GET"],
        operation_id="getI18n",
        tags=["extensions"],
        summary="Get internationalisation translation strings",
        description="`{lang: {...}}` merged from each pack's `locales/<lang>/main.json`, plus "
        "`nodeDefs.json`, `commands.json` and `settings.json` under those keys.",
        response_model=dict[str, Any],
    )
    router.add_api_route(
        "/global_subgraphs",
        get_global_subgraphs,
        methods=["GET"],
        operation_id="getGlobalSubgraphs",
        tags=["subgraph"],
        summary="List global subgraph blueprints",
        description="Subgraph ids to their metadata (without `data`), from each pack's "
        "`subgraphs/*.json` and the server's `blueprints/*.json`.",
        response_model=dict[str, GlobalSubgraphInfo],
    )
    router.add_api_route(
        "/global_subgraphs/{id}",
        get_global_subgraph,
        methods=["GET"],
        operation_id="getGlobalSubgraph",
        tags=["subgraph"],
        summary="Get a global subgraph with full data",
        description="The blueprint with `data`, its JSON text; `null` (with 200, as ComfyUI "
        "answers) when the id is unknown.",
        response_model=GlobalSubgraphData,
    )
    router.add_api_route(
        "/node_replacements",
        get_node_replacements,
        methods=["GET"],
        operation_id="getNodeReplacements",
        tags=["node"],
        summary="Get node replacement mappings",
        description="Deprecated node class names to the nodes that replace them, "
        '`{old_class: [{"new_node_id", "old_node_id", "old_widget_ids", "input_mapping", '
        '"output_mapping"}]}`.',
        response_model=dict[str, Any],
    )
    return router
