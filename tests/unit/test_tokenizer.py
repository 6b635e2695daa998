"""The offline CLIP BPE tokenizer and ComfyUI's 77-token chunk framing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from node_actors.models.tokenizer import (  # noqa: E402 - offline flag first
    ClipTokenizer,
    default_tokenizer,
    frame_chunks,
)


@pytest.fixture(scope="module")
def tk() -> ClipTokenizer:
    return default_tokenizer()


def test_official_ids_for_a_photo_of_a_cat(tk: ClipTokenizer) -> None:
    ids = [tk.start_id, *tk.encode_words("a photo of a cat"), tk.end_id]
    assert ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_case_and_whitespace_are_normalised(tk: ClipTokenizer) -> None:
    assert tk.encode_words("A  Photo\nOF\ta CAT") == [320, 1125, 539, 320, 2368]
    assert tk.encode_words("") == []
    assert tk.encode_words("   ") == []


@pytest.mark.parametrize("text", ["🐱🚀", "日本語のテキスト", "café naïve", "ÿ\x00\x7f", "a" * 300])
def test_unusual_text_does_not_crash(tk: ClipTokenizer, text: str) -> None:
    ids = tk.encode_words(text)
    assert ids
    assert all(0 <= i < tk.start_id for i in ids)


def test_long_text_is_not_truncated(tk: ClipTokenizer) -> None:
    assert len(tk.encode_words("cat " * 200)) == 200


def test_default_tokenizer_is_cached(tk: ClipTokenizer) -> None:
    assert default_tokenizer() is tk


def test_vocab_files_are_built_and_reused(tmp_path: Path) -> None:
    built = ClipTokenizer(tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    merges = (tmp_path / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert len(vocab) == 49408
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    assert vocab["a</w>"] == 320
    assert merges[0].startswith("#version") and len(merges) == 1 + 48894
    stamp = (tmp_path / "vocab.json").stat().st_mtime_ns
    again = ClipTokenizer(tmp_path)
    assert (tmp_path / "vocab.json").stat().st_mtime_ns == stamp
    assert again.encode_words("a cat") == built.encode_words("a cat") == [320, 2368]


def words(*lengths: int) -> list[list[tuple[int, float]]]:
    """Words of the given token counts; token ids count up from 1 so positions are traceable."""
    out: list[list[tuple[int, float]]] = []
    next_id = 1
    for n in lengths:
        out.append([(next_id + i, 1.0) for i in range(n)])
        next_id += n
    return out


S, E, P = 100, 101, 0


def ids(chunks: list[list[tuple[int, float]]]) -> list[list[int]]:
    return [[t for t, _ in c] for c in chunks]


def test_empty_prompt_is_one_framed_chunk() -> None:
    assert ids(frame_chunks([], S, E, P, chunk_slots=4)) == [[S, E, P, P, P, P]]


def test_exact_fill_gives_one_chunk() -> None:
    assert ids(frame_chunks(words(2, 2), S, E, P, chunk_slots=4)) == [[S, 1, 2, 3, 4, E]]


def test_word_moves_whole_to_next_chunk() -> None:
    chunks = frame_chunks(words(3, 2), S, E, P, chunk_slots=4)
    assert ids(chunks) == [[S, 1, 2, 3, E, P], [S, 4, 5, E, P, P]]
    assert all(len(c) == 6 for c in chunks)


def test_word_as_long_as_a_chunk_is_split() -> None:
    assert ids(frame_chunks(words(1, 4), S, E, P, chunk_slots=4)) == [
        [S, 1, 2, 3, 4, E],
        [S, 5, E, P, P, P],
    ]
    assert ids(frame_chunks(words(9), S, E, P, chunk_slots=4)) == [
        [S, 1, 2, 3, 4, E],
        [S, 5, 6, 7, 8, E],
        [S, 9, E, P, P, P],
    ]


def test_weights_follow_tokens_and_frame_is_weight_one() -> None:
    chunk = frame_chunks([[(7, 1.5), (8, 1.5)], [(9, 0.5)]], S, E, P, chunk_slots=4)[0]
    assert chunk == [(S, 1.0), (7, 1.5), (8, 1.5), (9, 0.5), (E, 1.0), (P, 1.0)]


def test_real_size_chunks() -> None:
    chunks = frame_chunks(words(*([1] * 80)), S, E, P)
    assert len(chunks) == 2 and all(len(c) == 77 for c in chunks)
    assert ids(chunks)[1][:7] == [S, 76, 77, 78, 79, 80, E]
