"""Prompt text -> conditioning, the way ComfyUI's CLIPTextEncode / CLIPTextEncodeSDXL do it.

Steps: emphasis parsing (prompt_weights), word-by-word BPE with "embedding:NAME" words turned into
their vectors, 75-slot chunks framed to 77 tokens, one transformer pass per chunk (our own forward
over the transformers module's parts, so embedding vectors can go in before the position
embeddings and any layer's output can come out), then per-token weighting against the empty
prompt's encoding.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from node_actors.models.clip_models import ClipModels
from node_actors.models.embeddings import EmbeddingFinder, load_embedding, vectors_for
from node_actors.models.prompt_weights import parse_weight_runs
from node_actors.models.tokenizer import ClipTokenizer, default_tokenizer, frame_chunks

logger = logging.getLogger(__name__)

EMBEDDING_PREFIX = "embedding:"
# Punctuation that may trail an embedding name in a prompt ("embedding:foo, bar") and is dropped.
_TRAILING_PUNCTUATION = string.punctuation.replace("_", "").replace("-", "")

# A token slot is a vocabulary id or, for an embedding, the vector to use in its place.
Slot = int | torch.Tensor
Chunk = list[tuple[Slot, float]]

_FAMILY_ENCODERS: dict[str, tuple[str, ...]] = {
    "sd1": ("l",),
    "sd2": ("h",),
    "sdxl": ("l", "g"),
    "sdxl_refiner": ("g",),
}


class TextEncodeError(ValueError):
    """The CLIP object or the options cannot encode text (unknown family, missing encoder...)."""


@dataclass
class EncodedText:
    cond: torch.Tensor  # [1, 77*k, D]   (SDXL: D = l_hidden + g_hidden, l first)
    pooled: torch.Tensor | None  # [1, P]


@dataclass(frozen=True)
class _LayerChoice:
    index: int  # into hidden_states: 0 = embeddings output, -1 = after the last layer
    final_norm: bool


def _layer_choice(family: str, stop_at_layer: int | None) -> _LayerChoice:
    sdxl = family in ("sdxl", "sdxl_refiner")
    if stop_at_layer is None:
        if family == "sd1":
            return _LayerChoice(-1, True)
        return _LayerChoice(-2, not sdxl)
    if stop_at_layer >= 0:
        raise TextEncodeError(f"stop_at_layer must be negative (-1 = last), got {stop_at_layer}")
    return _LayerChoice(stop_at_layer, not sdxl)


class _Encoder:
    """One transformers CLIP text module, run layer by layer."""

    def __init__(self, key: str, module: Any) -> None:
        self.key = key
        self.module = module
        # CLIPTextModelWithProjection wraps the text model; CLIPTextModel is the text model itself.
        self.core = getattr(module, "text_model", module)
        self.projection = getattr(module, "text_projection", None)
        weight = self.core.embeddings.token_embedding.weight
        self.width: int = weight.shape[-1]
        self.dtype = weight.dtype
        self.device = weight.device
        self.layer_count = len(self.core.encoder.layers)

    def pad_id(self, tokenizer: ClipTokenizer) -> int:
        # OpenAI's CLIP-L was trained padding with the end token; OpenCLIP models pad with 0.
        return tokenizer.end_id if self.key == "l" else 0

    def hidden_states(self, chunks: Sequence[Chunk]) -> list[torch.Tensor]:
        """Every layer's output for a batch of chunks: [embeddings, layer 1, ..., layer N]."""
        ids = torch.tensor(
            [[slot if isinstance(slot, int) else 0 for slot, _ in chunk] for chunk in chunks],
            dtype=torch.long,
            device=self.device,
        )
        x = self.core.embeddings.token_embedding(ids)
        for row, chunk in enumerate(chunks):
            for col, (slot, _) in enumerate(chunk):
                if isinstance(slot, torch.Tensor):
                    x[row, col] = slot.to(device=self.device, dtype=x.dtype)
        length = ids.shape[1]
        positions = torch.arange(length, device=self.device).unsqueeze(0)
        x = x + self.core.embeddings.position_embedding(positions)
        # Additive causal mask: a token sees itself and the tokens before it.
        blocked = torch.ones(length, length, dtype=torch.bool, device=self.device).triu(1)
        mask = torch.zeros(length, length, dtype=x.dtype, device=self.device)
        mask = mask.masked_fill(blocked, torch.finfo(x.dtype).min)[None, None]
        states = [x]
        for layer in self.core.encoder.layers:
            out = layer(x, mask)
            x = out[0] if isinstance(out, tuple) else out
            states.append(x)
        return states

    def select(self, states: list[torch.Tensor], choice: _LayerChoice) -> torch.Tensor:
        # ComfyUI treats a skip deeper than the model as "use the last layer".
        index = choice.index if -choice.index <= self.layer_count else -1
        chosen = states[index]
        return self.core.final_layer_norm(chosen) if choice.final_norm else chosen

    def pooled(
        self, states: list[torch.Tensor], chunk: Chunk, end_id: int, row: int
    ) -> torch.Tensor:
        last = self.core.final_layer_norm(states[-1][row])
        ends = [i for i, (slot, _) in enumerate(chunk) if isinstance(slot, int) and slot == end_id]
        vector = last[ends[0] if ends else len(chunk) - 1]
        if self.projection is not None:
            vector = self.projection(vector)
        return vector.unsqueeze(0)


def _split_embedding_word(word: str) -> list[str]:
    """Names to try for "embedding:NAME,": as written, then without trailing punctuation."""
    name = word[len(EMBEDDING_PREFIX) :]
    stripped = name.rstrip(_TRAILING_PUNCTUATION)
    return [n for n in dict.fromkeys((name, stripped)) if n]


