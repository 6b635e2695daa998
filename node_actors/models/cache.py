"""The worker's model cache: loaded torch modules by ModelRef key, LRU under a byte budget.

Nodes of one worker run in several threads, so every method is thread-safe, and a model is
loaded by one thread only (single flight): other threads asking for the same key wait for that
load instead of loading a second copy into memory. Pinned keys (models the worker was told to
keep) are never evicted by the budget, only by `free()`.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

logger = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_SIZE_DEPTH = 4


@dataclass
class CacheStats:
    hits: int
    misses: int
    evictions: int
    loaded_bytes: int
    budget_bytes: int
    entries: int


@dataclass
class _Entry:
    value: Any
    size: int
    label: str


def _short(key: str) -> str:
    return key[:12]


def module_bytes(value: Any) -> int:
    """Bytes of parameters and buffers of every torch module or tensor in `value`.

    Looks into dataclasses (e.g. ClipModels), tuples, lists and dict values; a tensor shared by
    two modules of the same container is counted once.
    """
    seen: set[int] = set()

    def tensor_bytes(tensor: torch.Tensor) -> int:
        ident = id(tensor)
        if ident in seen:
            return 0
        seen.add(ident)
        return tensor.numel() * tensor.element_size()

    def walk(item: Any, level: int) -> int:
        if isinstance(item, torch.nn.Module):
            return sum(tensor_bytes(p) for p in item.parameters()) + sum(
                tensor_bytes(b) for b in item.buffers()
            )
        if isinstance(item, torch.Tensor):
            return tensor_bytes(item)
        if level >= _MAX_SIZE_DEPTH:
            return 0
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            children: Any = (getattr(item, f.name) for f in dataclasses.fields(item))
        elif isinstance(item, dict):
            children = item.values()
        elif isinstance(item, tuple | list):
            children = item
        else:
            return 0
        return sum(walk(child, level + 1) for child in children)

    return walk(value, 0)


class ModelCache:
    """Loaded models by key, least recently used first out when over `budget_bytes`."""

    def __init__(
        self, budget_bytes: int, *, is_pinned: Callable[[str], bool] = lambda key: False
    ) -> None:
        if budget_bytes < 0:
            raise ValueError(f"budget_bytes must be >= 0, got {budget_bytes}")
        self._budget = budget_bytes
        self._is_pinned = is_pinned
        # Reentrant so an is_pinned callback that reads this cache cannot deadlock it.
        self._lock = threading.RLock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._loading: dict[str, Future[Any]] = {}
        self._loaded_bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0

    def get(
        self,
        key: str,
        load: Callable[[], T],
        *,
        size_of: Callable[[T], int] | None = None,
        label: str = "",
    ) -> T:
        """The cached value for `key`, loading it with `load()` on a miss.

        A thread that finds another thread loading the same key waits for that load and gets
        its value (or its exception); that counts as a hit, since nothing was loaded twice.
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self._hits += 1
                return entry.value
            pending = self._loading.get(key)
            if pending is None:
                pending = Future()
                self._loading[key] = pending
                self._misses += 1
                owner = True
            else:
                self._hits += 1
                owner = False
        if not owner:
            return pending.result()
        return self._load(key, load, size_of or module_bytes, label, pending)

    def _load(
        self,
        key: str,
        load: Callable[[], T],
        size_of: Callable[[T], int],
        label: str,
        pending: Future[Any],
    ) -> T:
        logger.info("model cache: loading %s (key %s)", label or "model", _short(key))
        try:
            value = load()
            size = int(size_of(value))
        except BaseException as exc:
            with self._lock:
                del self._loading[key]
            pending.set_exception(exc)
            logger.warning("model cache: loading %s (key %s) failed: %s", label, _short(key), exc)
            raise
        with self._lock:
            del self._loading[key]
            self._insert(key, _Entry(value, size, label))
        pending.set_result(value)
        return value

    def _insert(self, key: str, entry: _Entry) -> None:
        """Add `entry` as most recently used, then evict unpinned entries while over budget.

        Called with the lock held. The new entry is never its own eviction victim.
        """
        self._entries[key] = entry
        self._loaded_bytes += entry.size
        logger.info(
            "model cache: loaded %s (key %s), %d bytes; %d of %d bytes in use",
            entry.label or "model",
            _short(key),
            entry.size,
            self._loaded_bytes,
            self._budget,
        )
        for victim in list(self._entries):
            if self._loaded_bytes <= self._budget:
                break
            if victim == key or self._is_pinned(victim):
                continue
            dropped = self._entries.pop(victim)
            self._loaded_bytes -= dropped.size
            self._evictions += 1
            logger.info(
                "model cache: evicted %s (key %s), %d bytes, to make room for %s",
                dropped.label or "model",
                _short(victim),
                dropped.size,
                entry.label or _short(key),
            )
        if self._loaded_bytes > self._budget:
            logger.warning(
                "model cache: %d bytes in use exceed the budget of %d bytes after loading %s "
                "(key %s, %d bytes): the rest is pinned or the model alone is larger",
                self._loaded_bytes,
                self._budget,
                entry.label or "model",
                _short(key),
                entry.size,
            )

    def peek(self, key: str) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            return None if entry is None else entry.value

    def keys(self) -> list[str]:
        """Cached keys, least recently used first."""
        with self._lock:
            return list(self._entries)

    def discard(self, key: str) -> None:
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._loaded_bytes -= entry.size
                logger.info("model cache: discarded %s (key %s)", entry.label, _short(key))

    def free(self, *, keep_pinned: bool = False) -> int:
        """Unload everything (pinned models too unless `keep_pinned`); returns entries dropped.

        A load in flight is not cancelled: the node waiting for it still needs the model.
        """
        with self._lock:
            victims = [key for key in self._entries if not (keep_pinned and self._is_pinned(key))]
            for key in victims:
                self._loaded_bytes -= self._entries.pop(key).size
        # Dropping the last references lets the collector reclaim cycles inside the modules;
        # only then can the CUDA allocator hand the blocks back.
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        logger.info("model cache: freed %d models (keep_pinned=%s)", len(victims), keep_pinned)
        return len(victims)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                evictions=self._evictions,
                loaded_bytes=self._loaded_bytes,
                budget_bytes=self._budget,
                entries=len(self._entries),
            )
