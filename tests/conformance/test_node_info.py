"""Node definitions, models and system info (comfyui-behaviour.md §1.1, §1.6, §4.2, §5;
clients-and-models.md §1.8 items 9 and 12)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conformance.client import ComfyClient
from tests.server_process import ServerProcess

CORE_NODES = ("SaveImage", "LoadImage", "EmptyImage", "ImageInvert", "PreviewImage")
STUB_NODES = (
    "StubImage",
    "StubLazyMix",
    "StubExpand",
    "StubPreviewProgress",
    "StubCustomValidate",
    "StubV3Add",
)
CLIENT_KEYS = {
    "input",
    "input_order",
    "output",
    "output_is_list",
    "output_name",
    "name",
    "display_name",
    "description",
    "category",
    "output_node",
    "python_module",
}


@pytest.fixture
def comfy(server: ServerProcess) -> Iterator[ComfyClient]:
    client = ComfyClient(server.url, server.ws_url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def object_info(server: ServerProcess) -> dict:
    client = ComfyClient(server.url, server.ws_url)
    try:
        return client.get_json("/object_info")
    finally:
        client.close()


def test_object_info_has_core_and_stub_nodes(object_info: dict) -> None:
    for name in CORE_NODES + STUB_NODES:
        assert name in object_info, name
        assert CLIENT_KEYS <= set(object_info[name]), name
        assert object_info[name]["name"] == name


def test_failed_packs_contribute_no_nodes(object_info: dict, server: ServerProcess) -> None:
    modules = {info["python_module"] for info in object_info.values()}
    assert "custom_nodes.comfyray_stub_nodes" in modules
    assert "custom_nodes.comfyray_stub_v3" in modules
    assert not [m for m in modules if "broken_pack" in m or "exiting_pack" in m]
    # The server came up despite them, and said why they were skipped.
    log = server.log()
    assert "broken_pack" in log and "exiting_pack" in log


def test_stub_node_info(object_info: dict) -> None:
    info = object_info["StubImage"]
    assert info["display_name"] == "Stub Image"
    assert info["category"] == "stub"
    assert info["input"]["required"]["content"][0] == ["WHITE", "BLACK", "NOISE"]
    assert info["input"]["required"]["height"] == [
        "INT",
        {"default": 64, "min": 1, "max": 4096},
    ]
    assert info["input_order"]["required"] == ["content", "height", "width", "batch_size"]
    assert info["output"] == ["IMAGE"]
    assert info["output_is_list"] == [False]
    assert info["output_node"] is False
    listed = object_info["StubListOut"]
    assert listed["output_is_list"] == [True]
    assert object_info["StubListSum"]["is_input_list"] is True
    hidden = object_info["StubHidden"]["input"]["hidden"]
    assert hidden == {
        "prompt": "PROMPT",
        "extra_pnginfo": "EXTRA_PNGINFO",
        "unique_id": "UNIQUE_ID",
    }
    assert object_info["StubOutput"]["output_node"] is True


def test_v3_node_info(object_info: dict) -> None:
    info = object_info["StubV3Add"]
    assert info["display_name"] == "Stub V3 Add"
    assert info["description"] == "Adds two non-negative integers."
    assert info["input_order"]["required"] == ["a", "b"]
    assert info["input"]["required"]["a"][0] == "INT"
    assert info["output"] == ["INT"]
    assert info["deprecated"] is False


def test_object_info_for_one_class(comfy: ComfyClient, object_info: dict) -> None:
    assert comfy.get_json("/object_info/SaveImage") == {"SaveImage": object_info["SaveImage"]}
    assert comfy.get_json("/api/object_info/StubImage") == {"StubImage": object_info["StubImage"]}


def test_object_info_for_an_unknown_class_is_empty(comfy: ComfyClient) -> None:
    assert comfy.get_json("/object_info/NoSuchNode") == {}


def test_features(comfy: ComfyClient) -> None:
    features = comfy.get_json("/features")
    assert features["supports_preview_metadata"] is True
    assert features["max_upload_size"] == 100 * 1024 * 1024
    assert features["extension"] == {"manager": {"supports_v4": True}}
    assert comfy.get_json("/api/features") == features


def test_system_stats_lists_devices(comfy: ComfyClient) -> None:
    stats = comfy.get_json("/system_stats")
    assert stats["system"]["os"]
    assert stats["system"]["ram_total"] > 0
    assert stats["system"]["python_version"]
    assert stats["devices"]
    for device in stats["devices"]:
        assert {"name", "type", "index", "vram_total", "vram_free"} <= set(device)


def test_models_lists_folder_keys(comfy: ComfyClient) -> None:
    folders = comfy.get_json("/models")
    for key in ("checkpoints", "loras", "vae", "embeddings", "configs", "custom_nodes"):
        assert key in folders, key
    assert isinstance(comfy.get_json("/models/checkpoints"), list)


def test_models_of_an_unknown_folder_is_404(comfy: ComfyClient) -> None:
    assert comfy.get("/models/no_such_folder").status_code == 404


def test_embeddings_lists_the_embedding_files_without_extensions(comfy: ComfyClient) -> None:
    # tests/model_library.py puts a .safetensors and a .pt embedding in models/embeddings.
    assert comfy.get_json("/embeddings") == ["SDA768", "tiny_embedding"]
