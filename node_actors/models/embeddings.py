"""Textual-inversion embeddings: find "embedding:NAME" files and read their vectors.

A file holds one or more vectors per text encoder. Files made for one encoder (the common SD1.x
A1111 form) do not say which one; they come back under "*" and the caller matches them to an
encoder by width. SDXL files name their encoders ("clip_l", "clip_g").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file

if TYPE_CHECKING:
    from node_actors.folders import FolderPaths

logger = logging.getLogger(__name__)

EmbeddingFinder = Callable[[str], Path | None]

EMBEDDING_EXTENSIONS: tuple[str, ...] = (".safetensors", ".pt", ".bin")

# Key in the file -> encoder it belongs to ("*": not said).
_NAMED_KEYS: dict[str, str] = {"clip_l": "l", "clip_g": "g", "clip_h": "h", "emb_params": "*"}


class EmbeddingError(ValueError):
    """An embedding file that cannot be read or has no layout we know."""


def embedding_finder(folders: FolderPaths) -> EmbeddingFinder:
    """A finder over the `embeddings` model folders: NAME as given, then NAME + each extension."""

    def find(name: str) -> Path | None:
        for candidate in (name, *(name + ext for ext in EMBEDDING_EXTENSIONS)):
            found = folders.get_full_path("embeddings", candidate)
            if found is not None:
                return Path(found)
        return None

    return find


def _as_matrix(tensor: torch.Tensor, path: Path, key: str) -> torch.Tensor:
    """Vectors as [n, D]: a single vector is one row; a leading batch of one is dropped."""
    if tensor.ndim == 1:
        tensor = tensor.unsqueeze(0)
    elif tensor.ndim == 3 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 2 or tensor.shape[0] == 0 or not tensor.is_floating_point():
        raise EmbeddingError(
            f"embedding {path.name}: {key!r} is not a float matrix of vectors "
            f"(shape {tuple(tensor.shape)}, dtype {tensor.dtype})"
        )
    return tensor


def _from_mapping(data: Mapping[str, object], path: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, encoder in _NAMED_KEYS.items():
        value = data.get(key)
        if isinstance(value, torch.Tensor):
            out[encoder] = _as_matrix(value, path, key)
    params = data.get("string_to_param")
    if not out and isinstance(params, Mapping):
        tensors = [v for v in params.values() if isinstance(v, torch.Tensor)]
        if len(tensors) == 1:
            out["*"] = _as_matrix(tensors[0], path, "string_to_param")
    if not out:
        raise EmbeddingError(
            f"embedding {path.name}: no known layout (keys: {sorted(map(str, data))[:8]})"
        )
    return out


def load_embedding(path: Path) -> dict[str, torch.Tensor]:
    """Vectors of an embedding file: {"l"|"g"|"h": [n, D]} or {"*": [n, D]} when unnamed."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".safetensors":
            data: object = load_file(str(path), device="cpu")
        else:
            # weights_only keeps a downloaded .pt from running code while it is unpickled.
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # any reader failure means an unusable file
        raise EmbeddingError(f"embedding {path.name}: cannot read file ({exc})") from exc
    if isinstance(data, torch.Tensor):
        result = {"*": _as_matrix(data, path, "tensor")}
    elif isinstance(data, Mapping):
        result = _from_mapping(data, path)
    else:
        raise EmbeddingError(f"embedding {path.name}: unsupported content {type(data).__name__}")
    logger.debug("embedding %s: %s", path.name, {k: tuple(v.shape) for k, v in result.items()})
    return result


def vectors_for(
    embedding: Mapping[str, torch.Tensor], encoder: str, width: int
) -> torch.Tensor | None:
    """The vectors an encoder should use from a loaded embedding, or None when none fit.

    The encoder's own key wins; an unnamed ("*") set is used by any encoder of the same width.
    """
    for key in (encoder, "*"):
        tensor = embedding.get(key)
        if tensor is not None and tensor.shape[-1] == width:
            return tensor
    return None
