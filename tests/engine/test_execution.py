"""ComfyUI's execution semantics, end to end through the controller (no Ray)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tests.engine.harness import make_harness


def types(events: list[tuple[Any, str, dict[str, Any]]]) -> list[str]:
    return [t for _, t, _ in events]


def executing_nodes(events: list[tuple[Any, str, dict[str, Any]]]) -> list[str | None]:
    return [d["node"] for _, t, d in events if t == "executing"]


def image_chain(prefix: str = "engine") -> dict[str, Any]:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
        },
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }


def test_run_sends_comfyui_messages_in_order_and_writes_history(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base)
        prompt_id, entry, events = await h.run(image_chain("order"))
        lifecycle = [t for t in types(events) if t != "progress_state"]
        assert lifecycle == [
            "status",
            "status",
            "execution_start",
            "execution_cached",
            "executing",
            "executing",
            "executing",
            "executed",
            "execution_success",
            "status",
            "executing",
        ]
        assert executing_nodes(events) == ["1", "2", "3", None]
        assert events[-1] == ("c1", "executing", {"node": None, "prompt_id": prompt_id})
        assert events[-2][2] == {"status": {"exec_info": {"queue_remaining": 0}}}
        assert entry["status"]["status_str"] == "success"
        assert entry["status"]["completed"] is True
        assert [m[0] for m in entry["status"]["messages"]] == [
            "execution_start",
            "execution_cached",
            "execution_success",
        ]
        image = entry["outputs"]["3"]["images"][0]
        assert image["type"] == "output" and image["filename"].startswith("order_")
        assert entry["meta"]["3"] == {
            "node_id": "3",
            "display_node": "3",
            "parent_node": None,
            "real_node_id": "3",
        }
        assert entry["prompt"][1] == prompt_id and len(entry["prompt"]) == 5

    arun(scenario())


def test_identical_prompt_is_served_from_cache(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base)
        await h.run(image_chain("cached"))
        _, entry, events = await h.run(image_chain("cached"))
        cached = next(d for _, t, d in events if t == "execution_cached")
        assert sorted(cached["nodes"]) == ["1", "2", "3"]
        assert executing_nodes(events) == [None]
        executed = [d for _, t, d in events if t == "executed"]
        assert len(executed) == 1 and executed[0]["node"] == "3"
        assert entry["outputs"]["3"] == executed[0]["output"]

    arun(scenario())


def test_cache_none_reruns_everything(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base, cache_mode="none")
        await h.run(image_chain("nocache"))
        _, _, events = await h.run(image_chain("nocache"))
        assert executing_nodes(events) == ["1", "2", "3", None]

    arun(scenario())


def test_lru_cache_keeps_at_most_n_entries(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base, cache_mode="lru", lru=2)
        await h.run(image_chain("lru"))
        assert len(h.controller.cache) == 2
        _, _, events = await h.run(image_chain("lru"))
        # Only the two most recent entries (ImageInvert, SaveImage) survived.
        assert executing_nodes(events) == [None]

    arun(scenario())


def lazy_prompt(mask_value: float) -> dict[str, Any]:
    return {
        "n1": {
            "class_type": "StubImage",
            "inputs": {"content": "BLACK", "height": 8, "width": 8, "batch_size": 1},
        },
        "n2": {
            "class_type": "StubMask",
            "inputs": {"value": mask_value, "height": 8, "width": 8, "batch_size": 1},
        },
        "n3": {
            "class_type": "StubImage",
            "inputs": {"content": "WHITE", "height": 8, "width": 8, "batch_size": 1},
        },
        "n4": {
            "class_type": "StubLazyMix",
            "inputs": {"image1": ["n1", 0], "image2": ["n3", 0], "mask": ["n2", 0]},
        },
        "n5": {"class_type": "SaveImage", "inputs": {"images": ["n4", 0], "filename_prefix": "lz"}},
    }


def test_lazy_inputs_run_only_what_the_node_asks_for(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base, cache_mode="none")
        _, entry, events = await h.run(lazy_prompt(0.0))
        assert executing_nodes(events) == ["n2", "n4", "n1", "n4", "n5", None]
        assert entry["status"]["status_str"] == "success"

    arun(scenario())


def test_async_lazy_check_and_async_function(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base, cache_mode="none")
        prompt = lazy_prompt(1.0)
        prompt["n4"]["class_type"] = "StubLazyMixAsync"
        _, entry, events = await h.run(prompt)
        ran = executing_nodes(events)
        assert "n3" in ran and "n1" not in ran
        assert ran.count("n4") == 2
        assert entry["status"]["status_str"] == "success"

    arun(scenario())


def test_expansion_runs_ephemeral_nodes_under_the_parent_display_id(
    engine_base: Path, arun
) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base, cache_mode="none")
        prompt = {
            "i": {
                "class_type": "StubImage",
                "inputs": {"content": "BLACK", "height": 4, "width": 4, "batch_size": 1},
            },
            "x": {"class_type": "StubExpandNested", "inputs": {"image": ["i", 0], "count": 2}},
            "o": {
                "class_type": "SaveImage",
                "inputs": {"images": ["x", 0], "filename_prefix": "ex"},
            },
        }
        _, entry, events = await h.run(prompt)
        assert entry["status"]["status_str"] == "success", entry["status"]
        running = [d for _, t, d in events if t == "executing" and d["node"]]
        ephemeral = [d for d in running if d["node"] not in ("i", "x", "o")]
        # Nested: StubExpand + its 2 inverts + the outer invert.
        assert len(ephemeral) == 4
        assert all(d["node"].startswith("x.") for d in ephemeral)
        assert all(d["display_node"] == "x" for d in ephemeral)

    arun(scenario())


def test_list_outputs_map_over_downstream_nodes(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base, cache_mode="none")
        prompt = {
            "l": {"class_type": "StubListOut", "inputs": {"count": 3}},
            "s": {"class_type": "StubIntToString", "inputs": {"value": ["l", 0]}},
            "o": {"class_type": "StubOutput", "inputs": {"value": ["s", 0]}},
            "sum": {"class_type": "StubListSum", "inputs": {"values": ["l", 0]}},
            "o2": {"class_type": "StubOutput", "inputs": {"value": ["sum", 0]}},
        }
        _, entry, _ = await h.run(prompt)
        assert entry["outputs"]["o"] == {"text": ["0", "1", "2"]}
        assert entry["outputs"]["o2"] == {"text": ["3"]}

    arun(scenario())


def test_execution_blocker_with_message_reports_and_continues(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base, cache_mode="none")
        prompt = {
            "v": {"class_type": "StubInt", "inputs": {"value": 5}},
            "b": {
                "class_type": "StubBlocker",
                "inputs": {"value": ["v", 0], "block": True, "message": "stop here"},
            },
            "o": {"class_type": "StubOutput", "inputs": {"value": ["b", 0]}},
            "o2": {"class_type": "StubOutput", "inputs": {"value": ["v", 0]}},
        }
        _, entry, events = await h.run(prompt)
        errors = [d for _, t, d in events if t == "execution_error"]
        assert len(errors) == 1
        assert errors[0]["exception_type"] == "ExecutionBlocked"
        assert errors[0]["exception_message"] == "Execution Blocked: stop here"
        assert errors[0]["node_id"] == "o" and "timestamp" not in errors[0]
        assert entry["status"]["status_str"] == "success"
        assert "o" not in entry["outputs"] and entry["outputs"]["o2"] == {"text": ["5"]}

    arun(scenario())


def test_blockers_apply_per_list_element(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base, cache_mode="none")
        prompt = {
            "l": {"class_type": "StubListOut", "inputs": {"count": 4}},
            "f": {"class_type": "StubBlockElement", "inputs": {"values": ["l", 0]}},
            "s": {"class_type": "StubIntToString", "inputs": {"value": ["f", 0]}},
            "o": {"class_type": "StubOutput", "inputs": {"value": ["s", 0]}},
        }
        _, entry, _ = await h.run(prompt)
        assert entry["outputs"]["o"] == {"text": ["0", "2"]}

    arun(scenario())


def test_undeclared_linked_inputs_arrive_as_kwargs(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base, cache_mode="none")
        prompt = {
            "a": {"class_type": "StubInt", "inputs": {"value": 2}},
            "b": {"class_type": "StubInt", "inputs": {"value": 40}},
            "sum": {
                "class_type": "StubVariadicSum",
                "inputs": {"first": 1, "extra_a": ["a", 0], "extra_b": ["b", 0], "junk": 100},
            },
            "o": {"class_type": "StubOutput", "inputs": {"value": ["sum", 0]}},
        }
        _, entry, _ = await h.run(prompt)
        assert entry["outputs"]["o"] == {"text": ["43"]}

    arun(scenario())


def test_hidden_inputs_carry_prompt_extra_pnginfo_and_unique_id(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base, cache_mode="none")
        prompt = {
            "v": {"class_type": "StubInt", "inputs": {"value": 1}},
            "h": {"class_type": "StubHidden", "inputs": {"value": ["v", 0]}},
            "o": {"class_type": "StubOutput", "inputs": {"value": ["h", 0]}},
        }
        _, entry, _ = await h.run(prompt, extra_data={"extra_pnginfo": {"workflow": {"id": "w"}}})
        echoed = json.loads(entry["outputs"]["o"]["text"][0])
        assert echoed["unique_id"] == "h"
        assert echoed["extra_pnginfo"] == {"workflow": {"id": "w"}}
        assert echoed["prompt"]["h"]["class_type"] == "StubHidden"

    arun(scenario())


def test_runtime_error_is_reported_and_the_queue_keeps_going(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base, cache_mode="none")
        prompt = {
            "v": {"class_type": "StubInt", "inputs": {"value": 1}},
            "r": {"class_type": "StubRaise", "inputs": {"value": ["v", 0], "message": "boom"}},
            "o": {"class_type": "StubOutput", "inputs": {"value": ["r", 0]}},
        }
        prompt_id, entry, events = await h.run(prompt)
        error = next(d for _, t, d in events if t == "execution_error")
        assert error["node_id"] == "r" and error["node_type"] == "StubRaise"
        assert error["exception_type"] == "RuntimeError"
        assert error["exception_message"].startswith("boom")
        assert error["executed"] == ["v"]
        assert error["traceback"] and error["current_inputs"]["message"] == ["boom"]
        assert "execution_success" not in types(events)
        assert events[-1] == ("c1", "executing", {"node": None, "prompt_id": prompt_id})
        assert entry["status"]["status_str"] == "error"
        assert entry["status"]["completed"] is False
        _, after, _ = await h.run(image_chain("after_error"))
        assert after["status"]["status_str"] == "success"

    arun(scenario())


def test_interrupt_stops_a_running_node(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base, cache_mode="none")
        prompt = {
            "v": {"class_type": "StubInt", "inputs": {"value": 1}},
            "s": {"class_type": "StubSleep", "inputs": {"value": ["v", 0], "seconds": 20.0}},
            "o": {"class_type": "StubOutput", "inputs": {"value": ["s", 0]}},
        }
        prompt_id = await h.submit(prompt)
        while h.controller.running_node_of_client("c1") != "s":
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        assert await h.controller.interrupt(None) is True
        entry = await h.wait(prompt_id, timeout=10)
        events = h.drain_events()
        interrupted = next(d for _, t, d in events if t == "execution_interrupted")
        assert interrupted["node_id"] == "s" and interrupted["executed"] == ["v"]
        assert any(t == "progress" for _, t, _ in events)
        assert entry["status"]["status_str"] == "error"
        assert [m[0] for m in entry["status"]["messages"]][-1] == "execution_interrupted"

    arun(scenario())


def test_is_changed_nan_always_reruns_and_constant_caches(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base)
        prompt = {
            "a": {"class_type": "StubIsChangedAlways", "inputs": {"value": 1}},
            "c": {"class_type": "StubIsChangedConst", "inputs": {"value": 2}},
            "oa": {"class_type": "StubOutput", "inputs": {"value": ["a", 0]}},
            "oc": {"class_type": "StubOutput", "inputs": {"value": ["c", 0]}},
        }
        await h.run(prompt)
        _, _, events = await h.run(prompt)
        ran = executing_nodes(events)
        assert "a" in ran and "oa" in ran
        assert "c" not in ran and "oc" not in ran

    arun(scenario())


def test_partial_execution_targets_run_only_those_outputs(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base, cache_mode="none")
        prompt = {
            "v": {"class_type": "StubInt", "inputs": {"value": 1}},
            "o1": {"class_type": "StubOutput", "inputs": {"value": ["v", 0]}},
            "o2": {"class_type": "StubOutput", "inputs": {"value": ["v", 0]}},
        }
        _, entry, events = await h.run(prompt, partial_execution_targets=["o2"])
        assert executing_nodes(events) == ["v", "o2", None]
        assert list(entry["outputs"]) == ["o2"]

    arun(scenario())


def test_independent_async_branches_run_at_the_same_time(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base, cache_mode="none")
        prompt = {
            "v": {"class_type": "StubInt", "inputs": {"value": 1}},
            "a": {"class_type": "StubAsyncSleep", "inputs": {"value": ["v", 0], "seconds": 0.3}},
            "b": {"class_type": "StubAsyncSleep", "inputs": {"value": ["v", 0], "seconds": 0.3}},
            "oa": {"class_type": "StubOutput", "inputs": {"value": ["a", 0]}},
            "ob": {"class_type": "StubOutput", "inputs": {"value": ["b", 0]}},
        }
        _, entry, events = await h.run(prompt)
        assert entry["status"]["status_str"] == "success"
        order = [
            (t, d["node"]) if t == "executing" else (t, None)
            for _, t, d in events
            if t in ("executing", "executed")
        ]
        # Both sleepers start before either output node produced anything.
        first_executed = order.index(("executed", None))
        started = [n for t, n in order[:first_executed] if t == "executing"]
        assert {"a", "b"} <= set(started)

    arun(scenario())


def test_progress_with_previews_and_set_progress(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base, cache_mode="none")
        _, _, events = await h.run(
            {"p": {"class_type": "StubPreviewProgress", "inputs": {"steps": 3}}}
        )
        progress = [d for _, t, d in events if t == "progress"]
        assert [p["value"] for p in progress] == [1, 2, 3]
        assert all(p["max"] == 3 and p["node"] == "p" for p in progress)
        assert sum(1 for _, t, _ in events if t == "preview") == 3
        _, _, events = await h.run({"s": {"class_type": "StubSetProgress", "inputs": {"steps": 2}}})
        assert not [t for _, t, _ in events if t == "progress"]
        states = [
            d["nodes"]["s"] for _, t, d in events if t == "progress_state" and "s" in d["nodes"]
        ]
        assert any(s["value"] == 1 and s["max"] == 2 for s in states)

    arun(scenario())


def test_free_memory_drops_the_cache_and_node_instances(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base)
        await h.run(image_chain("freed"))
        assert len(h.controller.cache) == 3
        await h.controller.free(unload_models=False, free_memory=True)
        assert len(h.controller.cache) == 0
        assert h.worker.runner._instances == {}
        _, _, events = await h.run(image_chain("freed"))
        assert executing_nodes(events) == ["1", "2", "3", None]

    arun(scenario())
