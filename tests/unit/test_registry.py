"""NodeRegistry and the /object_info entries it builds (V1 and V3 forms)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from node_actors import registry as registry_module
from node_actors.compat_path import install_compat_path
from node_actors.registry import NodeRegistry, build_default_registry

install_compat_path()

from comfy_api.latest import ComfyExtension, io  # noqa: E402


class Minimal:
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"image": ("IMAGE",)}}

    def run(self, image: Any) -> tuple[Any]:
        return (image,)


class Full:
    RETURN_TYPES = ("IMAGE", "INT")
    RETURN_NAMES = ("images", "count")
    OUTPUT_IS_LIST = (False, True)
    OUTPUT_TOOLTIPS = ("the images", "how many")
    FUNCTION = "run"
    CATEGORY = "image/test"
    DESCRIPTION = "A node with everything."
    OUTPUT_NODE = True
    INPUT_IS_LIST = True
    HAS_INTERMEDIATE_OUTPUT = True
    DEPRECATED = True
    EXPERIMENTAL = False
    DEV_ONLY = True
    API_NODE = False
    SEARCH_ALIASES = ("everything",)
    ESSENTIALS_CATEGORY = "Basics"
    NOT_IDEMPOTENT = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF}),
                "mode": (["a", "b"],),
                "link": ("*", {"rawLink": True}),
            },
            "optional": {"extra": ("IMAGE", {"lazy": True})},
            "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID", "initial_value0": ("*",)},
        }

    @classmethod
    def VALIDATE_INPUTS(cls, input_types: dict[str, str], seed: int, **kwargs: Any) -> bool:
        return True

    async def run(self, **kwargs: Any) -> tuple[Any, ...]:
        return (None, [1])


V1_KEYS = [
    "input",
    "input_order",
    "is_input_list",
    "output",
    "output_is_list",
    "output_name",
    "name",
    "display_name",
    "description",
    "python_module",
    "category",
    "output_node",
    "has_intermediate_output",
]

V3_KEYS = [
    "input",
    "input_order",
    "is_input_list",
    "output",
    "output_is_list",
    "output_name",
    "output_tooltips",
    "output_matchtypes",
    "name",
    "display_name",
    "description",
    "python_module",
    "category",
    "output_node",
    "deprecated",
    "experimental",
    "dev_only",
    "api_node",
    "price_badge",
    "search_aliases",
    "essentials_category",
    "has_intermediate_output",
]


class V3Node(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="V3Node",
            display_name="V3 Node",
            category="test",
            inputs=[
                io.Int.Input("count", default=1, min=1, tooltip="how many"),
                io.Combo.Input("mode", options=["x", "y"]),
                io.Image.Input("image", optional=True),
            ],
            outputs=[
                io.Image.Output(display_name="out", tooltip="result"),
                io.Int.Output(is_output_list=True),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.unique_id],
            is_input_list=True,
            not_idempotent=True,
            accept_all_inputs=True,
        )

    @classmethod
    def execute(cls, **kwargs: Any) -> io.NodeOutput:
        return io.NodeOutput(None, [1])


def test_v1_minimal_entry_has_exact_keys_in_order() -> None:
    reg = NodeRegistry()
    assert reg.register("Minimal", Minimal)
    info = reg.object_info_for("Minimal")
    assert list(info) == V1_KEYS + ["search_aliases"]
    assert info == {
        "input": {"required": {"image": ["IMAGE"]}},
        "input_order": {"required": ["image"]},
        "is_input_list": False,
        "output": ["IMAGE"],
        "output_is_list": [False],
        "output_name": ["IMAGE"],
        "name": "Minimal",
        "display_name": "Minimal",
        "description": "",
        "python_module": "nodes",
        "category": "sd",
        "output_node": False,
        "has_intermediate_output": False,
        "search_aliases": [],
    }


def test_v1_full_entry_has_optional_keys_only_when_set() -> None:
    reg = NodeRegistry()
    reg.register("Full", Full, display_name="Full Node", python_module="custom_nodes.pack")
    info = reg.object_info_for("Full")
    assert list(info) == V1_KEYS + [
        "output_tooltips",
        "deprecated",
        "dev_only",
        "api_node",
        "search_aliases",
        "essentials_category",
    ]
    assert info["input"]["required"]["seed"] == [
        "INT",
        {"default": 0, "min": 0, "max": 18446744073709551615},
    ]
    assert info["input"]["required"]["mode"] == [["a", "b"]]
    # V1 hidden kinds stay bare strings; a plain hidden input keeps its spec.
    assert info["input"]["hidden"] == {
        "prompt": "PROMPT",
        "unique_id": "UNIQUE_ID",
        "initial_value0": ["*"],
    }
    assert info["input_order"] == {
        "required": ["seed", "mode", "link"],
        "optional": ["extra"],
        "hidden": ["prompt", "unique_id", "initial_value0"],
    }
    assert info["output_is_list"] == [False, True] and info["output_name"] == ["images", "count"]
    assert info["display_name"] == "Full Node" and info["python_module"] == "custom_nodes.pack"
    assert info["output_node"] is True and info["is_input_list"] is True
    assert info["deprecated"] is True and info["dev_only"] is True and "experimental" not in info
    assert info["api_node"] is False and info["search_aliases"] == ["everything"]
    assert '"max": 18446744073709551615' in json.dumps(info)


def test_v1_definition_flags() -> None:
    reg = NodeRegistry()
    reg.register("Full", Full)
    d = reg.definitions()["Full"]
    assert d.input_is_list and d.output_node and d.not_idempotent and d.has_intermediate_output
    assert d.output_is_list == (False, True)
    assert d.hidden_inputs == {"prompt": "PROMPT", "unique_id": "UNIQUE_ID", "initial_value0": ""}
    assert d.lazy_inputs == frozenset({"extra"}) and d.raw_link_inputs == frozenset({"link"})
    assert d.validate_inputs_params == ("input_types", "seed")
    assert d.validate_takes_kwargs and d.validate_takes_input_types
    assert d.is_async and not d.has_is_changed and not d.has_check_lazy_status
    assert d.input_spec("extra") == ("optional", ["IMAGE", {"lazy": True}])


def test_v3_entry_has_every_key_with_null_or_false() -> None:
    reg = NodeRegistry()
    reg.register("V3Node", V3Node, python_module="custom_nodes.v3pack")
    info = reg.object_info_for("V3Node")
    assert list(info) == V3_KEYS
    assert info["input"] == {
        "required": {
            "count": ["INT", {"tooltip": "how many", "default": 1, "min": 1}],
            "mode": ["COMBO", {"multiselect": False, "options": ["x", "y"]}],
        },
        "optional": {"image": ["IMAGE", {}]},
        "hidden": {"prompt": ["PROMPT"], "unique_id": ["UNIQUE_ID"]},
    }
    assert info["input_order"] == {
        "required": ["count", "mode"],
        "optional": ["image"],
        "hidden": ["prompt", "unique_id"],
    }
    assert info["output"] == ["IMAGE", "INT"] and info["output_is_list"] == [False, True]
    assert info["output_name"] == ["out", "INT"] and info["output_tooltips"] == ["result", None]
    assert info["is_input_list"] is True and info["python_module"] == "custom_nodes.v3pack"
    for key in (
        "deprecated",
        "experimental",
        "dev_only",
        "api_node",
        "output_node",
        "has_intermediate_output",
    ):
        assert info[key] is False
    for key in ("output_matchtypes", "price_badge", "search_aliases", "essentials_category"):
        assert info[key] is None
    assert (info["name"], info["display_name"], info["category"], info["description"]) == (
        "V3Node",
        "V3 Node",
        "test",
        "",
    )
    json.dumps(info)
    d = reg.definitions()["V3Node"]
    assert d.input_is_list and d.not_idempotent and d.accept_all_inputs
    assert d.output_is_list == (False, True)
    assert d.hidden_inputs == {"prompt": "PROMPT", "unique_id": "UNIQUE_ID"}


def test_register_refuses_existing_names(caplog: pytest.LogCaptureFixture) -> None:
    reg = NodeRegistry()
    assert reg.register("Node", Minimal)
    with caplog.at_level(logging.WARNING):
        assert not reg.register("Node", Full, python_module="custom_nodes.evil")
    assert reg.adapter("Node").cls is Minimal
    assert "already registered" in caplog.text and "custom_nodes.evil" in caplog.text
    assert not reg.register("NotAClass", object())  # type: ignore[arg-type]
    assert "NotAClass" not in reg


def test_unknown_class_type() -> None:
    reg = NodeRegistry()
    with pytest.raises(KeyError):
        reg.adapter("Nope")
    assert reg.object_info_for("Nope") == {}


def test_a_node_whose_info_raises_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Minimal):
        @classmethod
        def INPUT_TYPES(cls) -> dict[str, Any]:
            raise RuntimeError("no folder")

    reg = NodeRegistry()
    reg.register("Good", Minimal)
    reg.register("Broken", Broken)
    with caplog.at_level(logging.ERROR):
        assert list(reg.object_info()) == ["Good"]
        assert reg.object_info_for("Broken") == {}
    assert "Broken" in caplog.text and "no folder" in caplog.text


def test_input_types_is_evaluated_at_every_object_info() -> None:
    files = ["a.png"]

    class Lister(Minimal):
        @classmethod
        def INPUT_TYPES(cls) -> dict[str, Any]:
            return {"required": {"image": (sorted(files), {"image_upload": True})}}

    reg = NodeRegistry()
    reg.register("Lister", Lister)
    assert reg.object_info()["Lister"]["input"]["required"]["image"][0] == ["a.png"]
    files.append("b.png")
    assert reg.object_info_for("Lister")["input"]["required"]["image"][0] == ["a.png", "b.png"]
    assert reg.definitions()["Lister"].info["input"]["required"]["image"][0] == ["a.png", "b.png"]


class _Ext(ComfyExtension):
    loaded = False

    async def on_load(self) -> None:
        _Ext.loaded = True

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [V3Node]


def _module(name: str, **attributes: Any) -> Any:
    module = type(sys)(name)
    module.__dict__.update(attributes)
    return module


def test_register_module_mappings_reads_mappings_and_entrypoint() -> None:
    async def entrypoint() -> _Ext:
        return _Ext()

    module = _module(
        "pack",
        NODE_CLASS_MAPPINGS={"Minimal": Minimal, "Full": Full},
        NODE_DISPLAY_NAME_MAPPINGS={"Full": "The Full"},
        comfy_entrypoint=entrypoint,
    )
    reg = NodeRegistry()
    assert reg.register_module_mappings(module, "custom_nodes.pack") == 3
    assert _Ext.loaded
    assert reg.object_info_for("Full")["display_name"] == "The Full"
    assert reg.object_info_for("Minimal")["display_name"] == "Minimal"
    assert reg.adapter("V3Node").python_module == "custom_nodes.pack"
    assert reg.register_module_mappings(module, "custom_nodes.again") == 0


def test_sync_entrypoint_inside_a_running_loop() -> None:
    module = _module("v3", comfy_entrypoint=lambda: _Ext())
    reg = NodeRegistry()

    async def load() -> int:
        return reg.register_module_mappings(module, "custom_nodes.v3")

    assert asyncio.run(load()) == 1
    assert reg.class_types() == ["V3Node"]


def test_build_default_registry_loads_library_then_packs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = tmp_path / "fake_library_pkg"
    library.mkdir()
    (library / "__init__.py").write_text("")
    (library / "alpha.py").write_text(
        "class StubInt:\n"
        "    RETURN_TYPES = ('INT',)\n"
        "    FUNCTION = 'f'\n"
        "    @classmethod\n"
        "    def INPUT_TYPES(cls):\n"
        "        return {'required': {}}\n"
        "NODE_CLASS_MAPPINGS = {'StubInt': StubInt}\n"
        "PYTHON_MODULE = 'comfy_extras.nodes_alpha'\n"
    )
    (library / "broken.py").write_text("raise ValueError('library bug')\n")
    (library / "_helpers.py").write_text("raise ValueError('never imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry_module, "LIBRARY_PACKAGE", "fake_library_pkg")
    installed: list[Any] = []
    fake_folders_module = _module("node_actors.folders", install=installed.append)
    monkeypatch.setitem(sys.modules, "node_actors.folders", fake_folders_module)
    folders = object()

    stub_packs = Path(__file__).resolve().parents[1] / "stub_pack"
    reg, failures = build_default_registry(folders, [stub_packs])  # type: ignore[arg-type]

    assert installed == [folders]
    # The library's StubInt came first: the pack's StubInt is refused.
    assert reg.adapter("StubInt").python_module == "comfy_extras.nodes_alpha"
    assert reg.adapter("StubImage").python_module == "custom_nodes.comfyray_stub_nodes"
    names = sorted(Path(f.path).name for f in failures)
    assert names == ["broken.py", "broken_pack", "exiting_pack.py"]
    assert any("library bug" in f.error for f in failures)
