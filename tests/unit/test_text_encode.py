"""Prompt encoding on tiny random CLIP text models: layers, chunks, weights, SDXL, embeddings."""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from transformers import (  # noqa: E402 - offline flag first
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
)

from node_actors.models.clip_models import ClipModels  # noqa: E402
from node_actors.models.embeddings import (  # noqa: E402
    EmbeddingError,
    EmbeddingFinder,
    load_embedding,
)
from node_actors.models.text_encode import TextEncodeError, encode_text  # noqa: E402
from node_actors.models.tokenizer import ClipTokenizer, default_tokenizer  # noqa: E402

START, END = 49406, 49407
L_WIDTH, G_WIDTH, G_PROJ = 32, 48, 16


def config(hidden: int, layers: int, act: str, projection: int = 0) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=49408,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act=act,
        projection_dim=projection or hidden,
        bos_token_id=START,
        eos_token_id=END,
        pad_token_id=END,
    )


@pytest.fixture(scope="module")
def tk() -> ClipTokenizer:
    return default_tokenizer()


@pytest.fixture(scope="module")
def clip_l() -> CLIPTextModel:
    torch.manual_seed(1)
    return CLIPTextModel(config(L_WIDTH, 3, "quick_gelu")).eval()


@pytest.fixture(scope="module")
def clip_h() -> CLIPTextModel:
    torch.manual_seed(2)
    return CLIPTextModel(config(L_WIDTH, 3, "gelu")).eval()


@pytest.fixture(scope="module")
def clip_g() -> CLIPTextModelWithProjection:
    torch.manual_seed(3)
    return CLIPTextModelWithProjection(config(G_WIDTH, 2, "gelu", G_PROJ)).eval()


def frame(tokens: list[int], pad: int) -> torch.Tensor:
    ids = [START, *tokens, END]
    return torch.tensor([ids + [pad] * (77 - len(ids))])


def run(model: torch.nn.Module, ids: torch.Tensor) -> object:
    with torch.no_grad():
        return model(ids, output_hidden_states=True)


def core(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "text_model", model)


# ---- which hidden state -----------------------------------------------------------------


def test_sd1_plain_prompt_is_last_hidden_state(tk: ClipTokenizer, clip_l: CLIPTextModel) -> None:
    out = run(clip_l, frame(tk.encode_words("a photo of a cat"), END))
    result = encode_text(ClipModels("sd1", l=clip_l), "a photo of a cat", tokenizer=tk)
    assert result.cond.shape == (1, 77, L_WIDTH)
    torch.testing.assert_close(result.cond, out.last_hidden_state)
    assert result.pooled is not None
    torch.testing.assert_close(result.pooled, out.pooler_output)


def test_sd1_clip_skip_uses_normed_hidden_state(tk: ClipTokenizer, clip_l: CLIPTextModel) -> None:
    out = run(clip_l, frame(tk.encode_words("a cat"), END))
    clip = ClipModels("sd1", l=clip_l)
    skip2 = encode_text(clip, "a cat", stop_at_layer=-2, tokenizer=tk)
    torch.testing.assert_close(skip2.cond, clip_l.final_layer_norm(out.hidden_states[-2]))
    assert not torch.allclose(skip2.cond, out.last_hidden_state)
    # The pooled vector always comes from the last layer.
    torch.testing.assert_close(skip2.pooled, out.pooler_output)
    skip1 = encode_text(clip, "a cat", stop_at_layer=-1, tokenizer=tk)
    torch.testing.assert_close(skip1.cond, out.last_hidden_state)
    # Deeper than the model has layers: ComfyUI falls back to the last layer.
    deep = encode_text(clip, "a cat", stop_at_layer=-10, tokenizer=tk)
    torch.testing.assert_close(deep.cond, out.last_hidden_state)


def test_sd2_default_is_penultimate_normed_and_pads_with_zero(
    tk: ClipTokenizer, clip_h: CLIPTextModel
) -> None:
    out = run(clip_h, frame(tk.encode_words("a cat"), 0))
    result = encode_text(ClipModels("sd2", h=clip_h), "a cat", tokenizer=tk)
    torch.testing.assert_close(result.cond, clip_h.final_layer_norm(out.hidden_states[-2]))
    torch.testing.assert_close(result.pooled, out.pooler_output)
    padded_with_end = run(clip_h, frame(tk.encode_words("a cat"), END))
    expected_wrong = clip_h.final_layer_norm(padded_with_end.hidden_states[-2])
    assert not torch.allclose(result.cond[:, 5:], expected_wrong[:, 5:])


