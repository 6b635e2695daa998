"""A models folder of tiny random-weight files, under the names real workflows ask for.

`populate_models(base_dir)` fills `<base>/models/...` and `<base>/input/` so ComfyUI's classic
workflow templates (and our own tests) find every file they name. Writing everything takes
about 20 s, so it is done once per version of the fixture code into a cache folder under the
temp dir, and each base directory gets hard links to it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from tests.lora_fixture import write_tiny_lora
from tests.model_fixtures import (
    save_fp16,
    tiny_modules,
    write_checkpoint,
    write_clip,
    write_unet,
    write_vae,
)

SD1 = "tiny_sd1.safetensors"
SD2_V = "tiny_sd2_v.safetensors"
SDXL = "tiny_sdxl.safetensors"
SDXL_REFINER = "tiny_sdxl_refiner.safetensors"
LORA = "tiny_lora.safetensors"
VAE = "tiny_vae.safetensors"
UNET = "tiny_unet_sd1.safetensors"
CLIP_L = "tiny_clip_l.safetensors"
CLIP_G = "tiny_clip_g.safetensors"
EMBEDDING = "tiny_embedding"

# What the templates of comfyui-workflow-templates 0.1.30 load, by the content we give them.
# They render at 512-1920 pixels, so their checkpoints are "light": the same families with no
# attention at the full-resolution UNet level (where a 1152x1152 image has 20736 latent cells).
LIGHT_SD1 = "tiny_light_sd1.safetensors"
LIGHT_SD2_V = "tiny_light_sd2_v.safetensors"
LIGHT_SD2_INPAINT = "tiny_light_sd2_inpaint.safetensors"
LIGHT_SDXL = "tiny_light_sdxl.safetensors"
LIGHT_SDXL_REFINER = "tiny_light_sdxl_refiner.safetensors"
TEMPLATE_NAMES: dict[str, list[str]] = {
    LIGHT_SD1: [
        "v1-5-pruned-emaonly-fp16.safetensors",
        "v1-5-pruned-emaonly.safetensors",
        "dreamshaper_8.safetensors",
        "AbyssOrangeMix2_hard.safetensors",
    ],
    LIGHT_SD2_V: ["v2-1_768-ema-pruned.safetensors"],
    LIGHT_SD2_INPAINT: ["512-inpainting-ema.safetensors"],
    LIGHT_SDXL: ["sd_xl_base_1.0.safetensors"],
    LIGHT_SDXL_REFINER: ["sd_xl_refiner_1.0.safetensors"],
}
TEMPLATE_LORAS = ["MoXinV1.safetensors", "blindbox_v1_mix.safetensors"]
TEMPLATE_VAES = ["vae-ft-mse-840000-ema-pruned.safetensors"]
TEMPLATE_CKPT_FILES = {"Anything-V3.0.ckpt": LIGHT_SD1}
TEMPLATE_PT_EMBEDDINGS = ["SDA768.pt"]
TEMPLATE_INPUTS = ["example.png", "input.png", "input (1).png"]


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        return
    try:
        os.link(source, target)
    except OSError:
        target.write_bytes(source.read_bytes())


def _light_modules(family: str, in_channels: int = 4) -> Any:
    """tiny_modules(family) with a UNet that has no attention at its first level."""
    from diffusers import UNet2DConditionModel

    from tests.model_fixtures import _seeded, _unet_config

    config = dict(_unet_config(family))
    down, up = list(config["down_block_types"]), list(config["up_block_types"])
    if family.startswith("sdxl"):
        down[1], up[1] = "DownBlock2D", "UpBlock2D"
    else:
        down[0], up[-1] = "DownBlock2D", "UpBlock2D"
    config.update(down_block_types=tuple(down), up_block_types=tuple(up), in_channels=in_channels)
    modules = tiny_modules(family)
    modules.unet = _seeded(31 + in_channels, lambda: UNet2DConditionModel(**config))
    return modules


def _write_light_checkpoint(path: Path, family: str, in_channels: int = 4) -> Path:
    from tests.model_fixtures import modules_to_ldm

    state = modules_to_ldm(_light_modules(family, in_channels))
    if family == "sd2_v":
        # The light UNet lacks the block ComfyUI's v-prediction probe reads; say it outright.
        state["v_pred"] = torch.zeros(1)
    return save_fp16(path, state)


def _write_inpaint_checkpoint(path: Path) -> Path:
    """An SD2-style inpainting checkpoint: the UNet takes 9 input channels."""
    return _write_light_checkpoint(path, "sd2", in_channels=9)


def _write_embedding(path: Path, width: int, vectors: int = 2) -> Path:
    generator = torch.Generator().manual_seed(width + vectors)
    save_file({"emb_params": torch.randn((vectors, width), generator=generator)}, str(path))
    return path


def _write_ckpt(path: Path, source: Path) -> None:
    from safetensors.torch import load_file

    if not path.exists():
        torch.save({"state_dict": load_file(str(source))}, str(path))


def _write_input_images(input_dir: Path) -> None:
    input_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for name in TEMPLATE_INPUTS:
        target = input_dir / name
        if target.exists():
            continue
        rgba = rng.integers(0, 256, size=(64, 64, 4), dtype=np.uint8)
        rgba[..., 3] = 255
        rgba[16:48, 16:48, 3] = 0  # a transparent square: the inpaint templates' mask
        Image.fromarray(rgba, mode="RGBA").save(target)


def _fixture_digest() -> str:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in ("model_library.py", "model_fixtures.py", "lora_fixture.py"):
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:16]


def _cached_tree() -> Path:
    root = Path(tempfile.gettempdir()) / f"comfyray-tiny-models-{_fixture_digest()}"
    if (root / ".complete").exists():
        return root
    staging = Path(tempfile.mkdtemp(prefix="comfyray-tiny-models-", dir=root.parent))
    _write_all(staging)
    (staging / ".complete").write_text("ok\n")
    try:
        staging.rename(root)
    except OSError:  # another process finished first
        shutil.rmtree(staging, ignore_errors=True)
    return root


def populate_models(base_dir: Path) -> Path:
    """Link the tiny model files and inputs under base_dir; returns the models dir."""
    tree = _cached_tree()
    for source in tree.rglob("*"):
        if source.is_file() and source.name != ".complete":
            _link(source, base_dir / source.relative_to(tree))
    return base_dir / "models"


def _write_all(base_dir: Path) -> None:
    models = base_dir / "models"
    checkpoints = models / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    write_checkpoint(checkpoints / SD1, "sd1")
    write_checkpoint(checkpoints / SD2_V, "sd2_v")
    write_checkpoint(checkpoints / SDXL, "sdxl")
    write_checkpoint(checkpoints / SDXL_REFINER, "sdxl_refiner")
    _write_light_checkpoint(checkpoints / LIGHT_SD1, "sd1")
    _write_light_checkpoint(checkpoints / LIGHT_SD2_V, "sd2_v")
    _write_light_checkpoint(checkpoints / LIGHT_SDXL, "sdxl")
    _write_light_checkpoint(checkpoints / LIGHT_SDXL_REFINER, "sdxl_refiner")
    _write_inpaint_checkpoint(checkpoints / LIGHT_SD2_INPAINT)
    for source, names in TEMPLATE_NAMES.items():
        for name in names:
            _link(checkpoints / source, checkpoints / name)
    for name, source in TEMPLATE_CKPT_FILES.items():
        _write_ckpt(checkpoints / name, checkpoints / source)

    sd1 = tiny_modules("sd1")
    loras = models / "loras"
    loras.mkdir(parents=True, exist_ok=True)
    write_tiny_lora(loras / LORA, unet=sd1.unet, text_encoder=sd1.clip_l, seed=3)
    for name in TEMPLATE_LORAS:
        _link(loras / LORA, loras / name)

    write_vae(models / "vae" / VAE)
    for name in TEMPLATE_VAES:
        _link(models / "vae" / VAE, models / "vae" / name)
    write_unet(models / "diffusion_models" / UNET, "sd1")
    write_clip(models / "text_encoders" / CLIP_L, "l")
    write_clip(models / "text_encoders" / CLIP_G, "g")

    embeddings = models / "embeddings"
    embeddings.mkdir(parents=True, exist_ok=True)
    width = int(sd1.clip_l.config.hidden_size)
    _write_embedding(embeddings / f"{EMBEDDING}.safetensors", width)
    for name in TEMPLATE_PT_EMBEDDINGS:
        # The textual-inversion .pt layout: {"string_to_param": {"*": [n, width]}}.
        generator = torch.Generator().manual_seed(11)
        vectors = torch.randn((2, width), generator=generator)
        torch.save({"string_to_param": {"*": vectors}}, str(embeddings / name))
    _write_input_images(base_dir / "input")
    configs = models / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    # CheckpointLoader names a config; ours reads the architecture from the weights instead.
    (configs / "v1-inference.yaml").write_text("model:\n  target: ldm.models.diffusion\n")