class _WordTokenizer:
    """Turns prompt text into weighted words of slots for one encoder."""

    def __init__(self, tokenizer: ClipTokenizer, find_embedding: EmbeddingFinder | None) -> None:
        self.tokenizer = tokenizer
        self.find_embedding = find_embedding
        self._loaded: dict[Path, dict[str, torch.Tensor]] = {}

    def _embedding(self, word: str, encoder: _Encoder) -> torch.Tensor | None:
        if self.find_embedding is None:
            return None
        for name in _split_embedding_word(word):
            path = self.find_embedding(name)
            if path is None:
                continue
            if path not in self._loaded:
                self._loaded[path] = load_embedding(path)
            vectors = vectors_for(self._loaded[path], encoder.key, encoder.width)
            if vectors is None:
                logger.warning(
                    "embedding %s has no vectors of width %d for clip_%s; using the text",
                    name,
                    encoder.width,
                    encoder.key,
                )
            return vectors
        logger.warning("embedding %s not found; using the text", word[len(EMBEDDING_PREFIX) :])
        return None

    def words(self, text: str, encoder: _Encoder) -> list[list[tuple[Slot, float]]]:
        out: list[list[tuple[Slot, float]]] = []
        for piece, weight in parse_weight_runs(text):
            for word in piece.split():
                vectors = None
                if word.startswith(EMBEDDING_PREFIX) and len(word) > len(EMBEDDING_PREFIX):
                    vectors = self._embedding(word, encoder)
                if vectors is not None:
                    out.append([(vector, weight) for vector in vectors])
                else:
                    out.append([(t, weight) for t in self.tokenizer.encode_words(word)])
        return out

    def chunks(self, text: str, encoder: _Encoder) -> list[Chunk]:
        tk = self.tokenizer
        words = self.words(text, encoder)
        return frame_chunks(words, tk.start_id, tk.end_id, encoder.pad_id(tk))


def _encode_chunks(
    encoder: _Encoder, chunks: list[Chunk], choice: _LayerChoice, tokenizer: ClipTokenizer
) -> tuple[torch.Tensor, torch.Tensor]:
    """[1, 77*k, D] conditioning of the chunks, and the pooled vector of the first chunk."""
    weighted = any(w != 1.0 for chunk in chunks for _, w in chunk)
    batch = list(chunks)
    if weighted:
        # The empty prompt is the point weights scale from: weight 0 gives its encoding.
        batch.append(
            frame_chunks([], tokenizer.start_id, tokenizer.end_id, encoder.pad_id(tokenizer))[0]
        )
    states = encoder.hidden_states(batch)
    z = encoder.select(states, choice)
    pooled = encoder.pooled(states, chunks[0], tokenizer.end_id, 0)
    if weighted:
        z_empty = z[-1]
        z = z[:-1].clone()
        for row, chunk in enumerate(chunks):
            for col, (_, w) in enumerate(chunk):
                if w != 1.0:
                    z[row, col] = (z[row, col] - z_empty[col]) * w + z_empty[col]
    return z.reshape(1, -1, z.shape[-1]), pooled


def _resolve_encoders(clip: ClipModels) -> dict[str, _Encoder]:
    keys = _FAMILY_ENCODERS.get(clip.family)
    if keys is None:
        raise TextEncodeError(f"unknown CLIP family {clip.family!r}")
    present = clip.encoders()
    missing = [k for k in keys if k not in present]
    if missing:
        raise TextEncodeError(f"CLIP family {clip.family!r} lacks its clip_{'/'.join(missing)}")
    return {k: _Encoder(k, present[k]) for k in keys}


def encode_text(
    clip: ClipModels,
    text: str,
    *,
    stop_at_layer: int | None = None,
    find_embedding: EmbeddingFinder | None = None,
    tokenizer: ClipTokenizer | None = None,
    text_l: str | None = None,
) -> EncodedText:
    """Encode a prompt for clip's family. text_l: SDXL's separate CLIP-L text (default: text)."""
    tk = tokenizer if tokenizer is not None else default_tokenizer()
    encoders = _resolve_encoders(clip)
    choice = _layer_choice(clip.family, stop_at_layer)
    words = _WordTokenizer(tk, find_embedding)
    chunks = {
        key: words.chunks(text_l if key == "l" and text_l is not None else text, enc)
        for key, enc in encoders.items()
    }
    # SDXL joins l and g per token, so both sides need the same number of chunks; the shorter side
    # gets empty-prompt chunks, as CLIPTextEncodeSDXL does.
    longest = max(len(c) for c in chunks.values())
    for key, enc in encoders.items():
        empty = frame_chunks([], tk.start_id, tk.end_id, enc.pad_id(tk))[0]
        chunks[key] += [list(empty) for _ in range(longest - len(chunks[key]))]

    conds: list[torch.Tensor] = []
    pooled: torch.Tensor | None = None
    with torch.no_grad():
        for key, enc in encoders.items():
            cond, key_pooled = _encode_chunks(enc, chunks[key], choice, tk)
            conds.append(cond)
            # SDXL's UNet takes the bigG pooled vector; single-encoder families use their own.
            if key == "g" or len(encoders) == 1:
                pooled = key_pooled
    cond = torch.cat(conds, dim=-1) if len(conds) > 1 else conds[0]
    logger.debug("encoded %s prompt: %d chunk(s), cond %s", clip.family, longest, tuple(cond.shape))
    return EncodedText(cond=cond, pooled=pooled)