def test_stop_at_layer_must_be_negative(tk: ClipTokenizer, clip_l: CLIPTextModel) -> None:
    with pytest.raises(TextEncodeError):
        encode_text(ClipModels("sd1", l=clip_l), "a", stop_at_layer=0, tokenizer=tk)


# ---- chunks ---------------------------------------------------------------------------


def test_eighty_words_make_two_chunks(tk: ClipTokenizer, clip_l: CLIPTextModel) -> None:
    cat = tk.encode_words("cat")
    assert len(cat) == 1
    result = encode_text(ClipModels("sd1", l=clip_l), " ".join(["cat"] * 80), tokenizer=tk)
    assert result.cond.shape == (1, 154, L_WIDTH)
    first = run(clip_l, frame(cat * 75, END)).last_hidden_state
    second = run(clip_l, frame(cat * 5, END)).last_hidden_state
    torch.testing.assert_close(result.cond, torch.cat([first, second], dim=1))
    torch.testing.assert_close(result.pooled, run(clip_l, frame(cat * 75, END)).pooler_output)


def test_word_is_kept_whole_at_the_chunk_boundary(tk: ClipTokenizer, clip_l: CLIPTextModel) -> None:
    long_word = tk.encode_words("hippopotamus")
    assert len(long_word) == 3
    cat = tk.encode_words("cat")
    text = " ".join(["cat"] * 73) + " hippopotamus"
    result = encode_text(ClipModels("sd1", l=clip_l), text, tokenizer=tk)
    assert result.cond.shape == (1, 154, L_WIDTH)
    first = run(clip_l, frame(cat * 73, END)).last_hidden_state
    second = run(clip_l, frame(long_word, END)).last_hidden_state
    torch.testing.assert_close(result.cond, torch.cat([first, second], dim=1))


def test_empty_prompt_is_one_chunk(tk: ClipTokenizer, clip_l: CLIPTextModel) -> None:
    result = encode_text(ClipModels("sd1", l=clip_l), "", tokenizer=tk)
    torch.testing.assert_close(result.cond, run(clip_l, frame([], END)).last_hidden_state)


# ---- weights ----------------------------------------------------------------------------


def test_weight_one_is_the_plain_encoding(tk: ClipTokenizer, clip_l: CLIPTextModel) -> None:
    clip = ClipModels("sd1", l=clip_l)
    plain = encode_text(clip, "a cat photo", tokenizer=tk)
    assert torch.equal(encode_text(clip, "a (cat:1.0) photo", tokenizer=tk).cond, plain.cond)


@pytest.mark.parametrize("weight", [2.0, 0.0, 0.5])
def test_weight_scales_from_the_empty_prompt(
    tk: ClipTokenizer, clip_l: CLIPTextModel, weight: float
) -> None:
    ids = tk.encode_words("a cat photo")
    z = run(clip_l, frame(ids, END)).last_hidden_state[0]
    z_empty = run(clip_l, frame([], END)).last_hidden_state[0]
    result = encode_text(ClipModels("sd1", l=clip_l), f"a (cat:{weight}) photo", tokenizer=tk)
    cat_pos = 2  # start, "a", "cat"
    expected = z.clone()
    expected[cat_pos] = (z[cat_pos] - z_empty[cat_pos]) * weight + z_empty[cat_pos]
    torch.testing.assert_close(result.cond[0], expected)
    others = [j for j in range(77) if j != cat_pos]
    assert torch.equal(result.cond[0, others], z[others])
    assert not torch.allclose(result.cond[0, cat_pos], z[cat_pos])


def test_weights_apply_per_chunk(tk: ClipTokenizer, clip_l: CLIPTextModel) -> None:
    cat = tk.encode_words("cat")
    text = " ".join(["cat"] * 75) + " (cat:3)"
    result = encode_text(ClipModels("sd1", l=clip_l), text, tokenizer=tk)
    first = run(clip_l, frame(cat * 75, END)).last_hidden_state[0]
    z = run(clip_l, frame(cat, END)).last_hidden_state[0]
    z_empty = run(clip_l, frame([], END)).last_hidden_state[0]
    torch.testing.assert_close(result.cond[0, :77], first)
    torch.testing.assert_close(result.cond[0, 78], (z[1] - z_empty[1]) * 3 + z_empty[1])


# ---- SDXL ----------------------------------------------------------------------------------


