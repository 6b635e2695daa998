"""The OpenAI CLIP BPE tokenizer, built offline from the vocabulary file clip-anytorch ships.

clip-anytorch is installed without its dependencies only for `bpe_simple_vocab_16e6.txt.gz` (OpenAI,
MIT licence); importing the package would pull in torchvision, so the file is located through the
import machinery without running the package's code.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from transformers import CLIPTokenizer

logger = logging.getLogger(__name__)

VOCAB_GZ_NAME = "bpe_simple_vocab_16e6.txt.gz"
START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
MERGE_COUNT = 48894  # OpenAI's CLIP keeps the first 49152 - 256 - 2 merges of the file
VOCAB_SIZE = 49408
MAX_LENGTH = 77
CHUNK_SLOTS = MAX_LENGTH - 2  # room between the start and end tokens

Slot = TypeVar("Slot")


class TokenizerError(RuntimeError):
    """The CLIP vocabulary could not be found or built."""


def _byte_alphabet() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for raw bytes, in CLIP's vocabulary order.

    Printable Latin-1 bytes stand for themselves and come first, in byte order; the remaining bytes
    follow, in byte order, each mapped onto the next code point from 256 upwards, so every byte has
    a visible, whitespace-free character. The order fixes the ids of the first 512 tokens.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    seen = set(printable)
    others = [b for b in range(256) if b not in seen]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]


def find_vocab_gz() -> Path:
    """Locate the BPE file inside the installed `clip` package without importing it."""
    spec = importlib.util.find_spec("clip")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / VOCAB_GZ_NAME
        if candidate.is_file():
            return candidate
    raise TokenizerError(f"{VOCAB_GZ_NAME} not found: is clip-anytorch installed (--no-deps)?")


def write_vocab_files(gz_path: Path, out_dir: Path) -> tuple[Path, Path]:
    """Write the 49408-entry vocab.json and the merges.txt that transformers' CLIPTokenizer reads."""
    with gzip.open(gz_path, "rt", encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    # The first line of the file is a version header, not a merge.
    merge_lines = lines[1 : 1 + MERGE_COUNT]
    merges = [tuple(line.split()) for line in merge_lines]
    if len(merges) != MERGE_COUNT or any(len(m) != 2 for m in merges):
        raise TokenizerError(f"{gz_path} does not hold {MERGE_COUNT} BPE merges")
    base = _byte_alphabet()
    tokens = base + [ch + "</w>" for ch in base] + ["".join(m) for m in merges]
    tokens += [START_TOKEN, END_TOKEN]
    if len(tokens) != VOCAB_SIZE:
        raise TokenizerError(f"built {len(tokens)} tokens from {gz_path}, expected {VOCAB_SIZE}")
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab_path = out_dir / "vocab.json"
    merges_path = out_dir / "merges.txt"
    vocab_path.write_text(
        json.dumps({tok: i for i, tok in enumerate(tokens)}, ensure_ascii=False), encoding="utf-8"
    )
    merges_path.write_text(
        "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8"
    )
    return vocab_path, merges_path


class ClipTokenizer:
    """Real CLIP BPE (vocab 49408, <|startoftext|> 49406, <|endoftext|> 49407)."""

    def __init__(self, vocab_dir: Path | None = None) -> None:
        if vocab_dir is None:
            # Kept alive with the tokenizer so the folder lasts as long as it may be re-read.
            self._tmp = tempfile.TemporaryDirectory(prefix="comfyray-clip-vocab-")
            vocab_dir = Path(self._tmp.name)
        vocab_dir = Path(vocab_dir)
        if not ((vocab_dir / "vocab.json").is_file() and (vocab_dir / "merges.txt").is_file()):
            write_vocab_files(find_vocab_gz(), vocab_dir)
        self.vocab_dir = vocab_dir
        self._hf = CLIPTokenizer(
            vocab=str(vocab_dir / "vocab.json"),
            merges=str(vocab_dir / "merges.txt"),
            model_max_length=MAX_LENGTH,
        )
        self.start_id: int = self._hf.convert_tokens_to_ids(START_TOKEN)
        self.end_id: int = self._hf.convert_tokens_to_ids(END_TOKEN)
        if (self.start_id, self.end_id) != (VOCAB_SIZE - 2, VOCAB_SIZE - 1):
            raise TokenizerError(f"unexpected special ids {self.start_id}, {self.end_id}")
        logger.debug("CLIP tokenizer ready from %s", vocab_dir)

    def encode_words(self, text: str) -> list[int]:
        """Token ids of text without the start and end tokens, never truncated."""
        return list(self._hf(text, add_special_tokens=False, truncation=False)["input_ids"])


@functools.cache
def default_tokenizer() -> ClipTokenizer:
    """One tokenizer per process: building the vocabulary takes a noticeable fraction of a second."""
    return ClipTokenizer()


def frame_chunks(
    words: Sequence[Sequence[tuple[Slot, float]]],
    start: Slot,
    end: Slot,
    pad: Slot,
    chunk_slots: int = CHUNK_SLOTS,
) -> list[list[tuple[Slot, float]]]:
    """Pack weighted word tokens into chunks framed as [start, slots..., end, pad...].

    Each chunk holds chunk_slots + 2 entries. A word that does not fit in what is left of a chunk
    moves whole to the next one, unless it could not fit in any chunk, in which case it is split
    across chunks. Frame and padding entries carry weight 1. No words gives one empty chunk.
    """
    framed: list[list[tuple[Slot, float]]] = []
    current: list[tuple[Slot, float]] = []

    def close() -> None:
        current.append((end, 1.0))
        current.extend([(pad, 1.0)] * (chunk_slots + 2 - len(current)))
        framed.append(list(current))
        current.clear()
        current.append((start, 1.0))

    current.append((start, 1.0))
    for word in words:
        rest = list(word)
        splittable = len(rest) >= chunk_slots
        while rest:
            room = chunk_slots + 1 - len(current)
            if len(rest) <= room:
                current.extend(rest)
                break
            if splittable:
                current.extend(rest[:room])
                rest = rest[room:]
            close()
    close()
    return framed
