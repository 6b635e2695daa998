"""ModelRef keys, file identity and the model-key scan (no torch, no Ray)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import blake3
import pytest

from node_actors.models import model_ref
from node_actors.models.model_ref import (
    ENCODE_ONLY_OPTIONS,
    LoraPatch,
    ModelRef,
    ModelRefError,
    file_identity,
    model_keys_in,
)

REPO = Path(__file__).resolve().parents[2]


def clip_ref() -> ModelRef:
    return ModelRef(
        kind="clip",
        files=("/models/checkpoints/sd15.safetensors",),
        file_hashes=("blake3:" + "ab" * 32,),
        family="sd1",
        options=(("clip_type", "stable_diffusion"), ("weight_dtype", "default")),
    )


LORA = LoraPatch(
    path="/models/loras/style.safetensors", file_hash="blake3:" + "cd" * 32, strength=0.8
)


def test_keys_are_sha256_hex_and_stable_across_processes() -> None:
    ref = clip_ref().with_patch(LORA).with_option("stop_at_layer", -2)
    script = (
        "from node_actors.models.model_ref import ModelRef, LoraPatch\n"
        "ref = ModelRef(kind='clip', files=('/models/checkpoints/sd15.safetensors',),"
        " file_hashes=('blake3:' + 'ab' * 32,), family='sd1',"
        " options=(('clip_type', 'stable_diffusion'), ('weight_dtype', 'default')))\n"
        "ref = ref.with_patch(LoraPatch('/models/loras/style.safetensors', 'blake3:' + 'cd' * 32, 0.8))\n"
        "ref = ref.with_option('stop_at_layer', -2)\n"
        "print(ref.base_key(), ref.cache_key())\n"
    )
    keys = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        keys.add(done.stdout.strip())
    assert keys == {f"{ref.base_key()} {ref.cache_key()}"}
    assert len(ref.base_key()) == 64 and int(ref.base_key(), 16) >= 0
    assert ref.base_key() != ref.cache_key()  # it has a patch


def test_unpatched_cache_key_is_the_base_key() -> None:
    # The worker caches an unpatched model under base_key(); placement looks for cache_key().
    ref = clip_ref()
    assert ref.cache_key() == ref.base_key()
    assert ref.with_patch(LORA).cache_key() != ref.base_key()


def test_patches_change_cache_key_but_not_base_key() -> None:
    ref = clip_ref()
    patched = ref.with_patch(LORA)
    assert patched.base_key() == ref.base_key()
    assert patched.cache_key() != ref.cache_key()
    stronger = ref.with_patch(LoraPatch(LORA.path, LORA.file_hash, 1.0))
    assert stronger.cache_key() != patched.cache_key()
    other = LoraPatch("/models/loras/other.safetensors", "blake3:" + "ef" * 32, 0.5)
    # Merge order is part of the key: float additions are not exactly commutative.
    assert (
        patched.with_patch(other).cache_key() != ref.with_patch(other).with_patch(LORA).cache_key()
    )
    assert patched.patches == (LORA,)
    assert ref.patches == ()  # frozen: with_patch made a copy


def test_load_options_change_both_keys_encode_only_options_neither() -> None:
    ref = clip_ref()
    fp8 = ref.with_option("weight_dtype", "fp8_e4m3fn")
    assert fp8.base_key() != ref.base_key()
    assert fp8.cache_key() != ref.cache_key()
    assert "stop_at_layer" in ENCODE_ONLY_OPTIONS
    skip = ref.with_option("stop_at_layer", -2)
    assert skip.base_key() == ref.base_key()
    assert skip.cache_key() == ref.cache_key()
    assert skip.option("stop_at_layer") == -2


def test_other_fields_change_the_base_key() -> None:
    ref = clip_ref()
    variants = [
        ModelRef("unet", ref.files, ref.file_hashes, ref.family, options=ref.options),
        ModelRef(
            ref.kind, ("/other.safetensors",), ref.file_hashes, ref.family, options=ref.options
        ),
        ModelRef(ref.kind, ref.files, ("blake3:" + "00" * 32,), ref.family, options=ref.options),
        ModelRef(ref.kind, ref.files, ref.file_hashes, "sdxl", options=ref.options),
    ]
    keys = {v.base_key() for v in variants} | {ref.base_key()}
    assert len(keys) == len(variants) + 1


def test_with_option_replaces_in_place_and_option_order_does_not_matter() -> None:
    ref = clip_ref().with_option("clip_type", "sdxl")
    assert ref.options == (("clip_type", "sdxl"), ("weight_dtype", "default"))
    assert ref.option("clip_type") == "sdxl"
    assert ref.option("missing", "fallback") == "fallback"
    reordered = ModelRef(
        "clip",
        ref.files,
        ref.file_hashes,
        "sd1",
        options=(("weight_dtype", "default"), ("clip_type", "sdxl")),
    )
    assert reordered.base_key() == ref.base_key()


def test_float_and_int_options_are_distinct() -> None:
    ref = clip_ref()
    assert ref.with_option("scale", 1).base_key() != ref.with_option("scale", 1.0).base_key()
    assert (
        ref.with_option("scale", 0.1).base_key() != ref.with_option("scale", 0.10000001).base_key()
    )


def test_unkeyable_option_value_and_inconsistent_refs_raise() -> None:
    with pytest.raises(ModelRefError, match="no stable key"):
        clip_ref().with_option("device", object()).base_key()
    with pytest.raises(ModelRefError, match="file hashes"):
        ModelRef("vae", ("/a", "/b"), ("blake3:1",))
    with pytest.raises(ModelRefError, match="kind"):
        ModelRef("lora", ("/a",), ("blake3:1",))
    with pytest.raises(ModelRefError, match="duplicate"):
        ModelRef("vae", ("/a",), ("blake3:1",), options=(("x", 1), ("x", 2)))


def test_refs_pickle_round_trip_with_equal_keys() -> None:
    ref = clip_ref().with_patch(LORA).with_option("stop_at_layer", -1)
    copy = pickle.loads(pickle.dumps(ref))
    assert copy == ref
    assert copy.cache_key() == ref.cache_key()
    assert hash(copy) == hash(ref)


def test_file_identity_is_blake3_of_content(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"weights" * 1000)
    assert file_identity(path) == "blake3:" + blake3.blake3(b"weights" * 1000).hexdigest()
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert file_identity(empty) == "blake3:" + blake3.blake3(b"").hexdigest()


def test_file_identity_hashes_once_and_again_after_a_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = blake3.blake3

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(model_ref.blake3, "blake3", counting)
    monkeypatch.setattr(counting, "AUTO", real.AUTO, raising=False)
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"A" * 64)
    memo: dict = {}
    first = file_identity(path, cache=memo)
    assert file_identity(path, cache=memo) == first
    monkeypatch.chdir(tmp_path)
    assert file_identity(Path("model.safetensors"), cache=memo) == first  # same file, relative
    assert len(calls) == 1
    # Same size, new content and a new mtime: the memo entry no longer applies.
    path.write_bytes(b"B" * 64)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    second = file_identity(path, cache=memo)
    assert len(calls) == 2
    assert second != first
    assert second == "blake3:" + real(b"B" * 64).hexdigest()


def test_model_keys_in_finds_refs_in_nested_outputs() -> None:
    unet = ModelRef("unet", ("/ckpt",), ("blake3:1",), "sd1")
    clip = clip_ref()
    vae = ModelRef("vae", ("/ckpt",), ("blake3:1",), "sd1")
    outputs = (unet, [{"clip": clip}], "text", 3, None)
    assert model_keys_in(outputs) == {unet.cache_key(), clip.cache_key()}
    assert model_keys_in({"a": (vae,)}) == {vae.cache_key()}
    assert model_keys_in("no models") == set()
    deep: object = vae
    for _ in range(4):
        deep = [deep]
    assert model_keys_in(deep) == {vae.cache_key()}
    assert model_keys_in([deep]) == set()  # deeper than the scan goes
