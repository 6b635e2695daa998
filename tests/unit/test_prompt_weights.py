"""ComfyUI emphasis syntax: groups, explicit weights, nesting, escapes, literal and broken brackets."""

from __future__ import annotations

import pytest

from node_actors.models.prompt_weights import parse_weight_runs, parse_weights


def approx(pairs: list[tuple[str, float]]) -> list[tuple[str, object]]:
    return [(text, pytest.approx(weight)) for text, weight in pairs]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("a cat", [("a cat", 1.0)]),
        ("(a)", [("a", 1.1)]),
        ("((a))", [("a", 1.21)]),
        ("(((a)))", [("a", 1.331)]),
        ("(a:1.5)", [("a", 1.5)]),
        ("x (a:1.5) y", [("x ", 1.0), ("a", 1.5), (" y", 1.0)]),
        ("(a:0)", [("a", 0.0)]),
        ("(a: -0.5)", [("a", -0.5)]),
        # The explicit weight sets its group's weight; groups inside multiply from there.
        ("((a):2)", [("a", 2.2)]),
        ("((a:1.5))", [("a", 1.5)]),
        ("(a (b:0.5) c)", [("a ", 1.1), ("b", 0.5), (" c", 1.1)]),
        ("(a (b) c:2)", [("a ", 2.0), ("b", 2.2), (" c", 2.0)]),
        # Only the text after the last ':' is the weight.
        ("(a:b:1.2)", [("a:b", 1.2)]),
    ],
)
def test_groups_and_weights(text: str, expected: list[tuple[str, float]]) -> None:
    assert parse_weights(text) == approx(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\(a\\)", [("(a)", 1.0)]),
        ("(a \\(b\\))", [("a (b)", 1.1)]),
        ("\\((a)\\)", [("(", 1.0), ("a", 1.1), (")", 1.0)]),
        ("[a]", [("[a]", 1.0)]),
        ("([a])", [("[a]", 1.1)]),
    ],
)
def test_escapes_and_square_brackets_are_literal(
    text: str, expected: list[tuple[str, float]]
) -> None:
    assert parse_weights(text) == approx(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A weight that is not a float leaves a plain 1.1 group with the colon in its text.
        ("(a:b)", [("a:b", 1.1)]),
        ("(a:)", [("a:", 1.1)]),
        ("(:1.5)", [(":1.5", 1.1)]),
        ("(a:inf)", [("a:inf", 1.1)]),
        ("(a:1.5x)", [("a:1.5x", 1.1)]),
        ("(http://x)", [("http://x", 1.1)]),
    ],
)
def test_bad_weight_is_literal(text: str, expected: list[tuple[str, float]]) -> None:
    assert parse_weights(text) == approx(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(a", [("(a", 1.0)]),
        ("a)", [("a)", 1.0)]),
        ("x (a (b) c", [("x (a (b) c", 1.0)]),
        # After a stray ')' the rest stays plain until the depth is back to zero (ComfyUI's rule).
        ("a) (b)", [("a) (b)", 1.0)]),
        ("(a) b)", [("a", 1.1), (" b)", 1.0)]),
        ("()", []),
    ],
)
def test_unbalanced_parentheses_are_kept(text: str, expected: list[tuple[str, float]]) -> None:
    assert parse_weights(text) == approx(expected)


def test_equal_neighbours_merge_but_runs_keep_boundaries() -> None:
    assert parse_weights("a (b:1) c") == [("a b c", 1.0)]
    assert parse_weights("(a)(b)") == approx([("ab", 1.1)])
    # The tokenizer needs the group edges: ComfyUI tokenizes "a" and "b" as separate words.
    assert parse_weight_runs("(a)(b)") == approx([("a", 1.1), ("b", 1.1)])
    assert parse_weight_runs("a (b:1) c") == [("a ", 1.0), ("b", 1.0), (" c", 1.0)]


def test_different_weights_do_not_merge() -> None:
    assert parse_weights("(a)((b))") == approx([("a", 1.1), ("b", 1.21)])
