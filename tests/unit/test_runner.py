"""node_actors.runner against §3.2 / §3.3 of the reference, over fake node adapters."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from node_actors.adapter import NodeReturn
from node_actors.context import ExecutionBlocker, InterruptProcessingException
from node_actors.protocol import (
    ConstInput,
    ExpansionCall,
    LinkInput,
    MissingInput,
    NodeDefinition,
    NodeTask,
)
from node_actors.runner import (
    StepRunner,
    describe_failure,
    map_over_list,
    merge_outputs,
    merge_ui,
    resolve_expansion,
    resolve_inputs,
)


class FakeAdapter:
    """The attributes StepRunner uses, with a plain function as the node's FUNCTION."""

    def __init__(
        self,
        function: Callable[..., Any],
        outputs: int = 1,
        *,
        check_lazy: Callable[..., Any] | None = None,
        **flags: Any,
    ) -> None:
        self.class_type = "Fake"
        self.cls = type("FakeNode", (), {})
        self.is_v3 = False
        self.definition = NodeDefinition(
            "Fake",
            {"output": ["ANY"] * outputs},
            has_check_lazy_status=check_lazy is not None,
            **flags,
        )
        self._function = function
        self._check_lazy = check_lazy
        self.instances: list[object] = []
        self.calls: list[tuple[object, dict[str, Any], Mapping[str, Any]]] = []
        self.lazy_calls: list[dict[str, Any]] = []

    def new_instance(self) -> object:
        instance = object()
        self.instances.append(instance)
        return instance

    def call_function(
        self, instance: Any, kwargs: dict[str, Any], hidden: Mapping[str, Any]
    ) -> Any:
        self.calls.append((instance, kwargs, hidden))
        return self._function(**kwargs)

    def call_check_lazy_status(
        self, instance: Any, kwargs: dict[str, Any], hidden: Mapping[str, Any]
    ) -> Any:
        assert self._check_lazy is not None
        self.lazy_calls.append(kwargs)
        return self._check_lazy(**kwargs)

    def normalize_return(self, value: Any) -> NodeReturn:
        if value is None:
            return NodeReturn(None, None, None, None)
        if isinstance(value, ExecutionBlocker):
            return NodeReturn(None, None, None, value)
        if isinstance(value, dict):
            result = value.get("result")
            return NodeReturn(
                tuple(result) if result is not None else None,
                value.get("ui"),
                value.get("expand"),
                None,
            )
        return NodeReturn(tuple(value), None, None, None)


def task(
    inputs: dict[str, Any] | None = None,
    *,
    node_id: str = "n",
    check_lazy: bool = False,
    hidden: dict[str, Any] | None = None,
    prefix: str = "",
) -> NodeTask:
    return NodeTask(
        prompt_id="p",
        node_id=node_id,
        display_node_id=node_id,
        real_node_id=node_id,
        parent_node_id=None,
        class_type="Fake",
        inputs=inputs or {},
        hidden=hidden or {},
        check_lazy=check_lazy,
        expansion_prefix=prefix,
    )


def run(runner: StepRunner, t: NodeTask, upstream: list[Any] | None = None) -> Any:
    return asyncio.run(runner.run(t, upstream or []))


def runner_for(adapter: FakeAdapter, **kwargs: Any) -> StepRunner:
    return StepRunner(lambda class_type: adapter, **kwargs)


# --- resolve_inputs ------------------------------------------------------------------------------


def test_resolve_inputs_carries_every_input_as_a_list() -> None:
    t = task(
        {
            "c": ConstInput(7),
            "l": LinkInput(arg_index=1, slot=1),
            "gone": LinkInput(arg_index=0, slot=0),
            "bad_slot": LinkInput(arg_index=1, slot=5),
            "lazy": MissingInput(),
        }
    )
    upstream = [None, [["a0"], ["b0", "b1"]]]
    assert resolve_inputs(t, upstream) == {
        "c": [7],
        "l": ["b0", "b1"],
        "gone": [None],
        "bad_slot": [None],
        "lazy": [None],
    }


# --- map_over_list -------------------------------------------------------------------------------


def collect(inputs: dict[str, list[Any]], input_is_list: bool = False, **kw: Any) -> list[Any]:
    return asyncio.run(map_over_list(input_is_list, inputs, lambda args, i: (i, args), **kw))


def test_one_call_per_item_and_shorter_lists_repeat_their_last_item() -> None:
    results = collect({"a": [1, 2, 3], "b": ["x"], "c": [10, 20]})
    assert results == [
        (0, {"a": 1, "b": "x", "c": 10}),
        (1, {"a": 2, "b": "x", "c": 20}),
        (2, {"a": 3, "b": "x", "c": 20}),
    ]


