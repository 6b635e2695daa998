"""Reading weight files safely: safetensors (header first, tensors on demand) and pickled
`.ckpt`/`.pt`/`.pth` files only through torch's weights-only unpickler."""

from __future__ import annotations

import json
import logging
import pickle
import zipfile
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from safetensors import safe_open

logger = logging.getLogger(__name__)

_SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
# A header larger than this is not a plausible safetensors header: refuse before reading it.
_MAX_HEADER = 100 * 1024 * 1024


class CheckpointError(Exception):
    """A weight file is unreadable, unsafe to unpickle, truncated, or lacks expected weights."""


def _is_safetensors(path: Path) -> bool:
    if path.suffix.lower() in _SAFETENSORS_SUFFIXES:
        return True
    with path.open("rb") as f:
        head = f.read(9)
    # Pickles start with a PROTO opcode, torch zips with "PK"; safetensors with a length then "{".
    return len(head) == 9 and head[8:9] == b"{"


def _safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    size = path.stat().st_size
    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise CheckpointError(f"{path}: not a safetensors file (only {size} bytes)")
        length = int.from_bytes(raw, "little")
        if length > min(size - 8, _MAX_HEADER):
            raise CheckpointError(f"{path}: safetensors header length {length} exceeds the file")
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path}: safetensors header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: safetensors header is not an object")
    shapes: dict[str, tuple[int, ...]] = {}
    end = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            shapes[key] = tuple(int(d) for d in info["shape"])
            end = max(end, int(info["data_offsets"][1]))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise CheckpointError(f"{path}: bad safetensors header entry {key!r}") from exc
    if 8 + length + end > size:
        raise CheckpointError(
            f"{path}: truncated: tensors need {8 + length + end} bytes, the file has {size}"
        )
    return shapes


def _torch_load(path: Path) -> dict[str, torch.Tensor]:
    try:
        # mmap keeps a multi-GB zip checkpoint out of memory until its tensors are used.
        obj: Any = torch.load(
            path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path)
        )
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused: the pickle holds objects other than tensors and plain containers "
            f"(weights-only load): {exc}"
        ) from exc
    except Exception as exc:  # torch raises RuntimeError, EOFError, zipfile errors, ...
        raise CheckpointError(f"{path}: unreadable checkpoint: {exc}") from exc
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: holds no tensors")
    dropped = len(obj) - len(tensors)
    if dropped:
        logger.debug("%s: ignored %d non-tensor entries", path, dropped)
    return tensors


def read_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Key -> shape; for safetensors from the header alone, without reading tensor data."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if _is_safetensors(path):
        return _safetensors_shapes(path)
    return {k: tuple(v.shape) for k, v in _torch_load(path).items()}


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor in the file, on CPU."""
    with WeightSource(path) as source:
        return source.tensors(source.shapes)


class WeightSource:
    """An open weight file: shapes at once, tensors read on demand (safetensors reads only the
    tensors asked for; a pickled checkpoint is loaded once, weights-only)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: no such file")
        self._handle: Any = None
        self._loaded: dict[str, torch.Tensor] | None = None
        if _is_safetensors(self.path):
            self.shapes = _safetensors_shapes(self.path)
            try:
                self._handle = safe_open(str(self.path), framework="pt", device="cpu")
            except Exception as exc:  # SafetensorError is not exported under a stable name
                raise CheckpointError(f"{self.path}: unreadable safetensors file: {exc}") from exc
        else:
            self._loaded = _torch_load(self.path)
            self.shapes = {k: tuple(v.shape) for k, v in self._loaded.items()}

    def get(self, key: str) -> torch.Tensor:
        if key not in self.shapes:
            raise CheckpointError(f"{self.path}: no tensor {key!r}")
        if self._loaded is not None:
            return self._loaded[key]
        try:
            return self._handle.get_tensor(key)
        except Exception as exc:
            raise CheckpointError(f"{self.path}: cannot read tensor {key!r}: {exc}") from exc

    def tensors(self, keys: Iterable[str]) -> dict[str, torch.Tensor]:
        return {key: self.get(key) for key in keys}

    def under(self, prefix: str) -> dict[str, torch.Tensor]:
        """Every tensor whose key starts with `prefix`, keys unchanged."""
        return self.tensors(k for k in self.shapes if k.startswith(prefix))

    def close(self) -> None:
        self._handle = None
        self._loaded = None

    def __enter__(self) -> WeightSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
