"""ModelCache: LRU order, budget, pinning, single flight, free() and stats (no Ray)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest
import torch

from node_actors.models.cache import CacheStats, ModelCache, module_bytes
from node_actors.models.clip_models import ClipModels


def sized(n: int) -> Callable[[object], int]:
    return lambda value: n


def fill(cache: ModelCache, *keys: str, size: int = 4) -> None:
    for key in keys:
        cache.get(key, lambda key=key: f"model-{key}", size_of=sized(size), label=key)


def test_hit_returns_cached_value_and_moves_it_to_most_recent() -> None:
    cache = ModelCache(100)
    fill(cache, "a", "b", "c")
    assert cache.keys() == ["a", "b", "c"]
    loads: list[str] = []
    value = cache.get("a", lambda: loads.append("a") or "reloaded", size_of=sized(4))
    assert value == "model-a"
    assert loads == []
    assert cache.keys() == ["b", "c", "a"]
    assert cache.stats() == CacheStats(
        hits=1, misses=3, evictions=0, loaded_bytes=12, budget_bytes=100, entries=3
    )


def test_peek_changes_neither_order_nor_stats() -> None:
    cache = ModelCache(100)
    fill(cache, "a", "b")
    before = cache.stats()
    assert cache.peek("a") == "model-a"
    assert cache.peek("zzz") is None
    assert cache.keys() == ["a", "b"]
    assert cache.stats() == before


def test_budget_evicts_least_recently_used_first() -> None:
    cache = ModelCache(10)
    fill(cache, "a", "b")
    cache.get("a", lambda: "unused", size_of=sized(4))  # b is now the oldest
    fill(cache, "c")
    assert cache.keys() == ["a", "c"]
    stats = cache.stats()
    assert (stats.evictions, stats.loaded_bytes, stats.entries) == (1, 8, 2)
    # An evicted model is loaded again on the next request.
    assert cache.get("b", lambda: "b-again", size_of=sized(4)) == "b-again"
    assert cache.keys() == ["c", "b"]


def test_pinned_models_survive_the_budget() -> None:
    cache = ModelCache(10, is_pinned=lambda key: key == "a")
    fill(cache, "a", "b", "c")
    assert cache.keys() == ["a", "c"]
    fill(cache, "d")
    assert cache.keys() == ["a", "d"]
    assert cache.stats().evictions == 2


def test_model_larger_than_budget_is_kept_alone_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = ModelCache(10)
    fill(cache, "a", "b")
    with caplog.at_level(logging.WARNING, logger="node_actors.models.cache"):
        cache.get("huge", lambda: "huge", size_of=sized(50), label="sdxl unet")
    assert cache.keys() == ["huge"]
    assert cache.stats().loaded_bytes == 50
    assert any(
        "exceed the budget" in r.getMessage() and "sdxl unet" in r.getMessage()
        for r in caplog.records
    )
    # The next model pushes the oversized one out like any other.
    fill(cache, "small")
    assert cache.keys() == ["small"]


def test_single_flight_loads_once_for_concurrent_gets() -> None:
    cache = ModelCache(100)
    loads: list[int] = []
    start = threading.Barrier(8)

    def load() -> object:
        loads.append(1)
        # Hold the load until the seven other threads are waiting for it (each counts a hit
        # when it joins a load in flight), so they cannot have arrived after it finished.
        deadline = time.monotonic() + 5
        while cache.stats().hits < 7 and time.monotonic() < deadline:
            time.sleep(0.001)
        return object()

    results: list[object] = []

    def worker() -> None:
        start.wait()
        results.append(cache.get("k", load, size_of=sized(1)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(loads) == 1
    assert len(results) == 8 and all(r is results[0] for r in results)
    stats = cache.stats()
    assert (stats.misses, stats.hits, stats.entries) == (1, 7, 1)


def test_failed_load_reaches_waiters_and_is_retried_later() -> None:
    cache = ModelCache(100)
    release = threading.Event()
    attempts: list[int] = []

    def failing() -> object:
        attempts.append(1)
        release.wait(5)
        raise OSError("disk gone")

    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            cache.get("k", failing, size_of=sized(1))
        except OSError as exc:
            errors.append(exc)

    first = threading.Thread(target=waiter)
    first.start()
    while not attempts:
        time.sleep(0.001)
    second = threading.Thread(target=waiter)
    second.start()
    while cache.stats().hits < 1:
        time.sleep(0.001)
    release.set()
    first.join(5)
    second.join(5)
    assert len(attempts) == 1
    assert [str(e) for e in errors] == ["disk gone", "disk gone"]
    assert cache.keys() == []
    assert cache.get("k", lambda: "ok", size_of=sized(1)) == "ok"


def test_free_unloads_all_or_keeps_pinned() -> None:
    cache = ModelCache(100, is_pinned=lambda key: key == "b")
    fill(cache, "a", "b", "c")
    assert cache.free(keep_pinned=True) == 2
    assert cache.keys() == ["b"]
    assert cache.stats().loaded_bytes == 4
    assert cache.free() == 1
    assert cache.keys() == []
    assert cache.stats().loaded_bytes == 0
    assert cache.free() == 0


def test_discard_drops_one_entry() -> None:
    cache = ModelCache(100)
    fill(cache, "a", "b")
    cache.discard("a")
    cache.discard("missing")
    assert cache.keys() == ["b"]
    assert cache.stats().loaded_bytes == 4


def test_default_size_is_parameter_and_buffer_bytes() -> None:
    linear = torch.nn.Linear(4, 3)  # 12 + 3 float32
    norm = torch.nn.BatchNorm1d(2).to(
        torch.float64
    )  # weight, bias, mean, var: 8 float64; count int64
    assert module_bytes(linear) == 15 * 4
    assert module_bytes(norm) == 8 * 8 + 8
    assert module_bytes(ClipModels(family="sdxl", l=linear, g=norm)) == 15 * 4 + 72
    assert module_bytes((linear, linear)) == 15 * 4  # one module twice is one copy in memory
    assert module_bytes("not a model") == 0
    cache = ModelCache(1000)
    cache.get("clip", lambda: ClipModels(family="sd1", l=linear))
    assert cache.stats().loaded_bytes == 60


def test_negative_budget_is_rejected() -> None:
    with pytest.raises(ValueError, match="budget"):
        ModelCache(-1)
