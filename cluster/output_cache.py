"""The cluster-wide output cache: cache key -> where a node's outputs live.

Entries hold object references (never tensors), so any prompt from any client reuses any
earlier result. Eviction follows ComfyUI's flags: classic keeps only what the prompts now
running use, LRU(n) keeps the n most recently used, none keeps nothing, ram keeps
everything it can within a byte budget (a share of the object store), least recently
used first out, as ComfyUI's RAM-pressure cache does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass
class CacheEntry:
    outputs: Any  # an object reference (or in-process value) of the node's output lists
    ui: dict[str, list[Any]] | None
    output_lengths: tuple[int, ...] = ()
    nbytes: int = 0


CACHE_MODES = ("classic", "lru", "none", "ram")


class OutputCache:
    def __init__(self, mode: str = "ram", lru_size: int = 0, byte_budget: int = 0) -> None:
        """`byte_budget` (ram mode; 0 = unbounded): the outputs the cache may keep alive."""
        if mode not in CACHE_MODES:
            raise ValueError(f"cache mode must be one of {CACHE_MODES}, got {mode!r}")
        self.mode = mode
        self.byte_budget = byte_budget
        self.nbytes = 0
        self.lru_size = lru_size
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> CacheEntry | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return entry

    def peek(self, key: str) -> CacheEntry | None:
        return self._entries.get(key)

    def put(self, key: str, entry: CacheEntry) -> None:
        if self.mode == "none" or key.startswith("uncacheable:"):
            return
        previous = self._entries.pop(key, None)
        if previous is not None:
            self.nbytes -= previous.nbytes
        self._entries[key] = entry
        self.nbytes += entry.nbytes
        if self.mode == "lru":
            while len(self._entries) > max(self.lru_size, 0):
                self._evict_oldest()
        elif self.mode == "ram" and self.byte_budget > 0:
            # The newest entry stays even when it alone is over budget: its prompt uses it.
            while self.nbytes > self.byte_budget and len(self._entries) > 1:
                self._evict_oldest()

    def _evict_oldest(self) -> None:
        _, entry = self._entries.popitem(last=False)
        self.nbytes -= entry.nbytes

    def retain_only(self, live_keys: Iterable[str]) -> None:
        """Classic mode: drop entries no running prompt uses."""
        if self.mode != "classic":
            return
        keep = set(live_keys)
        for key in [k for k in self._entries if k not in keep]:
            self.nbytes -= self._entries.pop(key).nbytes

    def clear(self) -> None:
        self._entries.clear()
        self.nbytes = 0