def test_sdxl_concatenates_l_and_g_and_pools_projected_g(
    tk: ClipTokenizer, clip_l: CLIPTextModel, clip_g: CLIPTextModelWithProjection
) -> None:
    clip = ClipModels("sdxl", l=clip_l, g=clip_g)
    result = encode_text(clip, "a cat", text_l="a dog", tokenizer=tk)
    assert result.cond.shape == (1, 77, L_WIDTH + G_WIDTH)
    l_out = run(clip_l, frame(tk.encode_words("a dog"), END))
    g_out = run(clip_g, frame(tk.encode_words("a cat"), 0))
    # SDXL: penultimate layer without the final layer norm, for both encoders.
    torch.testing.assert_close(result.cond[..., :L_WIDTH], l_out.hidden_states[-2])
    torch.testing.assert_close(result.cond[..., L_WIDTH:], g_out.hidden_states[-2])
    assert result.pooled is not None and result.pooled.shape == (1, G_PROJ)
    torch.testing.assert_close(result.pooled, g_out.text_embeds)


def test_sdxl_text_l_defaults_to_text_and_clip_skip(
    tk: ClipTokenizer, clip_l: CLIPTextModel, clip_g: CLIPTextModelWithProjection
) -> None:
    clip = ClipModels("sdxl", l=clip_l, g=clip_g)
    result = encode_text(clip, "a cat", stop_at_layer=-1, tokenizer=tk)
    l_out = run(clip_l, frame(tk.encode_words("a cat"), END))
    g_out = run(clip_g, frame(tk.encode_words("a cat"), 0))
    torch.testing.assert_close(result.cond[..., :L_WIDTH], l_out.hidden_states[-1])
    torch.testing.assert_close(result.cond[..., L_WIDTH:], g_out.hidden_states[-1])


def test_sdxl_shorter_side_gets_empty_chunks(
    tk: ClipTokenizer, clip_l: CLIPTextModel, clip_g: CLIPTextModelWithProjection
) -> None:
    clip = ClipModels("sdxl", l=clip_l, g=clip_g)
    result = encode_text(clip, "a cat", text_l=" ".join(["dog"] * 80), tokenizer=tk)
    assert result.cond.shape == (1, 154, L_WIDTH + G_WIDTH)
    empty_g = run(clip_g, frame([], 0)).hidden_states[-2]
    torch.testing.assert_close(result.cond[:, 77:, L_WIDTH:], empty_g)


def test_refiner_uses_g_only(tk: ClipTokenizer, clip_g: CLIPTextModelWithProjection) -> None:
    result = encode_text(ClipModels("sdxl_refiner", g=clip_g), "a cat", tokenizer=tk)
    g_out = run(clip_g, frame(tk.encode_words("a cat"), 0))
    assert result.cond.shape == (1, 77, G_WIDTH)
    torch.testing.assert_close(result.cond, g_out.hidden_states[-2])
    torch.testing.assert_close(result.pooled, g_out.text_embeds)


def test_family_problems_raise(tk: ClipTokenizer, clip_l: CLIPTextModel) -> None:
    with pytest.raises(TextEncodeError, match="unknown"):
        encode_text(ClipModels("flux", l=clip_l), "a", tokenizer=tk)
    with pytest.raises(TextEncodeError, match="clip_g"):
        encode_text(ClipModels("sdxl", l=clip_l), "a", tokenizer=tk)


def test_module_dtype_is_kept(tk: ClipTokenizer, clip_l: CLIPTextModel) -> None:
    half = copy.deepcopy(clip_l).to(torch.bfloat16)
    result = encode_text(ClipModels("sd1", l=half), "a (cat:1.2)", tokenizer=tk)
    assert result.cond.dtype == torch.bfloat16 and result.pooled.dtype == torch.bfloat16


# ---- embeddings ---------------------------------------------------------------------------


def with_rows(model: CLIPTextModel, rows: dict[int, torch.Tensor]) -> CLIPTextModel:
    """A copy of model whose vocabulary rows are replaced: the reference for injected vectors."""
    patched = copy.deepcopy(model)
    with torch.no_grad():
        for token_id, vector in rows.items():
            core(patched).embeddings.token_embedding.weight[token_id] = vector
    return patched


def finder_for(files: dict[str, Path]) -> EmbeddingFinder:
    return files.get