def test_input_is_list_makes_one_call_with_whole_lists() -> None:
    assert collect({"a": [1, 2], "b": [3]}, input_is_list=True) == [(0, {"a": [1, 2], "b": [3]})]


def test_no_inputs_is_one_call_with_no_arguments() -> None:
    assert collect({}) == [(0, {})]


def test_empty_lists_make_no_calls() -> None:
    assert collect({"a": []}) == []


def test_a_call_with_a_blocker_is_skipped_and_yields_it() -> None:
    blocker = ExecutionBlocker(None)
    results = collect({"a": [1, blocker, 3]})
    assert results[0] == (0, {"a": 1}) and results[2] == (2, {"a": 3})
    assert results[1] is blocker


def test_on_blocker_replaces_the_blocker() -> None:
    loud = ExecutionBlocker("stop")
    silent = ExecutionBlocker(None)
    seen: list[ExecutionBlocker] = []

    def on_blocker(b: ExecutionBlocker) -> ExecutionBlocker:
        seen.append(b)
        return silent

    assert collect({"a": [loud]}, on_blocker=on_blocker) == [silent]
    assert seen == [loud]


def test_input_is_list_call_is_blocked_by_a_blocker_item() -> None:
    blocker = ExecutionBlocker(None)
    assert collect({"a": [1, blocker]}, input_is_list=True) == [blocker]


def test_awaitable_results_run_concurrently_and_keep_their_order() -> None:
    async def scenario() -> tuple[list[Any], float]:
        async def slow(value: int) -> int:
            await asyncio.sleep(0.05)
            return value * 10

        loop = asyncio.get_running_loop()
        start = loop.time()
        results = await map_over_list(
            False, {"v": [1, 2, 3, 4]}, lambda args, i: slow(args["v"]) if i % 2 else args["v"]
        )
        return results, loop.time() - start

    results, elapsed = asyncio.run(scenario())
    assert results == [1, 20, 3, 40]
    assert elapsed < 0.095  # two 50 ms sleeps overlapped


# --- merge_outputs / merge_ui --------------------------------------------------------------------


def test_merge_outputs_one_value_per_call_or_concatenated_lists() -> None:
    blocker = ExecutionBlocker(None)
    returns: list[Any] = [([1, 2], "a"), blocker, ([3], "b")]
    merged = merge_outputs(returns, (True, False), 2)
    assert merged == [[1, 2, blocker, 3], ["a", blocker, "b"]]


def test_merge_outputs_keeps_a_non_list_value_of_a_list_output() -> None:
    assert merge_outputs([(5,)], (True,), 1) == [[5]]


def test_merge_ui_concatenates_per_key() -> None:
    merged = merge_ui([{"images": [1]}, None, {"images": [2, 3], "text": "t"}, {}])
    assert merged == {"images": [1, 2, 3], "text": ["t"]}
    assert merge_ui([None, {}]) is None


# --- describe_failure ----------------------------------------------------------------------------


class CustomError(Exception):
    pass


def test_failure_names_builtins_bare_and_others_with_their_module() -> None:
    try:
        raise ValueError("bad value")
    except ValueError as exc:
        failure = describe_failure(exc, {"x": [1, "s" * 300]})
    assert failure.exception_type == "ValueError"
    assert failure.exception_message == "bad value\n"
    assert failure.traceback and "raise ValueError" in "".join(failure.traceback)
    assert failure.current_inputs["x"][0] == "1"
    assert len(failure.current_inputs["x"][1]) == 200
    assert failure.current_inputs["x"][1].endswith("...")
    custom = describe_failure(CustomError("x"), {})
    assert custom.exception_type == f"{__name__}.CustomError"


# --- StepRunner ----------------------------------------------------------------------------------


def test_run_maps_the_node_over_lists_and_returns_outputs() -> None:
    adapter = FakeAdapter(lambda a, b: (a + b, a * b), outputs=2)
    t = task({"a": LinkInput(0, 0), "b": ConstInput(10)})
    meta, outputs = run(runner_for(adapter), t, [[[1, 2, 3]]])
    assert meta.status == "done"
    assert outputs == [[11, 12, 13], [10, 20, 30]]
    assert meta.output_lengths == (3, 3)
    assert meta.ui is None and meta.blocked == ()


