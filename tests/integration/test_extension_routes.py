"""The extension and /internal routes through the whole app (in-memory cluster, real store
areas on file and S3): JSON shapes, which path copies exist, static files and confinement."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from serve_app.edge import EdgeServices
from serve_app.extensions import NodeReplacement, NodeReplacementRegistry
from serve_app.http.app import build_app
from serve_app.http.memory_backend import InMemoryBackend
from serve_app.http.routes_extensions import build_extensions_router
from serve_app.log_buffer import LogBuffer, install_log_buffer, uninstall_log_buffer
from tests.integration.conftest import make_edge_config

pytestmark = pytest.mark.integration

SECRET = b"TOP SECRET, outside every served folder"


@dataclass
class Site:
    root: Path
    custom_nodes: Path
    frontend: Path
    web_dir: Path
    backend: InMemoryBackend
    edge: EdgeServices
    client: TestClient


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def site(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Site]:
    """A custom_nodes folder with two packs, a frontend folder, and a secret beside them."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    custom_nodes = tmp_path / "custom_nodes"
    frontend = tmp_path / "frontend"
    write(frontend / "extensions" / "core" / "widgets.js", "// core widgets")
    write(frontend / "extensions" / "core" / "nested" / "deep.js", "// deep")
    write(frontend / "extensions" / "core" / "style.css", "body {}")
    write(frontend / "index.html", "<html></html>")

    alpha = custom_nodes / "alpha_pack"
    web_dir = alpha / "web"
    write(web_dir / "main.js", "export const alpha = 1;")
    write(web_dir / "lib" / "helper.js", "export const helper = 2;")
    write(web_dir / "notes.txt", "not a script")
    write(web_dir / ".hidden.js", "hidden")
    (web_dir / "leak.js").symlink_to(tmp_path / "secret.txt")
    (web_dir / "outside").symlink_to(tmp_path)
    write(alpha / "locales" / "en" / "main.json", json.dumps({"nodes": {"A": "Alpha"}}))
    write(alpha / "locales" / "en" / "nodeDefs.json", json.dumps({"A": {"display_name": "A"}}))
    write(alpha / "locales" / "fr" / "main.json", json.dumps({"nodes": {"A": "Alpha fr"}}))
    write(alpha / "example_workflows" / "basic.json", json.dumps({"nodes": []}))
    write(alpha / "examples" / "extra.json", json.dumps({"nodes": [1]}))
    write(alpha / "subgraphs" / "Upscale Chain.json", json.dumps({"definitions": {}}))
    (alpha / "example_workflows" / "leak.json").symlink_to(tmp_path / "secret.txt")

    beta = custom_nodes / "beta pack"
    write(beta / "locales" / "en" / "main.json", json.dumps({"nodes": {"B": "Beta"}}))
    write(beta / "locales" / "en" / "commands.json", json.dumps({"run": "Run"}))
    write(beta / "workflows" / "w.json", "{}")

    config = make_edge_config(
        store_kind,
        tmp_path / "base",
        request,
        custom_node_dirs=[str(custom_nodes)],
        front_end_root=str(frontend),
    )
    edge = EdgeServices.open(config)
    backend = InMemoryBackend(model_files={"checkpoints": ["a.safetensors"]})
    backend.pack_web_directories = {"alpha_pack": str(web_dir), "beta pack": str(beta / "js")}
    with TestClient(build_app(backend, edge)) as client:
        yield Site(tmp_path, custom_nodes, frontend, web_dir, backend, edge, client)


