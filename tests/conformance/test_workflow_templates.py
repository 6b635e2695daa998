"""ComfyUI's classic workflow templates, unchanged, run end to end on tiny checkpoints.

The templates ship in `comfyui-workflow-templates==0.1.30` (UI format, a test dependency);
`comfyui-autograph` converts each to API format against this server's /object_info, exactly
as a client would, and the prompt is queued as converted. The model, LoRA, embedding and
input-image names the templates ask for exist in the server's folders (tests/model_library.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.client import ComfyClient
from tests.server_process import ServerProcess

TEMPLATES = [
    "default",  # text to image
    "image2image",
    "lora",
    "lora_multiple",
    "inpaint_example",
    "inpaint_model_outpainting",
    "hiresfix_latent_workflow",
    "embedding_example",
    "area_composition",
    "sdxl_simple_example",
    "sdxl_refiner_prompt_example",
]


def template_path(name: str) -> Path:
    import comfyui_workflow_templates

    return Path(comfyui_workflow_templates.__file__).parent / "templates" / f"{name}.json"


@pytest.fixture
def comfy(server: ServerProcess) -> Iterator[ComfyClient]:
    client = ComfyClient(server.url, server.ws_url)
    try:
        yield client
    finally:
        client.close()


def convert(name: str, server: ServerProcess) -> dict[str, Any]:
    import autograph

    api = autograph.convert(template_path(name), server_url=server.url)
    return json.loads(json.dumps(dict(api)))


# The largest (area_composition: a 1088x1920 second pass) takes about 3 minutes on 2 cores.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", TEMPLATES)
def test_template_runs_unchanged(
    comfy: ComfyClient, server: ServerProcess, base_dir: Path, name: str
) -> None:
    prompt = convert(name, server)
    # The converted prompt keeps the template's own values: sizes, steps, samplers, seeds.
    ui = json.loads(template_path(name).read_text())
    ui_types = {n["type"] for n in ui["nodes"]} - {
        "MarkdownNote",
        "Note",
        "PrimitiveNode",
        "Reroute",
    }
    assert {n["class_type"] for n in prompt.values()} == ui_types
    response = comfy.post_prompt(prompt, client_id=f"template-{name}")
    assert response.status_code == 200, response.text
    entry = comfy.wait_history(response.json()["prompt_id"], timeout=600)
    assert entry["status"]["status_str"] == "success", entry["status"]
    images = [image for output in entry["outputs"].values() for image in output.get("images", [])]
    assert images
    for image in images:
        folder = "output" if image["type"] == "output" else "temp"
        assert (base_dir / folder / image["subfolder"] / image["filename"]).is_file()