def test_output_is_list_outputs_are_concatenated() -> None:
    adapter = FakeAdapter(lambda n: ([n] * n,), output_is_list=(True,))
    meta, outputs = run(runner_for(adapter), task({"n": LinkInput(0, 0)}), [[[1, 2]]])
    assert outputs == [[1, 2, 2]] and meta.output_lengths == (3,)


def test_ui_only_return_gives_none_outputs_and_merged_ui() -> None:
    adapter = FakeAdapter(lambda v: {"ui": {"text": [str(v)]}}, outputs=0)
    meta, outputs = run(runner_for(adapter), task({"v": LinkInput(0, 0)}), [[[1, 2]]])
    assert meta.status == "done"
    assert meta.ui == {"text": ["1", "2"]}
    assert outputs == []


def test_dict_return_with_result_and_ui() -> None:
    adapter = FakeAdapter(lambda v: {"ui": {"images": [v]}, "result": (v + 1,)})
    meta, outputs = run(runner_for(adapter), task({"v": ConstInput(1)}))
    assert outputs == [[2]] and meta.ui == {"images": [1]}


def test_input_is_list_node_gets_whole_lists() -> None:
    adapter = FakeAdapter(lambda values: (sum(values),), input_is_list=True)
    _, outputs = run(runner_for(adapter), task({"values": LinkInput(0, 0)}), [[[1, 2, 3]]])
    assert outputs == [[6]]
    assert adapter.calls[0][1] == {"values": [1, 2, 3]}


def test_blocked_items_are_skipped_per_element() -> None:
    blocker = ExecutionBlocker(None)
    adapter = FakeAdapter(lambda v: (v * 2,))
    meta, outputs = run(runner_for(adapter), task({"v": LinkInput(0, 0)}), [[[1, blocker, 3]]])
    assert meta.status == "done"
    assert outputs == [[2, blocker, 6]]
    assert [c[1]["v"] for c in adapter.calls] == [1, 3]


def test_a_blocker_with_a_message_is_reported_once_and_goes_on_silently() -> None:
    loud = ExecutionBlocker("stop here")
    adapter = FakeAdapter(lambda v: (v,), outputs=2)
    meta, outputs = run(runner_for(adapter), task({"v": LinkInput(0, 0)}), [[[loud]]])
    assert [n.message for n in meta.blocked] == ["stop here"]
    assert meta.status == "done" and adapter.calls == []
    for slot in outputs:
        assert len(slot) == 1 and isinstance(slot[0], ExecutionBlocker)
        assert slot[0].message is None


def test_a_returned_blocker_is_broadcast_to_every_output_unreported() -> None:
    loud = ExecutionBlocker("later")
    adapter = FakeAdapter(lambda v: loud, outputs=2)
    meta, outputs = run(runner_for(adapter), task({"v": ConstInput(1)}))
    # The node that receives it reports the message, not the one that returned it.
    assert meta.blocked == ()
    assert outputs == [[loud], [loud]]


def test_node_exception_is_a_failed_result() -> None:
    def boom(v: int) -> tuple[int]:
        raise RuntimeError(f"boom {v}")

    meta, outputs = run(runner_for(FakeAdapter(boom)), task({"v": ConstInput(4)}))
    assert meta.status == "failed" and outputs is None
    assert meta.failure is not None
    assert meta.failure.exception_type == "RuntimeError"
    assert meta.failure.exception_message == "boom 4\n"
    assert meta.failure.current_inputs == {"v": ["4"]}


def test_wrong_return_is_a_failed_result() -> None:
    def reject(value: Any) -> NodeReturn:
        raise TypeError("expected a tuple")

    adapter = FakeAdapter(lambda v: v)
    adapter.normalize_return = reject  # type: ignore[method-assign]
    meta, _ = run(runner_for(adapter), task({"v": ConstInput(1)}))
    assert meta.status == "failed" and meta.failure.exception_type == "TypeError"


def test_unknown_class_is_a_failed_result() -> None:
    def adapter_for(class_type: str) -> Any:
        raise KeyError(class_type)

    meta, outputs = asyncio.run(StepRunner(adapter_for).run(task(), []))
    assert meta.status == "failed" and outputs is None
    assert meta.failure.exception_type == "KeyError"


def test_interrupt_is_reported_as_interrupted() -> None:
    def stop() -> Any:
        raise InterruptProcessingException()

    meta, outputs = run(runner_for(FakeAdapter(stop)), task())
    assert meta.status == "interrupted" and outputs is None