def raw_get(app: Any, path: str) -> tuple[int, bytes]:
    """GET with the path exactly as given: HTTP clients collapse a literal `..` first."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


# --- /extensions ------------------------------------------------------------------------------


def test_extensions_lists_core_then_pack_scripts_at_both_paths(site: Site) -> None:
    expected = [
        "/extensions/core/nested/deep.js",
        "/extensions/core/widgets.js",
        "/extensions/alpha_pack/lib/helper.js",
        "/extensions/alpha_pack/main.js",
    ]
    for path in ("/extensions", "/api/extensions"):
        response = site.client.get(path)
        assert response.status_code == 200
        # Hidden files, non-scripts and links leading out of the folder are left out; the
        # missing WEB_DIRECTORY of "beta pack" adds nothing.
        assert response.json() == expected


def test_extensions_quotes_pack_names(site: Site) -> None:
    write(site.custom_nodes / "beta pack" / "js" / "b.js", "export {};")
    urls = site.client.get("/extensions").json()
    assert "/extensions/beta%20pack/b.js" in urls
    response = site.client.get("/extensions/beta%20pack/b.js")
    assert response.status_code == 200
    assert response.text == "export {};"


def test_pack_and_core_scripts_are_served_as_javascript(site: Site) -> None:
    response = site.client.get("/extensions/alpha_pack/lib/helper.js")
    assert response.status_code == 200
    assert response.text == "export const helper = 2;"
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-length"] == str(len("export const helper = 2;"))
    core = site.client.get("/extensions/core/nested/deep.js")
    assert core.status_code == 200 and core.text == "// deep"
    assert core.headers["content-type"].startswith("text/javascript")
    css = site.client.get("/extensions/core/style.css")
    assert css.headers["content-type"].startswith("text/css")
    txt = site.client.get("/extensions/alpha_pack/notes.txt")
    assert txt.status_code == 200 and txt.headers["content-type"].startswith("text/plain")


def test_a_pack_named_like_a_core_folder_wins(site: Site) -> None:
    shadow = site.root / "shadow"
    write(shadow / "widgets.js", "// the pack's")
    site.backend.pack_web_directories["core"] = str(shadow)
    assert site.client.get("/extensions/core/widgets.js").text == "// the pack's"
    # Only the pack's folder answers for its name.
    assert site.client.get("/extensions/core/nested/deep.js").status_code == 404


def test_extension_files_are_not_mirrored_under_api(site: Site) -> None:
    assert site.client.get("/api/extensions/alpha_pack/main.js").status_code == 404
    assert site.client.get("/api/extensions/core/widgets.js").status_code == 404


def test_missing_extension_files_are_404(site: Site) -> None:
    for path in (
        "/extensions/alpha_pack/nope.js",
        "/extensions/alpha_pack/lib",  # a folder
        "/extensions/unknown_pack/main.js",
        "/extensions/core/missing.js",
        "/extensions/beta%20pack/b.js",  # WEB_DIRECTORY does not exist
    ):
        assert site.client.get(path).status_code == 404, path


@pytest.mark.parametrize(
    "path",
    [
        "/extensions/alpha_pack/%2e%2e/%2e%2e/secret.txt",
        "/extensions/alpha_pack/..%2F..%2Fsecret.txt",
        "/extensions/alpha_pack/%252e%252e/%252e%252e/secret.txt",
        "/extensions/alpha_pack/..%5C..%5Csecret.txt",
        "/extensions/alpha_pack//etc/passwd",
        "/extensions/alpha_pack/%2Fetc%2Fpasswd",
        "/extensions/alpha_pack/main.js%00.txt",
        "/extensions/alpha_pack/leak.js",
        "/extensions/alpha_pack/outside/secret.txt",
        "/extensions/%2e%2e/secret.txt",
        "/extensions/core/..%2F..%2Fsecret.txt",
        "/extensions/core/..%2F..%2Ffrontend/index.html",
        "/extensions/..%2F..%2Fsecret.txt/x",
    ],
)
def test_extension_paths_cannot_leave_their_folder(site: Site, path: str) -> None:
    response = site.client.get(path)
    assert response.status_code in (400, 403, 404), (path, response.status_code)
    assert SECRET not in response.content
    assert b"<html>" not in response.content


@pytest.mark.parametrize(
    "path",
    [
        "/extensions/alpha_pack/../../secret.txt",
        "/extensions/alpha_pack/lib/../../../secret.txt",
        "/extensions/core/../../secret.txt",
        "/api/workflow_templates/alpha_pack/../../../secret.txt",
    ],
)
def test_literal_parent_segments_are_refused(site: Site, path: str) -> None:
    status, body = raw_get(site.client.app, path)
    assert status in (400, 403, 404), (path, status)
    assert SECRET not in body


# --- i18n, templates --------------------------------------------------------------------------


def test_i18n_merges_every_pack_per_language(site: Site) -> None:
    write(site.custom_nodes / "beta pack" / "locales" / "en" / "settings.json", "{broken")
    for path in ("/i18n", "/api/i18n"):
        response = site.client.get(path)
        assert response.status_code == 200
        assert response.json() == {
            "en": {
                "nodes": {"A": "Alpha", "B": "Beta"},
                "nodeDefs": {"A": {"display_name": "A"}},
                "commands": {"run": "Run"},
            },
            "fr": {"nodes": {"A": "Alpha fr"}},
        }


def test_workflow_templates_lists_stems_per_pack(site: Site) -> None:
    for path in ("/workflow_templates", "/api/workflow_templates"):
        assert site.client.get(path).json() == {
            "alpha_pack": ["basic", "leak", "extra"],
            "beta pack": ["w"],
        }


def test_workflow_template_files_are_served_under_api_only(site: Site) -> None:
    response = site.client.get("/api/workflow_templates/alpha_pack/basic.json")
    assert response.status_code == 200
    assert response.json() == {"nodes": []}
    assert response.headers["content-type"].startswith("application/json")
    # Found in the pack's next workflow folder too.
    assert site.client.get("/api/workflow_templates/alpha_pack/extra.json").json() == {"nodes": [1]}
    assert site.client.get("/api/workflow_templates/beta%20pack/w.json").json() == {}
    assert site.client.get("/workflow_templates/alpha_pack/basic.json").status_code == 404
    assert site.client.get("/api/workflow_templates/alpha_pack/none.json").status_code == 404
    assert site.client.get("/api/workflow_templates/no_pack/basic.json").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/api/workflow_templates/alpha_pack/leak.json",
        "/api/workflow_templates/alpha_pack/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "/api/workflow_templates/alpha_pack/..%2F..%2F..%2Fsecret.txt",
        "/api/workflow_templates/alpha_pack/%252e%252e%252f%252e%252e%252fsecret.txt",
        "/api/workflow_templates/alpha_pack/%2Fetc%2Fpasswd",
        "/api/workflow_templates/alpha_pack/..%5Csecret.txt",
        "/api/workflow_templates/alpha_pack/basic.json%00",
        "/api/workflow_templates/%2e%2e/secret.txt",
        "/api/workflow_templates/..%2F..%2Fsecret.txt/x",
    ],
)
def test_workflow_template_paths_cannot_leave_their_folder(site: Site, path: str) -> None:
    response = site.client.get(path)
    assert response.status_code in (400, 403, 404), (path, response.status_code)
    assert SECRET not in response.content


# --- global subgraphs, node replacements ------------------------------------------------------


def test_global_subgraphs_list_and_fetch(site: Site) -> None:
    path = (site.custom_nodes / "alpha_pack" / "subgraphs" / "Upscale Chain.json").absolute()
    entry_id = hashlib.sha256(f"custom_node{path}".encode()).hexdigest()
    summary = {
        "source": "custom_node",
        "name": "Upscale Chain",
        "info": {"node_pack": "custom_nodes.alpha_pack"},
    }
    for prefix in ("", "/api"):
        assert site.client.get(f"{prefix}/global_subgraphs").json() == {entry_id: summary}
        full = site.client.get(f"{prefix}/global_subgraphs/{entry_id}")
        assert full.status_code == 200
        assert full.json() == {**summary, "data": json.dumps({"definitions": {}})}


def test_unknown_global_subgraph_is_null_with_200(site: Site) -> None:
    for path in ("/global_subgraphs/nope", "/api/global_subgraphs/%2e%2e"):
        response = site.client.get(path)
        assert response.status_code == 200
        assert response.content == b"null"


def test_global_subgraphs_are_scanned_once(site: Site) -> None:
    first = site.client.get("/global_subgraphs").json()
    write(site.custom_nodes / "beta pack" / "subgraphs" / "late.json", "{}")
    assert site.client.get("/global_subgraphs").json() == first


def test_node_replacements_are_empty_unless_registered(site: Site) -> None:
    assert site.client.get("/node_replacements").json() == {}
    assert site.client.get("/api/node_replacements").json() == {}
    registry = NodeReplacementRegistry()
    registry.register(NodeReplacement("OldSampler", "NewSampler", old_widget_ids=["seed"]))
    app = FastAPI()
    app.state.edge = site.edge
    app.include_router(build_extensions_router(registry))
    with TestClient(app) as client:
        assert client.get("/node_replacements").json() == {
            "OldSampler": [
                {
                    "new_node_id": "NewSampler",
                    "old_node_id": "OldSampler",
                    "old_widget_ids": ["seed"],
                    "input_mapping": None,
                    "output_mapping": None,
                }
            ]
        }


# --- /internal --------------------------------------------------------------------------------


@pytest.fixture
def captured_logs(site: Site) -> Iterator[LogBuffer]:
    """A buffer on the captured loggers, as the ingress replica installs it."""
    names = ("serve_app", "cluster", "node_actors", "storage")
    levels = {name: logging.getLogger(name).level for name in names}
    buffer = install_log_buffer(LogBuffer(capacity=50))
    site.client.app.state.log_buffer = buffer
    try:
        yield buffer
    finally:
        uninstall_log_buffer(buffer)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def test_internal_logs_text_and_raw(site: Site, captured_logs: LogBuffer) -> None:
    logging.getLogger("cluster.test_probe").info("queue drained after %d prompts", 3)
    logging.getLogger("cluster.test_probe").debug("below the buffer's level")
    text = site.client.get("/internal/logs")
    assert text.status_code == 200
    assert isinstance(text.json(), str)
    assert "INFO cluster.test_probe: queue drained after 3 prompts\n" in text.json()
    assert "below the buffer's level" not in text.json()
    raw = site.client.get("/internal/logs/raw").json()
    assert set(raw) == {"entries", "size"}
    assert set(raw["size"]) == {"cols", "rows"}
    probe = [e for e in raw["entries"] if "queue drained" in e["m"]]
    assert len(probe) == 1
    assert f"{probe[0]['t']} - {probe[0]['m']}" in text.json()


def test_internal_routes_exist_only_bare(site: Site) -> None:
    for path in ("/logs", "/logs/raw", "/folder_paths", "/files/input"):
        assert site.client.get("/internal" + path).status_code == 200, path
        assert site.client.get("/api/internal" + path).status_code == 404, path


def test_logs_subscribe_and_unsubscribe(site: Site, captured_logs: LogBuffer) -> None:
    response = site.client.patch(
        "/internal/logs/subscribe", json={"clientId": "tab-1", "enabled": True}
    )
    assert response.status_code == 200
    assert response.content == b""
    site.client.patch("/internal/logs/subscribe", json={"clientId": "tab-2", "enabled": True})
    assert captured_logs.subscribers() == {"tab-1", "tab-2"}
    site.client.patch("/internal/logs/subscribe", json={"clientId": "tab-1", "enabled": False})
    assert captured_logs.subscribers() == {"tab-2"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"enabled": True}, "clientId"),
        ({"clientId": "c"}, "enabled"),
        ({"clientId": 5, "enabled": True}, "clientId"),
        ({"clientId": "c", "enabled": "yes"}, "enabled"),
        ([], "body"),
        ("not json", "body"),
    ],
)
def test_logs_subscribe_rejects_bad_bodies(site: Site, body: Any, field: str) -> None:
    content = body if isinstance(body, str) else json.dumps(body)
    response = site.client.patch(
        "/internal/logs/subscribe",
        content=content,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert field in response.json()["error"]


def test_internal_folder_paths(site: Site) -> None:
    assert site.client.get("/internal/folder_paths").json() == {
        "checkpoints": ["/models/checkpoints"]
    }


def test_internal_files_lists_top_level_visible_files_newest_first(site: Site) -> None:
    store = site.edge.areas.input
    store.write_bytes("older.png", b"1")
    local = store.local_path("older.png")
    if local is not None:
        past = time.time() - 100
        os.utime(local, (past, past))
    else:
        time.sleep(1.1)  # S3 keeps modification times in whole seconds
    store.write_bytes("newer.png", b"2")
    store.write_bytes(".hidden.png", b"3")
    store.write_bytes("sub/nested.png", b"4")
    site.edge.areas.output.write_bytes("out.png", b"5")
    assert site.client.get("/internal/files/input").json() == [
        "newer.png [input]",
        "older.png [input]",
    ]
    assert site.client.get("/internal/files/output").json() == ["out.png [output]"]
    assert site.client.get("/internal/files/temp").json() == []


@pytest.mark.parametrize(
    "directory_type", ["user", "models", "INPUT", "%2e%2e", "input%00", "input%5C..", " input"]
)
def test_internal_files_refuses_other_directory_types(site: Site, directory_type: str) -> None:
    response = site.client.get(f"/internal/files/{directory_type}")
    assert response.status_code == 400
    assert response.json() == {"error": "Invalid directory type"}


def test_internal_files_paths_with_more_segments_are_not_routes(site: Site) -> None:
    site.edge.areas.input.write_bytes("sub/x.png", b"1")
    for path in ("/internal/files/input%2Fsub", "/internal/files/input/sub"):
        assert site.client.get(path).status_code == 404, path
