"""Whether a value fits one declared input, with ComfyUI's error shapes: presence, link shape
and the socket type rule for links; coercion, range and option rules for constants; and the
errors a node's own VALIDATE_INPUTS verdict turns into.

The error texts here are matched byte for byte by clients; see §2.3 of the behaviour notes.
"""

from __future__ import annotations

import copy
from typing import Any

from cluster.errors import error_dict
from cluster.prompt_format import safe_repr, safe_text

ANY_TYPE = "*"
# V3 MatchType sockets: the frontend resolves them, so the server lets them through.
MATCH_TYPE = "COMFY_MATCHTYPE_V3"
COMBO_TYPE = "COMBO"
# ComfyUI stops echoing a combo's options back above this many.
MAX_LISTED_OPTIONS = 20
_COERCIONS: tuple[tuple[str, Any], ...] = (
    ("INT", int),
    ("FLOAT", float),
    ("STRING", str),
    ("BOOLEAN", bool),
)


def types_match(received: Any, declared: Any) -> bool:
    """True when an output of type `received` may be linked to an input of type `declared`.

    Equality is tested as `not (received != declared)`, with the received type on the left and
    both objects exactly as the definitions hold them. Python tries a str subclass's reflected
    `__ne__` first when the other side is a plain str, so a node pack's "any type" (a str
    subclass whose `__ne__` returns False) widens the match on either side, as in ComfyUI.
    """
    if not received != declared:
        return True
    if received == ANY_TYPE or declared == ANY_TYPE:
        return True
    if received == MATCH_TYPE or declared == MATCH_TYPE:
        return True
    # Some node packs declare an output's type as its list of options (a combo output).
    if isinstance(received, list | tuple) and declared == COMBO_TYPE:
        return True
    if not isinstance(received, str) or not isinstance(declared, str):
        return False
    received_set = {part.strip() for part in received.split(",")}
    declared_set = {part.strip() for part in declared.split(",")}
    if ANY_TYPE in received_set or ANY_TYPE in declared_set:
        return True
    return not received_set.isdisjoint(declared_set)


def input_config(input_type: Any, options: dict[str, Any]) -> list[Any]:
    """ComfyUI's `input_config`: the (type, options) pair, copied off the definition."""
    return [copy.deepcopy(input_type), copy.deepcopy(options)]


def check_constant(
    name: str, value: Any, input_type: Any, options: dict[str, Any], value_checks: bool
) -> tuple[Any, dict[str, Any] | None]:
    """(value to store in the prompt, error or None) for a constant input.

    `{"__value__": v}` is unwrapped, INT/FLOAT/STRING/BOOLEAN are coerced with Python's
    int/float/str/bool, then (when `value_checks`, i.e. VALIDATE_INPUTS does not own the input)
    min, max and combo options are checked. A comparison that raises (a string against a
    numeric `min`) propagates, as in ComfyUI, and becomes an exception error upstream.
    """
    if isinstance(value, dict) and "__value__" in value:
        value = value["__value__"]
    try:
        for type_name, convert in _COERCIONS:
            if input_type == type_name:
                value = convert(value)
    except Exception as exc:
        # `value` is still the unwrapped, unconverted value: that is what the prompt keeps.
        return value, _conversion_error(name, value, input_type, options, exc)
    if not value_checks:
        return value, None
    error = _range_error(name, value, input_type, options)
    if error is None:
        error = _combo_error(name, value, input_type, options)
    return value, error


def _conversion_error(
    name: str, value: Any, input_type: Any, options: dict[str, Any], exc: Exception
) -> dict[str, Any]:
    return error_dict(
        "invalid_input_type",
        f"Failed to convert an input value to a {safe_text(input_type)} value",
        f"{name}, {safe_text(value)}, {safe_text(exc)}",
        {
            "input_name": name,
            "input_config": input_config(input_type, options),
            "received_value": copy.deepcopy(value),
            "exception_message": safe_text(exc),
        },
    )


def _range_error(
    name: str, value: Any, input_type: Any, options: dict[str, Any]
) -> dict[str, Any] | None:
    for key, error_type, template in (
        ("min", "value_smaller_than_min", "Value {} smaller than min of {}"),
        ("max", "value_bigger_than_max", "Value {} bigger than max of {}"),
    ):
        if key not in options:
            continue
        bound = options[key]
        if (value < bound) if key == "min" else (value > bound):
            return error_dict(
                error_type,
                template.format(safe_text(value), safe_text(bound)),
                name,
                {
                    "input_name": name,
                    "input_config": input_config(input_type, options),
                    "received_value": copy.deepcopy(value),
                },
            )
    return None


def _combo_error(
    name: str, value: Any, input_type: Any, options: dict[str, Any]
) -> dict[str, Any] | None:
    if isinstance(input_type, list | tuple):
        choices: Any = input_type
    elif input_type == COMBO_TYPE:
        choices = options.get("options", [])
    else:
        return None
    choices = list(choices) if isinstance(choices, list | tuple) else []
    if options.get("multiselect", False) and isinstance(value, list):
        invalid = [v for v in value if v not in choices]
    else:
        invalid = [value] if value not in choices else []
    if not invalid:
        return None
    config: list[Any] | None = input_config(input_type, options)
    if len(choices) > MAX_LISTED_OPTIONS:
        # Model folders can list thousands of files: do not echo them back.
        listed = f"(list of length {len(choices)})"
        config = None
    else:
        listed = safe_text(choices)
    return error_dict(
        "value_not_in_list",
        "Value not in list",
        f"{name}: {', '.join(safe_repr(v) for v in invalid)} not in {listed}",
        {"input_name": name, "input_config": config, "received_value": copy.deepcopy(value)},
    )


def missing_input_error(name: str) -> dict[str, Any]:
    return error_dict(
        "required_input_missing", "Required input is missing", name, {"input_name": name}
    )


def bad_link_error(
    name: str, value: list[Any], input_type: Any, options: dict[str, Any]
) -> dict[str, Any]:
    return error_dict(
        "bad_linked_input",
        "Bad linked input, must be a length-2 list of [node_id, slot_index]",
        name,
        {
            "input_name": name,
            "input_config": input_config(input_type, options),
            "received_value": copy.deepcopy(value),
        },
    )


def type_mismatch_error(
    name: str, link: list[Any], received: Any, input_type: Any, options: dict[str, Any]
) -> dict[str, Any]:
    return error_dict(
        "return_type_mismatch",
        "Return type mismatch between linked nodes",
        f"{name}, received_type({safe_text(received)}) mismatch input_type({safe_text(input_type)})",
        {
            "input_name": name,
            "input_config": input_config(input_type, options),
            "received_type": received,
            "linked_node": list(link),
        },
    )


def custom_validation_errors(names: list[str], results: Any) -> list[dict[str, Any]]:
    """One error per validated input name per failing VALIDATE_INPUTS result (not True)."""
    if not isinstance(results, list | tuple):
        results = [results]
    errors = []
    for name in names:
        for result in results:
            if result is True:
                continue
            details = name if result is False else f"{name} - {safe_text(result)}"
            errors.append(
                error_dict(
                    "custom_validation_failed",
                    "Custom validation failed for node",
                    details,
                    {"input_name": name},
                )
            )
    return errors
