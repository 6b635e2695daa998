"""Property-style check: whatever JSON arrives, validation answers a ValidatedPrompt or a
PromptValidationError with well-formed, JSON-serializable error objects, and never mutates
the caller's prompt."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

from test_validate_helpers import DEFS, FakeValidator, node

from cluster.errors import PromptValidationError
from cluster.validate import ValidatedPrompt, validate_prompt

CLASSES = list(DEFS)
NAMES = sorted({name for d in DEFS.values() for s in d.info["input"].values() for name in s})
IDS = ["1", "2", "3", "4", "5", "10", "-1", "1.5", "", "KSampler.0"]
# Constants that often pass: the generator must reach deep into validation, not stop early.
GOOD = ["a.png", "euler", "simple", 0.5, 1, "5", True, {"__value__": ["a", "b"]}]


def scalar(rng: random.Random) -> Any:
    return rng.choice(
        [
            None,
            True,
            False,
            0,
            -1,
            7,
            2**64,
            10**400,
            -(10**300),
            0.5,
            1e308,
            float("nan"),
            float("inf"),
            "",
            "a.png",
            "5",
            "0x10",
            "\u0000\ud7ff",
        ]
    )


def garbage(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.4:
        return scalar(rng)
    if roll < 0.6:  # link-like, well formed or not
        return [rng.choice([*IDS, 1, None, ["1"]]), rng.choice([0, 1, -1, 0.0, 0.5, True, "0"])]
    if roll < 0.75:
        return [garbage(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    if roll < 0.85:
        return {"__value__": garbage(rng, depth + 1)}
    return {rng.choice([*NAMES, "x"]): garbage(rng, depth + 1) for _ in range(rng.randrange(0, 3))}


def input_value(rng: random.Random, ids: list[str]) -> Any:
    roll = rng.random()
    if roll < 0.45 and ids:
        return [rng.choice(ids), rng.choice([0, 0, 0, 1])]
    if roll < 0.85:
        return rng.choice(GOOD)
    return garbage(rng)


def random_node(rng: random.Random, ids: list[str]) -> Any:
    if rng.random() < 0.01:
        return garbage(rng)
    class_type = rng.choice(CLASSES)
    built: dict[str, Any] = {"class_type": class_type, "inputs": {}}
    sections = DEFS[class_type].info["input"]
    for section in ("required", "optional", "hidden"):
        for name in sections.get(section, {}):
            if rng.random() < 0.9:
                built["inputs"][name] = input_value(rng, ids)
    if rng.random() < 0.1:
        built["inputs"][rng.choice(["x", "extra"])] = garbage(rng)
    roll = rng.random()
    if roll < 0.01:
        del built["class_type"]
    elif roll < 0.02:
        built["class_type"] = rng.choice(["Unknown", 5, None, ["SaveImage"]])
    elif roll < 0.03:
        built["inputs"] = garbage(rng)
    if rng.random() < 0.2:
        built["_meta"] = rng.choice([{"title": scalar(rng)}, "t", None, {}])
    return built


def random_prompt(rng: random.Random) -> Any:
    if rng.random() < 0.01:
        return garbage(rng)
    ids = rng.sample(IDS, rng.randrange(0, len(IDS)))
    return {node_id: random_node(rng, ids) for node_id in ids}


def random_validator(rng: random.Random) -> FakeValidator:
    verdicts = [True, False, "bad", None, 3]
    results = {c: [rng.choice(verdicts) for _ in range(rng.randrange(1, 3))] for c in DEFS}
    raises = {c: RuntimeError("boom") for c in DEFS if rng.random() < 0.1}
    return FakeValidator(results, raises)


def check_error(error: Any) -> None:
    assert set(error) == {"type", "message", "details", "extra_info"}
    assert isinstance(error["type"], str) and isinstance(error["message"], str)
    assert isinstance(error["details"], str) and isinstance(error["extra_info"], dict)


def outcome(prompt: Any, targets: Any, validator: FakeValidator) -> Any:
    try:
        return asyncio.run(validate_prompt(prompt, DEFS, targets, validator))
    except PromptValidationError as exc:
        return exc


async def outcome_async(prompt: Any, targets: Any, validator: FakeValidator) -> Any:
    try:
        return await validate_prompt(prompt, DEFS, targets, validator)
    except PromptValidationError as exc:
        return exc


async def fuzz(cases: int) -> tuple[set[str], set[str]]:
    rng = random.Random(20240611)
    kinds: set[str] = set()
    seen: set[str] = set()
    for _ in range(cases):
        prompt = random_prompt(rng)
        targets = rng.choice([None, None, None, [], ["1", "2"], ["3", 4, None], "1"])
        before = json.dumps(prompt)
        result = await outcome_async(prompt, targets, random_validator(rng))
        assert json.dumps(prompt) == before  # the caller's prompt is untouched
        if isinstance(result, ValidatedPrompt):
            kinds.add("ok")
            assert result.outputs and set(result.outputs) <= set(prompt)
            json.dumps(result.prompt)
        else:
            assert isinstance(result, PromptValidationError)
            kinds.add(result.error["type"])
            check_error(result.error)
            json.dumps(result.error)
        errors = [e for entry in result.node_errors.values() for e in entry["errors"]]
        json.dumps(result.node_errors)
        for error in errors:
            check_error(error)
            seen.add(error["type"])
    return kinds, seen


def test_malformed_prompts_only_ever_raise_prompt_validation_error() -> None:
    kinds, seen = asyncio.run(fuzz(1200))
    # The generator must reach deep into validation, not stop at the shape checks.
    assert {"ok", "prompt_outputs_failed_validation", "missing_node_type"} <= kinds
    assert {"invalid_prompt", "prompt_no_outputs"} <= kinds
    assert {"dependency_cycle", "return_type_mismatch", "exception_during_validation"} <= seen
    assert {"custom_validation_failed", "value_not_in_list", "invalid_input_type"} <= seen


def test_values_json_cannot_carry_still_fail_cleanly() -> None:
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    cases: list[Any] = [
        {"1": node("ShowFlag", flag=True, text=10**5000)},  # over Python's int-to-str limit
        {"1": node("SolidMask", value=1, width=10**5000), "2": node("Sink", value=["1", 0])},
        {"1": node("Sink", value={"__value__": deep})},
        {1: node("Sink", value=1)},
        {("a",): node("Sink", value=1)},
    ]
    for prompt in cases:
        result = outcome(prompt, None, FakeValidator())
        assert isinstance(result, ValidatedPrompt | PromptValidationError)
    assert outcome(cases[2], None, FakeValidator()).error["type"] == "invalid_prompt"
    assert outcome(cases[3], None, FakeValidator()).error["type"] == "invalid_prompt"
