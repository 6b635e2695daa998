"""API-format prompts for the image-generation nodes, small enough for the tiny test models."""

from __future__ import annotations

from typing import Any

from tests.model_library import SD1

Prompt = dict[str, dict[str, Any]]


def txt2img(
    prefix: str,
    *,
    ckpt: str = SD1,
    seed: int = 1,
    steps: int = 3,
    cfg: float = 5.0,
    sampler: str = "euler",
    scheduler: str = "normal",
    size: int = 64,
    batch: int = 1,
    text: str = "a photo of a cat",
    negative: str = "blurry",
    denoise: float = 1.0,
) -> Prompt:
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": negative, "clip": ["ckpt", 1]}},
        "latent": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": size, "height": size, "batch_size": batch},
        },
        "sampler": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["ckpt", 0],
                "seed": seed,
                "steps": steps,
                "cfg": cfg,
                "sampler_name": sampler,
                "scheduler": scheduler,
                "positive": ["pos", 0],
                "negative": ["neg", 0],
                "latent_image": ["latent", 0],
                "denoise": denoise,
            },
        },
        "decode": {
            "class_type": "VAEDecode",
            "inputs": {"samples": ["sampler", 0], "vae": ["ckpt", 2]},
        },
        "save": {
            "class_type": "SaveImage",
            "inputs": {"images": ["decode", 0], "filename_prefix": prefix},
        },
    }


def with_lora(prompt: Prompt, lora: str, strength_model: float, strength_clip: float) -> Prompt:
    """The same graph with a LoraLoader between the checkpoint and its users."""
    out = {
        k: {"class_type": v["class_type"], "inputs": dict(v["inputs"])} for k, v in prompt.items()
    }
    out["lora"] = {
        "class_type": "LoraLoader",
        "inputs": {
            "model": ["ckpt", 0],
            "clip": ["ckpt", 1],
            "lora_name": lora,
            "strength_model": strength_model,
            "strength_clip": strength_clip,
        },
    }
    out["sampler"]["inputs"]["model"] = ["lora", 0]
    out["pos"]["inputs"]["clip"] = ["lora", 1]
    out["neg"]["inputs"]["clip"] = ["lora", 1]
    return out


def sampler_grid(
    prefix: str, samplers: list[str], schedulers: list[str], *, ckpt: str = SD1, steps: int = 2
) -> Prompt:
    """One prompt with a KSampler -> VAEDecode -> PreviewImage per (sampler, scheduler) pair."""
    prompt: Prompt = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["ckpt", 1]}},
        "latent": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1},
        },
    }
    for sampler in samplers:
        for scheduler in schedulers:
            key = f"{sampler}.{scheduler}"
            prompt[f"k.{key}"] = {
                "class_type": "KSampler",
                "inputs": {
                    "model": ["ckpt", 0],
                    "seed": 5,
                    "steps": steps,
                    "cfg": 4.0,
                    "sampler_name": sampler,
                    "scheduler": scheduler,
                    "positive": ["pos", 0],
                    "negative": ["neg", 0],
                    "latent_image": ["latent", 0],
                    "denoise": 1.0,
                },
            }
            prompt[f"d.{key}"] = {
                "class_type": "VAEDecode",
                "inputs": {"samples": [f"k.{key}", 0], "vae": ["ckpt", 2]},
            }
            prompt[f"p.{key}"] = {
                "class_type": "SaveImage",
                "inputs": {"images": [f"d.{key}", 0], "filename_prefix": f"{prefix}/{key}"},
            }
    return prompt
