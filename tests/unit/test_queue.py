"""cluster.queue against §2.4 and §1.2 of the reference (heap order, pending/running)."""

from __future__ import annotations

from typing import Any

from cluster.queue import JobQueue, QueueItem


def item(number: float | int, prompt_id: str, **extra: Any) -> QueueItem:
    return QueueItem(
        number,
        prompt_id,
        {"1": {"class_type": "X", "inputs": {}}},
        dict(extra),
        ["1"],
    )


def test_row_is_five_elements_without_the_sensitive_dict() -> None:
    queued = QueueItem(3, "p", {"1": {}}, {"client_id": "c"}, ["1"], {"api_key_comfy_org": "k"})
    assert queued.as_list() == [3, "p", {"1": {}}, {"client_id": "c"}, ["1"]]
    record = queued.to_record()
    assert "sensitive" not in record and "k" not in repr(record)


def test_record_round_trip() -> None:
    queued = item(2.5, "p", client_id="c")
    again = QueueItem.from_record(queued.to_record())
    assert again.as_list() == queued.as_list()
    assert again.sensitive == {}
    minimal = QueueItem.from_record({"number": 1, "prompt_id": "q", "prompt": {}})
    assert minimal.extra_data == {} and minimal.outputs == []


def test_pop_takes_the_smallest_number_first() -> None:
    queue = JobQueue()
    queue.put(item(5, "e"))
    queue.put(item(1, "a"))
    queue.put(item(-2, "front"))
    queue.put(item(3.0, "c"))
    popped = [queue.pop().prompt_id for _ in range(4)]
    assert popped == ["front", "a", "c", "e"]
    assert queue.pop() is None


def test_ties_on_number_break_by_prompt_id() -> None:
    queue = JobQueue()
    queue.put(item(1, "b"))
    queue.put(item(1, "a"))
    assert queue.pop().prompt_id == "a"


def test_popped_items_are_running_until_finished() -> None:
    queue = JobQueue()
    queue.put(item(0, "a"))
    queue.put(item(1, "b"))
    running = queue.pop()
    assert running is not None and running.prompt_id == "a"
    assert [i.prompt_id for i in queue.running_items()] == ["a"]
    assert [i.prompt_id for i in queue.pending_items()] == ["b"]
    assert queue.remaining() == 2 and queue.pending_count() == 1
    assert queue.get("a") == ("in_progress", running)
    assert queue.get("b")[0] == "pending"
    assert queue.get("zz") is None
    assert queue.finish("a") is running
    assert queue.finish("a") is None
    assert queue.remaining() == 1


def test_delete_removes_pending_only() -> None:
    queue = JobQueue()
    for n, p in enumerate("abcd"):
        queue.put(item(n, p))
    queue.pop()  # "a" runs
    assert queue.delete(["a", "c", "zz"]) == ["c"]
    assert [i.prompt_id for i in queue.running_items()] == ["a"]
    assert [i.prompt_id for i in queue.pending_items()] == ["b", "d"]
    assert [queue.pop().prompt_id, queue.pop().prompt_id, queue.pop()] == ["b", "d", None]


def test_clear_empties_pending_and_keeps_running() -> None:
    queue = JobQueue()
    for n, p in enumerate("abc"):
        queue.put(item(n, p))
    queue.pop()
    assert sorted(queue.clear()) == ["b", "c"]
    assert queue.pending_items() == [] and queue.pop() is None
    assert queue.remaining() == 1


def test_pending_items_are_in_heap_order_not_sorted() -> None:
    queue = JobQueue()
    for n, p in [(3, "c"), (1, "a"), (2, "b"), (0, "z")]:
        queue.put(item(n, p))
    listed = [i.number for i in queue.pending_items()]
    # A heap array: the root is the minimum, every parent <= its children.
    assert listed[0] == 0 and sorted(listed) == [0, 1, 2, 3]
    assert all(listed[(i - 1) // 2] <= listed[i] for i in range(1, len(listed)))


def test_a_deleted_id_queued_again_is_listed_once() -> None:
    queue = JobQueue()
    queue.put(item(0, "a"))
    queue.delete(["a"])
    queue.put(item(4, "a"))
    assert [i.number for i in queue.pending_items()] == [4]
    assert queue.pop().number == 4 and queue.pop() is None