def test_embedding_vectors_replace_token_slots(
    tk: ClipTokenizer, clip_l: CLIPTextModel, tmp_path: Path
) -> None:
    vectors = torch.randn(2, L_WIDTH, generator=torch.Generator().manual_seed(5))
    path = tmp_path / "style.safetensors"
    save_file({"emb_params": vectors}, str(path))
    clip = ClipModels("sd1", l=clip_l)
    find = finder_for({"style": path})
    result = encode_text(clip, "a embedding:style, cat", find_embedding=find, tokenizer=tk)
    # Stand-in ids 1 and 2 carry the vectors in the reference model.
    reference = with_rows(clip_l, {1: vectors[0], 2: vectors[1]})
    ids = [*tk.encode_words("a"), 1, 2, *tk.encode_words("cat")]
    expected = run(reference, frame(ids, END))
    torch.testing.assert_close(result.cond, expected.last_hidden_state)
    torch.testing.assert_close(result.pooled, expected.pooler_output)


def test_missing_embedding_falls_back_to_text(
    tk: ClipTokenizer, clip_l: CLIPTextModel, caplog: pytest.LogCaptureFixture
) -> None:
    clip = ClipModels("sd1", l=clip_l)
    with caplog.at_level(logging.WARNING, logger="node_actors.models.text_encode"):
        result = encode_text(
            clip, "embedding:nope cat", find_embedding=finder_for({}), tokenizer=tk
        )
    plain = run(clip_l, frame(tk.encode_words("embedding:nope cat"), END))
    torch.testing.assert_close(result.cond, plain.last_hidden_state)
    assert "nope" in caplog.text


def test_sdxl_embedding_uses_each_encoders_vectors(
    tk: ClipTokenizer, clip_l: CLIPTextModel, clip_g: CLIPTextModelWithProjection, tmp_path: Path
) -> None:
    gen = torch.Generator().manual_seed(6)
    vec_l, vec_g = torch.randn(1, L_WIDTH, generator=gen), torch.randn(1, G_WIDTH, generator=gen)
    path = tmp_path / "xl.safetensors"
    save_file({"clip_l": vec_l, "clip_g": vec_g}, str(path))
    clip = ClipModels("sdxl", l=clip_l, g=clip_g)
    result = encode_text(
        clip, "embedding:xl", find_embedding=finder_for({"xl": path}), tokenizer=tk
    )
    l_ref = run(with_rows(clip_l, {1: vec_l[0]}), frame([1], END)).hidden_states[-2]
    g_ref = run(with_rows(clip_g, {1: vec_g[0]}), frame([1], 0)).hidden_states[-2]
    torch.testing.assert_close(result.cond, torch.cat([l_ref, g_ref], dim=-1))


def test_embedding_of_wrong_width_falls_back_to_text(
    tk: ClipTokenizer, clip_l: CLIPTextModel, tmp_path: Path
) -> None:
    path = tmp_path / "wide.pt"
    torch.save(torch.ones(3, L_WIDTH + 1), path)
    clip = ClipModels("sd1", l=clip_l)
    result = encode_text(
        clip, "embedding:wide", find_embedding=finder_for({"wide": path}), tokenizer=tk
    )
    plain = run(clip_l, frame(tk.encode_words("embedding:wide"), END))
    torch.testing.assert_close(result.cond, plain.last_hidden_state)


def test_load_embedding_formats(tmp_path: Path) -> None:
    vectors = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    torch.save({"string_to_param": {"*": vectors}, "name": "x", "step": 10}, tmp_path / "a.pt")
    torch.save(vectors[0], tmp_path / "b.bin")
    save_file({"emb_params": vectors}, str(tmp_path / "c.safetensors"))
    save_file({"clip_l": vectors, "clip_g": vectors[:1].clone()}, str(tmp_path / "d.safetensors"))
    assert torch.equal(load_embedding(tmp_path / "a.pt")["*"], vectors)
    assert load_embedding(tmp_path / "b.bin")["*"].shape == (1, 3)
    assert torch.equal(load_embedding(tmp_path / "c.safetensors")["*"], vectors)
    both = load_embedding(tmp_path / "d.safetensors")
    assert set(both) == {"l", "g"} and both["g"].shape == (1, 3)


def test_load_embedding_rejects_unknown_content(tmp_path: Path) -> None:
    save_file({"something": torch.ones(2, 3)}, str(tmp_path / "odd.safetensors"))
    torch.save({"note": "hi"}, tmp_path / "odd.pt")
    (tmp_path / "junk.bin").write_bytes(b"not a pickle")
    for name in ("odd.safetensors", "odd.pt", "junk.bin"):
        with pytest.raises(EmbeddingError, match=name.replace(".", r"\.")):
            load_embedding(tmp_path / name)
