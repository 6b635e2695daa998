"""The image-generation nodes through HTTP and WS on a real server, tiny checkpoints on CPU."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from node_actors.sampling.samplers import SAMPLER_NAMES
from node_actors.sampling.schedulers import SCHEDULER_NAMES
from tests.conformance.client import ComfyClient, parse_preview
from tests.conformance.graph import Graph, unique
from tests.model_library import CLIP_G, CLIP_L, LORA, SD1, SDXL, UNET, VAE
from tests.sd_graphs import sampler_grid, txt2img
from tests.server_process import ServerProcess

MODEL_LOADERS = {
    "CheckpointLoaderSimple": ("ckpt_name", "checkpoints"),
    "LoraLoader": ("lora_name", "loras"),
    "VAELoader": ("vae_name", "vae"),
    "UNETLoader": ("unet_name", "diffusion_models"),
    "CLIPLoader": ("clip_name", "text_encoders"),
}


@pytest.fixture
def comfy(server: ServerProcess) -> Iterator[ComfyClient]:
    client = ComfyClient(server.url, server.ws_url)
    try:
        yield client
    finally:
        client.close()


def run(comfy: ComfyClient, prompt: dict[str, Any], timeout: float = 240.0) -> dict[str, Any]:
    prompt_id = comfy.queue_prompt(prompt)["prompt_id"]
    entry = comfy.wait_history(prompt_id, timeout=timeout)
    assert entry["status"]["status_str"] == "success", entry["status"]
    return entry


@pytest.mark.parametrize("node_class", sorted(MODEL_LOADERS))
def test_loader_combos_list_exactly_the_loadable_files(comfy: ComfyClient, node_class: str) -> None:
    name, folder = MODEL_LOADERS[node_class]
    info = comfy.get_json(f"/object_info/{node_class}")[node_class]
    options = info["input"]["required"][name][0]
    assert options == comfy.get_json(f"/models/{folder}")
    assert options and all(not o.endswith((".txt", ".png", ".yaml")) for o in options)


def test_ksampler_object_info_lists_samplers_and_schedulers(comfy: ComfyClient) -> None:
    info = comfy.get_json("/object_info/KSampler")["KSampler"]
    required = info["input"]["required"]
    assert required["sampler_name"][0] == list(SAMPLER_NAMES)
    assert required["scheduler"][0] == list(SCHEDULER_NAMES)
    assert required["seed"][1]["control_after_generate"] is True
    assert info["output"] == ["LATENT"] and info["category"] == "sampling"
    assert info["input_order"]["required"][:3] == ["model", "seed", "steps"]


@pytest.mark.timeout(900)
def test_every_sampler_and_scheduler_pair_runs(comfy: ComfyClient) -> None:
    prefix = unique("grid")
    entry = run(comfy, sampler_grid(prefix, list(SAMPLER_NAMES), list(SCHEDULER_NAMES)), 600)
    saved = [key for key in entry["outputs"] if key.startswith("p.")]
    assert len(saved) == len(SAMPLER_NAMES) * len(SCHEDULER_NAMES)


def test_ksampler_sends_progress_and_latent_previews_per_step(comfy: ComfyClient) -> None:
    client_id = unique("client")
    session = comfy.connect(client_id)
    try:
        prompt = txt2img(unique("progress"), steps=4, seed=unique_seed())
        prompt_id = comfy.queue_prompt(prompt, client_id=client_id)["prompt_id"]
        frames = session.until_end_of(prompt_id)
    finally:
        session.close()
    progress = [
        f.data for f in frames if not f.is_binary and f.type == "progress" and f.node == "sampler"
    ]
    assert [(p["value"], p["max"]) for p in progress] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    previews = [parse_preview(f) for f in frames if f.is_binary]
    assert len(previews) == 4
    # A latent preview (8x8 latent cells here) is sent as a JPEG fitted to 512 pixels.
    for preview in previews:
        image = Image.open(io.BytesIO(preview.image))
        assert image.format == "JPEG" and image.size == (512, 512)


def unique_seed() -> int:
    from tests.conformance.graph import unique_int

    return unique_int(1, 2**40)


def test_every_model_node_runs_in_one_prompt(comfy: ComfyClient, base_dir: Path) -> None:
    g = Graph()
    ckpt = g.node("CheckpointLoader", config_name="v1-inference.yaml", ckpt_name=SD1)
    lora = g.node(
        "LoraLoader",
        model=ckpt.out(0),
        clip=ckpt.out(1),
        lora_name=LORA,
        strength_model=0.8,
        strength_clip=0.8,
    )
    model_only = g.node(
        "LoraLoaderModelOnly", model=lora.out(0), lora_name=LORA, strength_model=0.5
    )
    skip = g.node("CLIPSetLastLayer", clip=lora.out(1), stop_at_clip_layer=-2)
    pos = g.node(
        "CLIPTextEncode", text="a (red:1.2) cat, embedding:tiny_embedding", clip=skip.out(0)
    )
    neg = g.node("CLIPTextEncode", text="", clip=skip.out(0))
    area = g.node(
        "ConditioningSetArea", conditioning=pos.out(0), width=64, height=64, x=0, y=0, strength=1.0
    )
    solid = g.node("SolidMask", value=1.0, width=64, height=64)
    masked = g.node(
        "ConditioningSetMask",
        conditioning=pos.out(0),
        mask=solid.out(0),
        strength=0.5,
        set_cond_area="default",
    )
    both = g.node("ConditioningCombine", conditioning_1=area.out(0), conditioning_2=masked.out(0))
    zero = g.node("ConditioningZeroOut", conditioning=neg.out(0))
    empty = g.node("EmptyLatentImage", width=64, height=64, batch_size=2)
    first = g.node("LatentFromBatch", samples=empty.out(0), batch_index=1, length=1)
    twice = g.node("RepeatLatentBatch", samples=first.out(0), amount=2)
    sampled = g.node(
        "KSampler",
        model=model_only.out(0),
        seed=3,
        steps=2,
        cfg=5.0,
        sampler_name="dpmpp_2m",
        scheduler="karras",
        positive=both.out(0),
        negative=zero.out(0),
        latent_image=twice.out(0),
        denoise=1.0,
    )
    bigger = g.node(
        "LatentUpscale",
        samples=sampled.out(0),
        upscale_method="bislerp",
        width=96,
        height=96,
        crop="disabled",
    )
    by = g.node("LatentUpscaleBy", samples=bigger.out(0), upscale_method="bilinear", scale_by=0.75)
    advanced = g.node(
        "KSamplerAdvanced",
        model=ckpt.out(0),
        add_noise="enable",
        noise_seed=4,
        steps=3,
        cfg=4.0,
        sampler_name="euler",
        scheduler="normal",
        positive=pos.out(0),
        negative=neg.out(0),
        latent_image=by.out(0),
        start_at_step=1,
        end_at_step=3,
        return_with_leftover_noise="disable",
    )
    vae = g.node("VAELoader", vae_name=VAE)
    decoded = g.node("VAEDecode", samples=advanced.out(0), vae=vae.out(0))
    tiled = g.node(
        "VAEDecodeTiled",
        samples=advanced.out(0),
        vae=ckpt.out(2),
        tile_size=64,
        overlap=32,
        temporal_size=64,
        temporal_overlap=8,
    )
    encoded = g.node("VAEEncode", pixels=decoded.out(0), vae=vae.out(0))
    encoded_tiled = g.node(
        "VAEEncodeTiled",
        pixels=tiled.out(0),
        vae=vae.out(0),
        tile_size=64,
        overlap=32,
        temporal_size=64,
        temporal_overlap=8,
    )
    mask = g.node("SolidMask", value=1.0, width=64, height=64)
    noise_masked = g.node("SetLatentNoiseMask", samples=encoded_tiled.out(0), mask=mask.out(0))
    inpaint = g.node(
        "VAEEncodeForInpaint",
        pixels=decoded.out(0),
        vae=ckpt.out(2),
        mask=mask.out(0),
        grow_mask_by=6,
    )
    # The custom-sampling family on split loaders.
    unet = g.node("UNETLoader", unet_name=UNET, weight_dtype="default")
    clip = g.node("CLIPLoader", clip_name=CLIP_L, type="stable_diffusion")
    text = g.node("CLIPTextEncode", text="a dog", clip=clip.out(0))
    guider = g.node(
        "CFGGuider", model=unet.out(0), positive=text.out(0), negative=text.out(0), cfg=3.0
    )
    sigmas = g.node("BasicScheduler", model=unet.out(0), scheduler="simple", steps=2, denoise=0.6)
    karras = g.node("KarrasScheduler", steps=2, sigma_max=14.6, sigma_min=0.03, rho=7.0)
    select = g.node("KSamplerSelect", sampler_name="heun")
    noise = g.node("RandomNoise", noise_seed=5)
    custom_adv = g.node(
        "SamplerCustomAdvanced",
        noise=noise.out(0),
        guider=guider.out(0),
        sampler=select.out(0),
        sigmas=sigmas.out(0),
        latent_image=noise_masked.out(0),
    )
    custom = g.node(
        "SamplerCustom",
        model=unet.out(0),
        add_noise=True,
        noise_seed=6,
        cfg=2.0,
        positive=text.out(0),
        negative=text.out(0),
        sampler=select.out(0),
        sigmas=karras.out(0),
        latent_image=inpaint.out(0),
    )
    # SDXL: the dual text encoder loader and the SDXL text encode node.
    sdxl = g.node("CheckpointLoaderSimple", ckpt_name=SDXL)
    dual = g.node("DualCLIPLoader", clip_name1=CLIP_L, clip_name2=CLIP_G, type="sdxl")
    sdxl_pos = g.node(
        "CLIPTextEncodeSDXL",
        clip=dual.out(0),
        width=1024,
        height=1024,
        crop_w=0,
        crop_h=0,
        target_width=1024,
        target_height=1024,
        text_g="a cat",
        text_l="a cat",
    )
    sdxl_neg = g.node("CLIPTextEncode", text="", clip=sdxl.out(1))
    sdxl_latent = g.node(
        "KSampler",
        model=sdxl.out(0),
        seed=7,
        steps=2,
        cfg=5.0,
        sampler_name="euler_ancestral",
        scheduler="sgm_uniform",
        positive=sdxl_pos.out(0),
        negative=sdxl_neg.out(0),
        latent_image=empty.out(0),
        denoise=1.0,
    )
    prefix = unique("allnodes")
    for name, latent, decoder in (
        ("custom_adv", custom_adv.out(0), vae.out(0)),
        ("custom_denoised", custom_adv.out(1), vae.out(0)),
        ("custom", custom.out(0), vae.out(0)),
        ("sdxl", sdxl_latent.out(0), sdxl.out(2)),
        ("main", encoded.out(0), vae.out(0)),
    ):
        image = g.node("VAEDecode", samples=latent, vae=decoder)
        g.node(
            "SaveImage",
            images=image.out(0),
            filename_prefix=f"{prefix}_{name}",
            node_id=f"save_{name}",
        )
    entry = run(comfy, g.prompt())
    outputs = entry["outputs"]
    for node_id in (
        "save_custom_adv",
        "save_custom_denoised",
        "save_custom",
        "save_sdxl",
        "save_main",
    ):
        images = outputs[node_id]["images"]
        assert images, node_id
        for image in images:
            assert (base_dir / "output" / image["subfolder"] / image["filename"]).is_file()
    assert len(outputs["save_sdxl"]["images"]) == 2


def test_model_preview_is_served_as_webp(comfy: ComfyClient, base_dir: Path) -> None:
    Image.new("RGB", (16, 16), (255, 0, 0)).save(base_dir / "models" / "loras" / "tiny_lora.png")
    response = comfy.get(f"/api/experiment/models/preview/loras/0/{LORA}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/webp"
    assert response.content[:4] == b"RIFF" and response.content[8:12] == b"WEBP"
    assert comfy.get(f"/experiment/models/preview/vae/0/{VAE}").status_code == 404
    assert comfy.get(f"/api/experiment/models/preview/vae/5/{VAE}").status_code == 404
    assert comfy.get(f"/api/experiment/models/preview/nope/0/{VAE}").status_code == 404
    escape = comfy.get("/api/experiment/models/preview/loras/0/..%2F..%2F..%2Fetc%2Fpasswd")
    assert escape.status_code in (403, 404)
    assert comfy.get("/api/experiment/models/preview/loras/x/a.safetensors").status_code == 400


def test_free_unloads_models_and_the_next_prompt_still_runs(comfy: ComfyClient) -> None:
    run(comfy, txt2img(unique("before_free"), seed=unique_seed()))
    response = comfy.post("/free", {"unload_models": True, "free_memory": True})
    assert response.status_code == 200
    run(comfy, txt2img(unique("after_free"), seed=unique_seed()))