def test_async_function_results_are_awaited() -> None:
    async def double(v: int) -> tuple[int]:
        await asyncio.sleep(0)
        return (v * 2,)

    _, outputs = run(runner_for(FakeAdapter(double)), task({"v": LinkInput(0, 0)}), [[[1, 2]]])
    assert outputs == [[2, 4]]


def test_instances_are_kept_per_node_id_across_runs() -> None:
    adapter = FakeAdapter(lambda: (1,))
    runner = runner_for(adapter)
    run(runner, task(node_id="a"))
    run(runner, task(node_id="a"))
    run(runner, task(node_id="b"))
    assert len(adapter.instances) == 2
    assert adapter.calls[0][0] is adapter.calls[1][0]
    assert adapter.calls[2][0] is not adapter.calls[0][0]
    runner.forget_instances()
    run(runner, task(node_id="a"))
    assert len(adapter.instances) == 3


def test_without_keep_instances_every_run_gets_a_new_instance() -> None:
    adapter = FakeAdapter(lambda: (1,))
    runner = runner_for(adapter, keep_instances=False)
    run(runner, task(node_id="a"))
    run(runner, task(node_id="a"))
    assert len(adapter.instances) == 2


def test_v1_hidden_inputs_arrive_under_their_declared_names() -> None:
    adapter = FakeAdapter(
        lambda v, uid, prompt, plain="default": (f"{uid}:{v}:{plain}",),
        hidden_inputs={"uid": "UNIQUE_ID", "prompt": "PROMPT", "plain": ""},
    )
    hidden = {"UNIQUE_ID": "n7", "PROMPT": {"n7": {}}}
    meta, outputs = run(
        runner_for(adapter), task({"v": ConstInput(1)}, node_id="n7", hidden=hidden)
    )
    assert meta.status == "done", meta.failure
    assert outputs == [["n7:1:default"]]
    kwargs, passed_hidden = adapter.calls[0][1], adapter.calls[0][2]
    # A plain hidden input (no kind) only has a value when the prompt gives one.
    assert kwargs == {"v": 1, "uid": "n7", "prompt": {"n7": {}}}
    assert passed_hidden == hidden


def test_a_hidden_name_given_as_an_input_keeps_the_input_value() -> None:
    adapter = FakeAdapter(
        lambda initial_value0: (initial_value0,), hidden_inputs={"initial_value0": ""}
    )
    _, outputs = run(runner_for(adapter), task({"initial_value0": ConstInput(42)}))
    assert outputs == [[42]]


def test_v3_nodes_get_no_hidden_kwargs() -> None:
    adapter = FakeAdapter(lambda v: (v,), hidden_inputs={"uid": "UNIQUE_ID"})
    adapter.is_v3 = True
    meta, outputs = run(runner_for(adapter), task({"v": ConstInput(1)}, hidden={"UNIQUE_ID": "n"}))
    assert meta.status == "done" and outputs == [[1]]
    assert adapter.calls[0][1] == {"v": 1}


def test_on_call_start_gets_the_prefix_root_and_call_index() -> None:
    seen: list[tuple[str, int]] = []
    adapter = FakeAdapter(lambda v: (v,))
    runner = runner_for(adapter, on_call_start=lambda root, index: seen.append((root, index)))
    run(runner, task({"v": LinkInput(0, 0)}, node_id="x"), [[[1, 2]]])
    run(runner, task({"v": ConstInput(1)}, node_id="x.0.1", prefix="x.0"))
    assert seen == [("x", 0), ("x", 1), ("x.0", 0)]


# --- lazy inputs ---------------------------------------------------------------------------------


def lazy_adapter(needs: Callable[..., Any]) -> FakeAdapter:
    return FakeAdapter(
        lambda mask, a=None, b=None: (a if mask < 0.5 else b,),
        check_lazy=needs,
        lazy_inputs=frozenset({"a", "b"}),
    )


def lazy_task(a: Any, b: Any) -> NodeTask:
    return task({"mask": ConstInput(0.0), "a": a, "b": b}, check_lazy=True)


def test_lazy_check_asks_for_missing_inputs_first() -> None:
    adapter = lazy_adapter(lambda mask, a, b: ["a"] if mask < 0.5 else ["b"])
    meta, outputs = run(runner_for(adapter), lazy_task(MissingInput(), MissingInput()))
    assert meta.status == "lazy" and meta.needed_inputs == ("a",)
    assert outputs is None and adapter.calls == []
    assert adapter.lazy_calls == [{"mask": 0.0, "a": None, "b": None}]


