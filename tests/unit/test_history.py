"""cluster.history against §1.2 of the reference (GET /history window rules, cap)."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.history import MAX_HISTORY, History


def filled(count: int, capacity: int = MAX_HISTORY) -> History:
    history = History(capacity)
    for i in range(count):
        history.add(f"p{i}", {"n": i})
    return history


def ids(page: dict[str, Any]) -> list[str]:
    return list(page)


def test_default_capacity_is_comfyui_cap() -> None:
    assert MAX_HISTORY == 10_000


def test_oldest_entries_are_evicted_over_capacity() -> None:
    history = filled(5, capacity=3)
    assert len(history) == 3
    assert ids(history.as_dict()) == ["p2", "p3", "p4"]
    assert "p0" not in history and "p4" in history


def test_get_and_contains() -> None:
    history = filled(2)
    assert history.get("p1") == {"n": 1}
    assert history.get("nope") is None
    assert "p0" in history and "nope" not in history


@pytest.mark.parametrize(
    ("max_items", "offset", "expected"),
    [
        (None, -1, ["p0", "p1", "p2", "p3", "p4"]),  # defaults: everything
        (2, -1, ["p3", "p4"]),  # negative offset + max_items: the last max_items
        (10, -1, ["p0", "p1", "p2", "p3", "p4"]),  # more than there are
        (2, 1, ["p1", "p2"]),  # from offset, at most max_items
        (None, 3, ["p3", "p4"]),  # from offset to the end
        (None, 5, []),  # offset == length
        (3, 99, []),  # offset past the end gives {}
        (None, -7, ["p0", "p1", "p2", "p3", "p4"]),  # negative offset without max_items
    ],
)
def test_page_window(max_items: int | None, offset: int, expected: list[str]) -> None:
    assert ids(filled(5).page(max_items, offset)) == expected


def test_page_is_oldest_first_and_carries_entries() -> None:
    page = filled(3).page()
    assert list(page.items()) == [("p0", {"n": 0}), ("p1", {"n": 1}), ("p2", {"n": 2})]


def test_delete_reports_what_was_removed() -> None:
    history = filled(3)
    assert history.delete(["p1", "zz", "p1"]) == ["p1"]
    assert ids(history.as_dict()) == ["p0", "p2"]


def test_clear() -> None:
    history = filled(3)
    history.clear()
    assert len(history) == 0 and history.page() == {}


def test_re_adding_an_id_replaces_its_entry() -> None:
    history = filled(3)
    history.add("p0", {"n": "again"})
    assert len(history) == 3
    assert history.get("p0") == {"n": "again"}
