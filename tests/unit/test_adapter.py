"""NodeAdapter: one calling convention and one return shape for V1 and V3 classes."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from node_actors.adapter import NodeAdapter, NodeReturn
from node_actors.compat_path import install_compat_path
from node_actors.context import ExecutionBlocker

install_compat_path()

from comfy_api.latest import io, ui  # noqa: E402
from comfy_execution.graph_utils import GraphBuilder  # noqa: E402


class TwoOut:
    RETURN_TYPES = ("INT", "STRING")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {"value": ("INT", {"lazy": True})},
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, value: Any = None) -> str:
        return f"changed:{value}"

    @classmethod
    def VALIDATE_INPUTS(cls, value: int) -> bool | str:
        return True if value >= 0 else "negative"

    def check_lazy_status(self, value: Any = None) -> list[str]:
        return ["value"] if value is None else []

    def run(self, value: int, unique_id: str | None = None) -> tuple[int, str]:
        return (value * 2, f"{unique_id}")


class AsyncNode:
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("INT",)}}

    async def run(self, value: int) -> tuple[int]:
        await asyncio.sleep(0)
        return (value + 1,)


class V3Node(io.ComfyNode):
    seen: list[Any] = []

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="V3Node",
            inputs=[io.Int.Input("a"), io.Image.Input("img", optional=True, lazy=True)],
            outputs=[io.Int.Output(), io.String.Output()],
            hidden=[io.Hidden.unique_id, io.Hidden.prompt],
            enable_expand=True,
        )

    @classmethod
    def execute(cls, a: int, img: Any = None) -> io.NodeOutput:
        return io.NodeOutput(a, f"{cls.hidden.unique_id}|{cls.hidden.prompt}")

    @classmethod
    def fingerprint_inputs(cls, a: int, img: Any = None) -> Any:
        return ("fp", a, cls.hidden.unique_id)

    @classmethod
    def validate_inputs(cls, a: int, img: Any = None) -> bool | str:
        return a != 13 or "unlucky"

    @classmethod
    def check_lazy_status(cls, a: int, img: Any = None) -> list[str]:
        return [] if cls.hidden.unique_id == "skip" else ["img"]


class V3Async(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(node_id="V3Async", inputs=[io.Int.Input("a")], outputs=[io.Int.Output()])

    @classmethod
    async def execute(cls, a: int) -> io.NodeOutput:
        await asyncio.sleep(0)
        return io.NodeOutput(a, ui=ui.PreviewText(f"{cls.hidden.unique_id}"))


def adapter(cls: type, class_type: str | None = None) -> NodeAdapter:
    return NodeAdapter(class_type or cls.__name__, cls)


# --------------------------------------------------------------------------- calls


def test_v1_calls_use_the_class_contract() -> None:
    a = adapter(TwoOut)
    instance = a.new_instance()
    assert isinstance(instance, TwoOut) and not a.is_v3
    # V1 hidden values come in kwargs; the hidden mapping is ignored.
    result = a.call_function(instance, {"value": 4, "unique_id": "12"}, {"UNIQUE_ID": "ignored"})
    assert result == (8, "12")
    assert a.call_is_changed({"value": 3}) == "changed:3"
    assert a.call_validate_inputs({"value": -1}) == "negative"
    assert a.call_check_lazy_status(instance, {"value": None}, {}) == ["value"]


def test_async_function_returns_an_awaitable() -> None:
    a = adapter(AsyncNode)
    pending = a.call_function(a.new_instance(), {"value": 1}, {})
    assert inspect.isawaitable(pending)
    assert asyncio.run(pending) == (2,)
    assert a.definition.is_async


def test_v3_execute_runs_on_a_clone_holding_this_calls_hidden_values() -> None:
    a = adapter(V3Node)
    assert a.is_v3
    out1 = a.call_function(None, {"a": 1}, {"UNIQUE_ID": "5", "PROMPT": {"5": {}}})
    out2 = a.call_function(None, {"a": 2, "unique_id": "dropped"}, {"UNIQUE_ID": "6"})
    assert out1.args == (1, "5|{'5': {}}")
    assert out2.args == (2, "6|None")
    # The registered class itself never holds a call's values.
    assert V3Node.hidden.unique_id is None and V3Node.hidden.prompt is None


def test_v3_side_calls() -> None:
    a = adapter(V3Node)
    assert a.call_is_changed({"a": 3}) == ("fp", 3, None)
    assert a.call_validate_inputs({"a": 13}) == "unlucky"
    assert a.call_validate_inputs({"a": 1}) is True
    assert a.call_check_lazy_status(None, {"a": 1, "img": None}, {"UNIQUE_ID": "x"}) == ["img"]
    assert a.call_check_lazy_status(None, {"a": 1, "img": None}, {"UNIQUE_ID": "skip"}) == []


def test_v3_async_execute_and_ui_helper() -> None:
    a = adapter(V3Async)
    out = asyncio.run(a.call_function(None, {"a": 7}, {"UNIQUE_ID": "3"}))
    normalized = a.normalize_return(out)
    assert normalized == NodeReturn((7,), {"text": ["None"]}, None, None)
    assert a.definition.is_async


def test_v3_async_clones_do_not_share_hidden_values() -> None:
    class Slow(io.ComfyNode):
        @classmethod
        def define_schema(cls) -> io.Schema:
            return io.Schema(
                node_id="Slow", outputs=[io.String.Output()], hidden=[io.Hidden.unique_id]
            )

        @classmethod
        async def execute(cls) -> io.NodeOutput:
            before = cls.hidden.unique_id
            await asyncio.sleep(0.01)
            return io.NodeOutput(f"{before}->{cls.hidden.unique_id}")

    a = adapter(Slow)

    async def both() -> list[Any]:
        return await asyncio.gather(
            a.call_function(None, {}, {"UNIQUE_ID": "1"}),
            a.call_function(None, {}, {"UNIQUE_ID": "2"}),
        )

    outs = asyncio.run(both())
    assert [o.args[0] for o in outs] == ["1->1", "2->2"]


# --------------------------------------------------------------------------- returns


def test_normalize_plain_returns() -> None:
    a = adapter(TwoOut)
    assert a.normalize_return(None) == NodeReturn(None, None, None, None)
    assert a.normalize_return((1, "x")) == NodeReturn((1, "x"), None, None, None)
    assert a.normalize_return([1, "x"]).result == (1, "x")
    blocker = ExecutionBlocker("stop")
    assert a.normalize_return(blocker) == NodeReturn(None, None, None, blocker)


def test_normalize_dict_returns() -> None:
    a = adapter(TwoOut)
    assert a.normalize_return({"ui": {"text": ["hi"]}}) == NodeReturn(
        None, {"text": ["hi"]}, None, None
    )
    graph = {"x.0.0.1": {"class_type": "StubInt", "inputs": {"value": 1}}}
    ret = a.normalize_return({"ui": {"a": [1]}, "result": (["x.0.0.1", 0], "s"), "expand": graph})
    assert ret == NodeReturn((["x.0.0.1", 0], "s"), {"a": [1]}, graph, None)
    # A blocker as the whole result stands for every output slot.
    blocker = ExecutionBlocker(None)
    assert a.normalize_return({"result": blocker}).result == (blocker, blocker)


def test_normalize_accepts_a_graph_builder_as_expand() -> None:
    a = adapter(AsyncNode)
    builder = GraphBuilder(prefix="n.0.0.")
    node = builder.node("StubInt", value=1)
    ret = a.normalize_return({"result": (node.out(0),), "expand": builder})
    assert ret.expand == {"n.0.0.1": {"class_type": "StubInt", "inputs": {"value": 1}}}


def test_normalize_v3_node_output() -> None:
    a = adapter(V3Node)
    ret = a.normalize_return(io.NodeOutput(1, "a", ui={"text": ["t"]}))
    assert ret == NodeReturn((1, "a"), {"text": ["t"]}, None, None)
    assert a.normalize_return(io.NodeOutput(ui={"text": ["t"]})).result is None
    blocked = a.normalize_return(io.NodeOutput(block_execution="nope"))
    assert blocked.result is None and isinstance(blocked.blocker, ExecutionBlocker)
    assert blocked.blocker.message == "nope"
    graph = {"g.0.0.1": {"class_type": "X", "inputs": {}}}
    expanded = a.normalize_return(io.NodeOutput(["g.0.0.1", 0], ["g.0.0.1", 1], expand=graph))
    assert expanded.expand == graph and expanded.result == (["g.0.0.1", 0], ["g.0.0.1", 1])


@pytest.mark.parametrize(
    "value, fragment",
    [
        ((1,), "returned 1 values but declares 2 outputs"),
        ((1, 2, 3), "returned 3 values but declares 2 outputs"),
        ({"result": (1,)}, "returned 1 values"),
        ({"result": 5}, "result of type int"),
        ({"ui": ["not", "a", "dict"]}, "ui of type list"),
        ({"expand": "graph"}, "expand of type str"),
        (42, "returned int"),
        ("text", "returned str"),
    ],
)
def test_wrong_returns_raise_type_error_naming_the_node(value: Any, fragment: str) -> None:
    a = adapter(TwoOut, "MyTwoOut")
    with pytest.raises(TypeError) as excinfo:
        a.normalize_return(value)
    message = str(excinfo.value)
    assert "MyTwoOut" in message and "TwoOut" in message and fragment in message


def test_v3_wrong_arity_raises() -> None:
    with pytest.raises(TypeError, match="V3Node.*returned 1 values but declares 2 outputs"):
        adapter(V3Node).normalize_return(io.NodeOutput(1))


# --------------------------------------------------------------------------- definition flags


def test_definition_flags_of_v1_class() -> None:
    d = adapter(TwoOut).definition
    assert d.lazy_inputs == frozenset({"value"})
    assert d.hidden_inputs == {"unique_id": "UNIQUE_ID"} and d.takes_unique_id
    assert d.has_is_changed and d.has_validate_inputs and d.has_check_lazy_status
    assert d.validate_inputs_params == ("value",) and not d.validate_takes_kwargs
    assert not d.is_async and d.output_is_list == (False, False)


def test_definition_flags_of_v3_class() -> None:
    d = adapter(V3Node).definition
    assert d.hidden_inputs == {"unique_id": "UNIQUE_ID", "prompt": "PROMPT"}
    assert d.lazy_inputs == frozenset({"img"})
    assert d.has_is_changed and d.has_validate_inputs and d.has_check_lazy_status
    assert d.validate_inputs_params == ("a", "img")
    assert not d.is_async and d.output_is_list == (False, False)
    plain = adapter(V3Async).definition
    assert (
        not plain.has_is_changed
        and not plain.has_validate_inputs
        and not plain.has_check_lazy_status
    )
