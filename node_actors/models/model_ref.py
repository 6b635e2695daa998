"""ModelRef: what a loader node returns instead of model weights.

A ModelRef names the file(s) a model loads from, their content identity, the patches (LoRAs)
to apply and the options that change what is loaded. It is small, frozen and picklable, so it
travels through Ray's object store and the control plane can read it (this module must not
import torch). The worker that runs a node taking a ModelRef turns it into a torch module via
its ModelCache, keyed by `cache_key()`.

Keys are sha256 hex digests of a canonical JSON text, never of `hash()` or `id()`, so every
process of the cluster computes the same key for the same model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import MutableMapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import blake3

logger = logging.getLogger(__name__)

# Options that change how a loaded model is used (at encode time), not which weights are loaded:
# two refs that differ only in these share one cached model.
ENCODE_ONLY_OPTIONS: frozenset[str] = frozenset({"stop_at_layer"})

MODEL_KINDS: frozenset[str] = frozenset({"unet", "clip", "vae"})

_MAX_SCAN_DEPTH = 4


class ModelRefError(ValueError):
    """A ModelRef built from inconsistent parts, or holding an option value with no stable key."""


@dataclass(frozen=True)
class LoraPatch:
    """One LoRA file applied at `strength` (ComfyUI's strength_model / strength_clip)."""

    path: str
    file_hash: str
    strength: float


@dataclass(frozen=True)
class ModelRef:
    """A reference to a model a worker can load: files, content hashes, patches and options."""

    kind: str
    files: tuple[str, ...]
    file_hashes: tuple[str, ...]
    family: str | None = None
    patches: tuple[LoraPatch, ...] = ()
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ModelRefError(
                f"unknown model kind {self.kind!r}; expected one of {sorted(MODEL_KINDS)}"
            )
        if len(self.files) != len(self.file_hashes):
            raise ModelRefError(
                f"{len(self.files)} files but {len(self.file_hashes)} file hashes in a {self.kind} ref"
            )
        keys = [key for key, _ in self.options]
        if len(keys) != len(set(keys)):
            raise ModelRefError(f"duplicate option keys in {keys}")

    def with_patch(self, patch: LoraPatch) -> ModelRef:
        return replace(self, patches=(*self.patches, patch))

    def with_option(self, key: str, value: Any) -> ModelRef:
        """A copy with `key` set to `value`; an existing key keeps its position."""
        if any(existing == key for existing, _ in self.options):
            options = tuple((k, value if k == key else v) for k, v in self.options)
        else:
            options = (*self.options, (key, value))
        return replace(self, options=options)

    def option(self, key: str, default: Any = None) -> Any:
        for existing, value in self.options:
            if existing == key:
                return value
        return default

    def base_key(self) -> str:
        """Key of the weights as loaded from disk: what every patched variant starts from.

        `family` is part of it because it selects the architecture config the files load into.
        """
        load_options = sorted(
            (key, _canonical(value))
            for key, value in self.options
            if key not in ENCODE_ONLY_OPTIONS
        )
        payload = {
            "kind": self.kind,
            "files": list(self.files),
            "hashes": list(self.file_hashes),
            "family": self.family,
            "options": load_options,
        }
        return _digest(payload)

    def cache_key(self) -> str:
        """Key of the patched model; equal to `base_key()` when there are no patches.

        Equal keys let the scheduler, which sees cache keys in node outputs, match an unpatched
        model the worker cached under its base key. Patch order is kept in the key: float
        additions do not commute exactly.
        """
        if not self.patches:
            return self.base_key()
        payload = {
            "base": self.base_key(),
            "patches": [[p.path, p.file_hash, repr(float(p.strength))] for p in self.patches],
        }
        return _digest(payload)


def _canonical(value: Any) -> Any:
    """A JSON-able form of an option value whose text is the same in every process."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        # repr keeps every bit of the float and is stable; json would too, but NaN is not JSON.
        return {"float": repr(value)}
    if isinstance(value, tuple | list):
        return [_canonical(item) for item in value]
    if isinstance(value, dict):
        return {"dict": sorted((str(k), _canonical(v)) for k, v in value.items())}
    raise ModelRefError(
        f"option value of type {type(value).__name__} has no stable key; use str, int, float, bool, "
        "None, or tuples/lists/dicts of those"
    )


def _digest(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_identity(path: Path, *, cache: MutableMapping | None = None) -> str:
    """`blake3:<hex>` of the file's content, memoized by (path, size, mtime_ns) in `cache`.

    The worker passes one long-lived mapping so a multi-GB checkpoint is hashed once per
    process; a file rewritten in place gets a new size or mtime and is hashed again.
    """
    resolved = Path(path).resolve()
    stat = os.stat(resolved)
    memo_key = (str(resolved), stat.st_size, stat.st_mtime_ns)
    if cache is not None:
        known = cache.get(memo_key)
        if known is not None:
            return known
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    if stat.st_size > 0:
        hasher.update_mmap(resolved)
    identity = f"blake3:{hasher.hexdigest()}"
    logger.debug("hashed model file %s (%d bytes): %s", resolved, stat.st_size, identity)
    if cache is not None:
        cache[memo_key] = identity
    return identity


def model_keys_in(value: Any, depth: int = 0) -> set[str]:
    """`cache_key()` of every ModelRef in `value`, looking into tuples, lists and dict values.

    The scheduler uses it to place a step on a worker that already holds the step's models.
    Nesting deeper than a few levels is not how node outputs carry models, so the scan stops.
    """
    if isinstance(value, ModelRef):
        return {value.cache_key()}
    if depth >= _MAX_SCAN_DEPTH:
        return set()
    if isinstance(value, dict):
        items: Any = value.values()
    elif isinstance(value, tuple | list):
        items = value
    else:
        return set()
    keys: set[str] = set()
    for item in items:
        keys |= model_keys_in(item, depth + 1)
    return keys
