"""cluster.output_cache: ComfyUI's cache modes (§3.4) over key -> CacheEntry."""

from __future__ import annotations

import pytest

from cluster.output_cache import CacheEntry, OutputCache


def entry(tag: str) -> CacheEntry:
    return CacheEntry(outputs=[[tag]], ui={"text": [tag]}, output_lengths=(1,))


def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="cache mode"):
        OutputCache("bogus")


def test_ram_keeps_everything_and_counts_hits_and_misses() -> None:
    cache = OutputCache("ram")
    for i in range(50):
        cache.put(f"k{i}", entry(str(i)))
    assert len(cache) == 50
    assert cache.get("k7") is not None and cache.get("k7").outputs == [["7"]]
    assert cache.get("nope") is None
    assert (cache.hits, cache.misses) == (2, 1)


def test_peek_does_not_count_or_refresh() -> None:
    cache = OutputCache("lru", lru_size=2)
    cache.put("a", entry("a"))
    cache.put("b", entry("b"))
    assert cache.peek("a") is not None and cache.peek("zz") is None
    assert (cache.hits, cache.misses) == (0, 0)
    cache.put("c", entry("c"))  # "a" was only peeked, so it is still the oldest
    assert cache.peek("a") is None and cache.peek("b") is not None


def test_lru_evicts_the_least_recently_used() -> None:
    cache = OutputCache("lru", lru_size=2)
    cache.put("a", entry("a"))
    cache.put("b", entry("b"))
    assert cache.get("a") is not None  # refresh a
    cache.put("c", entry("c"))
    assert len(cache) == 2
    assert cache.peek("b") is None
    assert cache.peek("a") is not None and cache.peek("c") is not None


def test_lru_put_of_existing_key_replaces_and_refreshes() -> None:
    cache = OutputCache("lru", lru_size=2)
    cache.put("a", entry("a1"))
    cache.put("b", entry("b"))
    cache.put("a", entry("a2"))
    cache.put("c", entry("c"))
    assert cache.peek("a") is not None and cache.peek("a").outputs == [["a2"]]
    assert cache.peek("b") is None


def test_none_keeps_nothing() -> None:
    cache = OutputCache("none")
    cache.put("a", entry("a"))
    assert len(cache) == 0 and cache.get("a") is None


def test_uncacheable_keys_are_never_stored() -> None:
    cache = OutputCache("ram")
    cache.put("uncacheable:123", entry("x"))
    assert len(cache) == 0


def test_classic_retains_only_live_keys() -> None:
    cache = OutputCache("classic")
    for key in ("a", "b", "c"):
        cache.put(key, entry(key))
    cache.retain_only(iter(["b", "c", "unknown"]))
    assert cache.peek("a") is None
    assert cache.peek("b") is not None and cache.peek("c") is not None
    assert len(cache) == 2


@pytest.mark.parametrize("mode", ["ram", "lru"])
def test_retain_only_is_a_no_op_outside_classic(mode: str) -> None:
    cache = OutputCache(mode, lru_size=10)
    cache.put("a", entry("a"))
    cache.retain_only([])
    assert cache.peek("a") is not None


def test_clear_drops_everything() -> None:
    cache = OutputCache("ram")
    cache.put("a", entry("a"))
    cache.clear()
    assert len(cache) == 0 and cache.get("a") is None


def test_ram_mode_evicts_least_recently_used_outputs_over_its_byte_budget() -> None:
    from cluster.output_cache import CacheEntry, OutputCache

    cache = OutputCache("ram", byte_budget=100)
    cache.put("a", CacheEntry("ref-a", None, (), nbytes=40))
    cache.put("b", CacheEntry("ref-b", None, (), nbytes=40))
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("c", CacheEntry("ref-c", None, (), nbytes=40))
    assert cache.peek("b") is None
    assert cache.peek("a") is not None and cache.peek("c") is not None
    assert cache.nbytes == 80


def test_ram_mode_keeps_the_newest_entry_even_over_budget() -> None:
    from cluster.output_cache import CacheEntry, OutputCache

    cache = OutputCache("ram", byte_budget=10)
    cache.put("small", CacheEntry("s", None, (), nbytes=5))
    cache.put("huge", CacheEntry("h", None, (), nbytes=500))
    assert cache.peek("small") is None and cache.peek("huge") is not None
    cache.clear()
    assert cache.nbytes == 0 and len(cache) == 0


def test_replacing_an_entry_counts_its_bytes_once() -> None:
    from cluster.output_cache import CacheEntry, OutputCache

    cache = OutputCache("ram", byte_budget=1000)
    cache.put("k", CacheEntry("1", None, (), nbytes=300))
    cache.put("k", CacheEntry("2", None, (), nbytes=200))
    assert cache.nbytes == 200
