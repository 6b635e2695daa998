"""Custom node pack loading, and the stub pack the engine's tests run on."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from node_actors.context import ExecutionBlocker
from node_actors.custom_nodes import load_custom_node_packs, pack_entries
from node_actors.registry import NodeRegistry

STUB_PACKS = Path(__file__).resolve().parents[1] / "stub_pack"

STUB_NODES = {
    "StubImage", "StubMask", "StubInt", "StubFloat", "StubString", "StubLazyMix",
    "StubLazyMixAsync", "StubAsyncSleep", "StubSleep", "StubExpand", "StubExpandNested",
    "StubImageInvert", "StubListOut", "StubListSum", "StubIntToString", "StubBlocker", "StubWorkerPid",
    "StubBlockElement", "StubVariadicSum", "StubCustomValidate", "StubCustomValidateKwargs",
    "StubValidateInputTypes", "StubIsChangedAlways", "StubIsChangedConst", "StubRaise",
    "StubHidden", "StubOutput", "StubPreviewProgress", "StubSetProgress", "StubUniqueId",
    "StubNotIdempotent", "StubV3Add",
}  # fmt: skip


@pytest.fixture(scope="module")
def loaded() -> tuple[NodeRegistry, list[Any]]:
    reg = NodeRegistry()
    failures = load_custom_node_packs(reg, [STUB_PACKS])
    return reg, failures


def run(
    reg: NodeRegistry, class_type: str, hidden: dict[str, Any] | None = None, **kwargs: Any
) -> Any:
    adapter = reg.adapter(class_type)
    value = adapter.call_function(adapter.new_instance(), kwargs, hidden or {})
    if asyncio.iscoroutine(value):
        value = asyncio.run(value)
    return adapter.normalize_return(value)


# --------------------------------------------------------------------------- loading


def test_stub_packs_load_and_broken_ones_are_reported(
    loaded: tuple[NodeRegistry, list[Any]],
) -> None:
    reg, failures = loaded
    assert set(reg.class_types()) == STUB_NODES
    assert {(f.path.name, f.error) for f in failures} == {
        ("broken_pack", "ImportError: comfyray broken_pack: this pack always fails to import"),
        ("exiting_pack.py", "SystemExit: 1"),
    }
    assert reg.adapter("StubImage").python_module == "custom_nodes.comfyray_stub_nodes"
    assert reg.adapter("StubV3Add").python_module == "custom_nodes.comfyray_stub_v3"
    assert reg.adapter("StubV3Add").is_v3
    web = reg.web_directories["comfyray_stub_nodes"]
    assert web == STUB_PACKS / "comfyray_stub_nodes" / "web" and (web / "stub.js").is_file()
    # Broken packs leave nothing half-imported behind.
    assert not any(name.endswith("broken_pack") for name in sys.modules)


def test_object_info_of_every_stub_node_is_json(loaded: tuple[NodeRegistry, list[Any]]) -> None:
    reg, _ = loaded
    info = reg.object_info()
    assert set(info) == STUB_NODES
    assert {entry["category"] for entry in info.values()} == {"stub"}
    assert info["StubImage"]["display_name"] == "Stub Image"
    assert info["StubImage"]["input"]["required"]["content"] == [["WHITE", "BLACK", "NOISE"]]
    json.dumps(info)


def test_pack_modules_are_named_after_their_full_path(tmp_path: Path) -> None:
    folder = tmp_path / "nodes.v1"
    pack = folder / "my.pack"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text(
        "from .impl import Node\nNODE_CLASS_MAPPINGS = {'DottedNode': Node}\n"
    )
    (pack / "impl.py").write_text(
        "class Node:\n"
        "    RETURN_TYPES = ()\n"
        "    FUNCTION = 'f'\n"
        "    @classmethod\n"
        "    def INPUT_TYPES(cls):\n"
        "        return {'required': {}}\n"
    )
    reg = NodeRegistry()
    assert load_custom_node_packs(reg, [folder]) == []
    expected = str(pack.resolve()).replace(".", "_x_")
    assert expected in sys.modules and f"{expected}.impl" in sys.modules
    assert reg.adapter("DottedNode").python_module == "custom_nodes.my.pack"


def test_entries_skip_disabled_pycache_and_plain_folders(tmp_path: Path) -> None:
    for name in ("good", "off.disabled", "__pycache__", "plain"):
        (tmp_path / name).mkdir()
    for name in ("good", "off.disabled", "__pycache__"):
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / "single.py").write_text("")
    (tmp_path / "old.py.disabled").write_text("")
    (tmp_path / "notes.txt").write_text("")
    assert [p.name for p in pack_entries(tmp_path)] == ["good", "single.py"]


def test_pack_without_nodes_is_a_failure_and_missing_folder_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "empty.py").write_text("X = 1\n")
    reg = NodeRegistry()
    with caplog.at_level(logging.WARNING):
        failures = load_custom_node_packs(reg, [tmp_path, tmp_path / "missing"])
    assert [(f.path.name, "NODE_CLASS_MAPPINGS" in f.error) for f in failures] == [
        ("empty.py", True)
    ]
    assert "missing" in caplog.text


def test_built_in_names_are_not_overridden(caplog: pytest.LogCaptureFixture) -> None:
    class BuiltinInt:
        RETURN_TYPES = ("INT",)
        FUNCTION = "f"

        @classmethod
        def INPUT_TYPES(cls) -> dict[str, Any]:
            return {"required": {}}

    reg = NodeRegistry()
    reg.register("StubInt", BuiltinInt)
    with caplog.at_level(logging.WARNING):
        load_custom_node_packs(reg, [STUB_PACKS])
    assert reg.adapter("StubInt").cls is BuiltinInt
    assert reg.adapter("StubInt").python_module == "nodes"
    assert "StubInt" in caplog.text and "already registered" in caplog.text
    assert reg.adapter("StubFloat").python_module == "custom_nodes.comfyray_stub_nodes"


# --------------------------------------------------------------------------- stub behaviour


def test_stub_lazy_mix_asks_only_for_weighted_images(
    loaded: tuple[NodeRegistry, list[Any]],
) -> None:
    reg, _ = loaded
    zeros, ones, half = np.zeros((1, 2, 2)), np.ones((1, 2, 2)), np.full((1, 2, 2), 0.5)
    for class_type in ("StubLazyMix", "StubLazyMixAsync"):
        adapter = reg.adapter(class_type)
        instance = adapter.new_instance()

        def needs(mask: Any, instance: Any = instance, adapter: Any = adapter) -> Any:
            value = adapter.call_check_lazy_status(
                instance, {"mask": mask, "image1": None, "image2": None}, {}
            )
            return asyncio.run(value) if asyncio.iscoroutine(value) else value

        assert needs(zeros) == ["image1"]
        assert needs(ones) == ["image2"]
        assert needs(half) == ["image1", "image2"]
        assert adapter.definition.lazy_inputs == frozenset({"image1", "image2"})
    assert reg.definitions()["StubLazyMixAsync"].is_async


def test_stub_expand_builds_a_chain(loaded: tuple[NodeRegistry, list[Any]]) -> None:
    from comfy_execution.graph_utils import GraphBuilder

    reg, _ = loaded
    GraphBuilder.set_default_prefix("9", 1)
    ret = run(reg, "StubExpand", image="IMG", count=3)
    assert list(ret.expand) == ["9.1.0.1", "9.1.0.2", "9.1.0.3"]
    assert ret.expand["9.1.0.1"] == {"class_type": "StubImageInvert", "inputs": {"image": "IMG"}}
    assert ret.expand["9.1.0.3"]["inputs"] == {"image": ["9.1.0.2", 0]}
    assert ret.result == (["9.1.0.3", 0],)
    GraphBuilder.set_default_prefix("4", 0)
    nested = run(reg, "StubExpandNested", image="IMG", count=2)
    assert nested.expand["4.0.0.1"] == {
        "class_type": "StubExpand",
        "inputs": {"image": "IMG", "count": 2},
    }
    assert nested.result == (["4.0.0.2", 0],)


def test_stub_list_blocker_and_variadic_nodes(loaded: tuple[NodeRegistry, list[Any]]) -> None:
    reg, _ = loaded
    assert run(reg, "StubListOut", count=3).result == ([0, 1, 2],)
    assert reg.definitions()["StubListOut"].output_is_list == (True,)
    assert run(reg, "StubListSum", values=[1, 2, 3]).result == (6,)
    filtered = run(reg, "StubBlockElement", values=[0, 1, 2]).result[0]
    assert filtered[0] == 0 and filtered[2] == 2 and isinstance(filtered[1], ExecutionBlocker)
    assert filtered[1].message is None
    assert run(reg, "StubVariadicSum", first=1, extra_a=2, extra_b=3).result == (6,)
    blocked = run(reg, "StubBlocker", value=1, block=True, message="halt")
    assert blocked.blocker is not None and blocked.blocker.message == "halt"
    assert run(reg, "StubBlocker", value=1, block=True, message="").blocker.message is None
    assert run(reg, "StubBlocker", value=1, block=False, message="").result == (1,)
    assert run(reg, "StubOutput", value=5).ui == {"text": ["5"]}
    assert run(reg, "StubIntToString", value=7).result == ("7",)


def test_stub_validation_and_is_changed(loaded: tuple[NodeRegistry, list[Any]]) -> None:
    reg, _ = loaded
    for class_type in ("StubCustomValidate", "StubCustomValidateKwargs"):
        adapter = reg.adapter(class_type)
        assert adapter.call_validate_inputs({"value": 3}) == "value must be even"
        assert adapter.call_validate_inputs({"value": 4}) is True
    assert reg.definitions()["StubCustomValidateKwargs"].validate_takes_kwargs
    types = reg.adapter("StubValidateInputTypes")
    assert types.definition.validate_takes_input_types
    assert types.call_validate_inputs({"input_types": {"value": "FLOAT"}}) is True
    assert "got STRING" in types.call_validate_inputs({"input_types": {"value": "STRING"}})
    assert math.isnan(reg.adapter("StubIsChangedAlways").call_is_changed({"value": 1}))
    assert reg.adapter("StubIsChangedConst").call_is_changed({"value": 1}) == "x"
    assert reg.definitions()["StubNotIdempotent"].not_idempotent


def test_stub_hidden_nodes(loaded: tuple[NodeRegistry, list[Any]]) -> None:
    reg, _ = loaded
    echoed = run(
        reg, "StubHidden", value=1, prompt={"1": {}}, extra_pnginfo={"w": 1}, unique_id="1"
    )
    assert json.loads(echoed.result[0]) == {
        "extra_pnginfo": {"w": 1},
        "prompt": {"1": {}},
        "unique_id": "1",
    }
    assert reg.definitions()["StubUniqueId"].takes_unique_id
    assert run(reg, "StubUniqueId", unique_id="12").result == ("12",)
    with pytest.raises(RuntimeError, match="boom"):
        run(reg, "StubRaise", value=1, message="boom")


def test_stub_v3_add(loaded: tuple[NodeRegistry, list[Any]]) -> None:
    reg, _ = loaded
    adapter = reg.adapter("StubV3Add")
    ret = run(reg, "StubV3Add", hidden={"UNIQUE_ID": "3"}, a=2, b=5)
    assert ret.result == (7,) and ret.ui == {"text": ["3: 7"]}
    assert adapter.call_validate_inputs({"a": -1, "b": 0}) == "a and b must be non-negative"
    assert adapter.call_is_changed({"a": 1, "b": 2}) == 3
    info = reg.object_info_for("StubV3Add")
    assert info["display_name"] == "Stub V3 Add" and info["output_name"] == ["sum"]


def test_stub_progress_nodes_report_through_the_context(
    loaded: tuple[NodeRegistry, list[Any]],
) -> None:
    from node_actors import context

    reg, _ = loaded
    calls: list[tuple[Any, ...]] = []
    ctx = context.ExecutionContext(
        prompt_id="p",
        node_id="5",
        display_node_id="5",
        real_node_id="5",
        parent_node_id=None,
        progress=lambda *args: calls.append(args),
        interrupt=context.InterruptFlag(),
    )
    token = context.set_current(ctx)
    try:
        assert run(reg, "StubPreviewProgress", steps=2).result == (2,)
        assert [(c[0], c[1], c[2], c[4]) for c in calls] == [("5", 1, 2, True), ("5", 2, 2, True)]
        assert all(c[3].image_format == "PNG" and c[3].image.size == (8, 8) for c in calls)
        calls.clear()
        run(reg, "StubSetProgress", steps=2)
        assert [(c[1], c[2], c[3], c[4]) for c in calls] == [
            (1, 2, None, False),
            (2, 2, None, False),
        ]
        ctx.interrupt.set()
        with pytest.raises(context.InterruptProcessingException):
            run(reg, "StubSleep", value=1, seconds=0.05)
    finally:
        context.reset_current(token)
