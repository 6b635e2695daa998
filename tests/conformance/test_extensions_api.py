"""Custom-node web files, translations and example workflows on the real server: a pack
loaded through extra_model_paths.yaml (the stub pack) is seen as ComfyUI sees it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conformance.client import ComfyClient
from tests.server_process import ServerProcess

PACK = "comfyray_stub_nodes"


@pytest.fixture
def comfy(server: ServerProcess) -> Iterator[ComfyClient]:
    client = ComfyClient(server.url, server.ws_url)
    yield client
    client.close()


def test_pack_web_directory_is_listed_and_served_bare_only(comfy: ComfyClient) -> None:
    urls = comfy.get_json("/api/extensions")
    assert f"/extensions/{PACK}/stub.js" in urls
    # The frontend's own core extensions come first, from the frontend package.
    assert any(url.startswith("/extensions/core/") for url in urls)
    script = comfy.get(f"/extensions/{PACK}/stub.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert b"comfyray.stub" in script.content
    # Static routes are not mirrored under /api, and stay inside the pack's folder.
    assert comfy.get(f"/api/extensions/{PACK}/stub.js").status_code == 404
    escape = comfy.get(f"/extensions/{PACK}/..%2F__init__.py")
    assert escape.status_code in (400, 403, 404)
    assert b"NODE_CLASS_MAPPINGS" not in escape.content


def test_pack_translations_and_example_workflows(comfy: ComfyClient) -> None:
    i18n = comfy.get_json("/i18n")
    assert i18n["en"]["comfyrayStub"] == {"greeting": "Hello from the stub pack"}
    templates = comfy.get_json("/api/workflow_templates")
    assert templates[PACK] == ["stub_flow"]
    workflow = comfy.get(f"/api/workflow_templates/{PACK}/stub_flow.json")
    assert workflow.status_code == 200 and workflow.json()["nodes"] == []
    assert comfy.get(f"/api/workflow_templates/{PACK}/..%2F__init__.py").status_code in (
        400,
        403,
        404,
    )