def test_lazy_check_names_already_evaluated_do_not_block() -> None:
    adapter = lazy_adapter(lambda mask, a, b: ["a", "mask"])
    t = lazy_task(LinkInput(0, 0), MissingInput())
    meta, outputs = run(runner_for(adapter), t, [[["A"]]])
    assert meta.status == "done" and outputs == [["A"]]


def test_lazy_check_accepts_a_single_name_and_dedupes() -> None:
    adapter = lazy_adapter(lambda mask, a, b: "b")
    t = task({"mask": LinkInput(0, 0), "a": MissingInput(), "b": MissingInput()}, check_lazy=True)
    meta, _ = run(runner_for(adapter), t, [[[0.9, 0.8]]])
    assert meta.status == "lazy" and meta.needed_inputs == ("b",)


def test_declared_lazy_inputs_absent_from_the_task_are_seen_as_none() -> None:
    adapter = lazy_adapter(lambda mask, a, b: [])
    meta, outputs = run(runner_for(adapter), task({"mask": ConstInput(0.0)}, check_lazy=True))
    assert adapter.lazy_calls == [{"mask": 0.0, "a": None, "b": None}]
    assert meta.status == "done" and outputs == [[None]]


def test_lazy_check_is_skipped_unless_the_task_asks_for_it() -> None:
    adapter = lazy_adapter(lambda mask, a, b: ["a"])
    t = task({"mask": ConstInput(0.0), "a": ConstInput("A")})
    meta, outputs = run(runner_for(adapter), t)
    assert adapter.lazy_calls == [] and outputs == [["A"]]


# --- expansion -----------------------------------------------------------------------------------


GRAPH = {"x.0.1": {"class_type": "Inner", "inputs": {}}}


def test_expansion_result_is_returned_for_the_control_plane() -> None:
    adapter = FakeAdapter(lambda v: {"expand": GRAPH, "result": (["x.0.1", 0], v)}, outputs=2)
    meta, outputs = run(runner_for(adapter), task({"v": ConstInput(3)}, node_id="x"))
    assert meta.status == "expand" and outputs is None
    assert meta.expansion == (ExpansionCall(graph=GRAPH, result=(["x.0.1", 0], 3)),)


def test_mixed_expansion_keeps_blocked_and_plain_calls() -> None:
    blocker = ExecutionBlocker(None)

    def node(v: int) -> Any:
        return {"expand": GRAPH, "result": (["x.0.1", 0],)} if v == 1 else (v,)

    adapter = FakeAdapter(node)
    meta, _ = run(runner_for(adapter), task({"v": LinkInput(0, 0)}), [[[1, blocker, 5]]])
    assert meta.status == "expand"
    assert meta.expansion == (
        ExpansionCall(graph=GRAPH, result=(["x.0.1", 0],)),
        ExpansionCall(graph=None, result=(blocker,)),
        ExpansionCall(graph=None, result=(5,)),
    )


def test_resolve_expansion_reads_links_from_the_producers() -> None:
    blocker = ExecutionBlocker(None)
    calls = (
        ExpansionCall(graph=GRAPH, result=(["x.0.1", 0], "const")),
        ExpansionCall(graph=None, result=(blocker, blocker)),
        ExpansionCall(graph=None, result=(["not", 0], [1, 2])),
    )
    produced = {"x.0.1": [["i0", "i1"]]}
    merged = resolve_expansion(calls, produced, (False, True), 2)
    # A plain call's link-looking value is a value; list outputs are concatenated.
    assert merged == [["i0", "i1", blocker, ["not", 0]], ["const", blocker, 1, 2]]


def test_resolve_expansion_with_a_missing_producer_or_no_result() -> None:
    calls = (
        ExpansionCall(graph=GRAPH, result=(["gone", 0],)),
        ExpansionCall(graph=GRAPH, result=None),
    )
    assert resolve_expansion(calls, {}, (), 1) == [[None, None]]


@pytest.mark.parametrize("slots", [0, 1, 3])
def test_resolve_expansion_always_gives_one_list_per_slot(slots: int) -> None:
    assert len(resolve_expansion((), {}, (), slots)) == slots


def test_approx_bytes_counts_tensors_arrays_and_bytes_in_output_lists() -> None:
    import numpy as np
    import torch

    from node_actors.runner import approx_bytes

    outputs = [[torch.zeros(2, 4, 4, 3)], [np.zeros(10, dtype=np.uint8), b"abc"], [{"s": "x"}]]
    assert approx_bytes(outputs) == 2 * 4 * 4 * 3 * 4 + 10 + 3
    assert approx_bytes([[object()]]) == 0
