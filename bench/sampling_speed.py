"""Seconds per sampling step: our KSampler vs a bare diffusers denoising loop, same network.

A full-size SD1.5-architecture UNet (860 M parameters, random weights: no real weights can be
downloaded here), 512x512 (a 64x64 latent), batch 1, classifier-free guidance (cfg 8), Euler
with the `normal` schedule. Both sides run the same `UNet2DConditionModel` object in the same
process, alternating, so the ratio is measured in one run:

1. ours: `node_actors.sampling.ksampler.run_sampler` (what KSampler calls, with its guidance,
   noise, schedule and per-step callback) on the UNet as the model cache hands it out;
2. baseline: diffusers' `EulerDiscreteScheduler` loop written the way its pipelines do it
   (concat cond/uncond, `scale_model_input`, UNet, CFG, `scheduler.step`).

Also the model cache: seconds for the first `ModelRuntime.unet()` (read the file, build, load)
vs a second call (a cache hit), for the same UNet written as a single-file checkpoint.

Run (several minutes on 2 CPU cores; `--device cuda` on a GPU machine):
    cd /work/main && PYTHONPATH=. .venv/bin/python bench/sampling_speed.py [--steps 4] [--record]
The last line of stdout is the results as JSON; `--record` writes the `sampling` section of
bench/RESULTS.md (or `sampling (cuda)` on a GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.common import record_sections  # noqa: E402

SD15_UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
}


def build_unet(device: str, dtype: torch.dtype, seed: int = 0) -> Any:
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**SD15_UNET).eval().requires_grad_(False)
    return unet.to(device, dtype)


def conditioning(device: str, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator("cpu").manual_seed(seed)
    cond = torch.randn((1, 77, 768), generator=gen)
    uncond = torch.randn((1, 77, 768), generator=gen)
    return cond.to(device), uncond.to(device)


def time_ours(unet: Any, steps: int, cfg: float, device: str) -> float:
    from node_actors.sampling.ksampler import run_sampler, schedule_for, sigmas_for

    cond, uncond = conditioning(device)
    schedule = schedule_for("eps")
    sigmas = sigmas_for(schedule, "normal", steps)
    latent = {"samples": torch.zeros((1, 4, 64, 64))}
    calls: list[int] = []
    sync(device)
    began = time.perf_counter()
    run_sampler(
        unet=unet,
        schedule=schedule,
        sampler_name="euler",
        sigmas=sigmas,
        latent=latent,
        positive=[[cond, {}]],
        negative=[[uncond, {}]],
        cfg=cfg,
        seed=42,
        latent_scale=0.18215,
        report=lambda step, total, x0: calls.append(step),
    )
    sync(device)
    return (time.perf_counter() - began) / steps


def time_diffusers(unet: Any, steps: int, cfg: float, device: str) -> float:
    from diffusers import EulerDiscreteScheduler

    cond, uncond = conditioning(device)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        timestep_spacing="linspace",
    )
    scheduler.set_timesteps(steps, device=device)
    gen = torch.Generator("cpu").manual_seed(42)
    dtype = next(unet.parameters()).dtype
    latents = torch.randn((1, 4, 64, 64), generator=gen).to(device) * scheduler.init_noise_sigma
    context = torch.cat([uncond, cond]).to(dtype)
    sync(device)
    began = time.perf_counter()
    with torch.no_grad():
        for t in scheduler.timesteps:
            model_input = scheduler.scale_model_input(torch.cat([latents] * 2), t)
            noise = unet(model_input.to(dtype), t, encoder_hidden_states=context).sample
            noise_uncond, noise_cond = noise.float().chunk(2)
            guided = noise_uncond + cfg * (noise_cond - noise_uncond)
            latents = scheduler.step(guided, t, latents).prev_sample
    sync(device)
    return (time.perf_counter() - began) / steps


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_cache(unet: Any, device: str) -> dict[str, float]:
    """Cold load of the UNet from a single-file checkpoint, then a cache hit."""
    from safetensors.torch import save_file

    from node_actors.folders import FolderPaths
    from node_actors.models.ldm_layout import unet_to_ldm
    from node_actors.models.runtime import ModelRuntime

    with tempfile.TemporaryDirectory(prefix="bench-models-") as base:
        folder = Path(base) / "models" / "diffusion_models"
        folder.mkdir(parents=True)
        state = {k: v.to("cpu", torch.float16).contiguous() for k, v in unet.state_dict().items()}
        save_file(unet_to_ldm(state), str(folder / "sd15_unet.safetensors"))
        del state
        runtime = ModelRuntime(FolderPaths(Path(base)), budget_bytes=16 << 30, device=device)
        path = runtime.resolve("diffusion_models", "sd15_unet.safetensors")
        ref = runtime.ref("unet", [path], "sd1")
        began = time.perf_counter()
        runtime.unet(ref)
        cold = time.perf_counter() - began
        began = time.perf_counter()
        runtime.unet(ref)
        hit = time.perf_counter() - began
        stats = runtime.cache.stats()
    return {"cold_load_s": cold, "hit_s": hit, "hits": stats.hits, "misses": stats.misses}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    device = args.device
    dtype = torch.float16 if device == "cuda" else torch.float32
    began = time.perf_counter()
    unet = build_unet(device, dtype)
    build_s = time.perf_counter() - began
    # One warm-up step each: first calls allocate and pick kernels.
    time_ours(unet, 1, args.cfg, device)
    time_diffusers(unet, 1, args.cfg, device)
    ours: list[float] = []
    base: list[float] = []
    for _ in range(args.rounds):
        ours.append(time_ours(unet, args.steps, args.cfg, device))
        base.append(time_diffusers(unet, args.steps, args.cfg, device))
    cache = time_cache(unet, device)
    ours_s, base_s = statistics.median(ours), statistics.median(base)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {
            "cpus": os.cpu_count(),
            "arch": platform.machine(),
            "device": device,
            "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "steps": args.steps,
        "rounds": args.rounds,
        "cfg": args.cfg,
        "build_s": build_s,
        "ours_s_per_step": ours,
        "diffusers_s_per_step": base,
        "ours_median": ours_s,
        "diffusers_median": base_s,
        "overhead": ours_s / base_s - 1.0,
        "cache": cache,
    }


def section(report: dict[str, Any], command: str) -> dict[str, str]:
    m = report["machine"]
    where = m["gpu"] or f"{m['cpus']} CPUs ({m['arch']}), {m['threads']} torch threads"
    rows = "\n".join(
        f"| {i + 1} | {o:.3f} | {b:.3f} | {o / b:.3f} |"
        for i, (o, b) in enumerate(
            zip(report["ours_s_per_step"], report["diffusers_s_per_step"], strict=True)
        )
    )
    cache = report["cache"]
    body = (
        f"`{command}`, {report['date']}, {where}, torch {m['torch']}. Full-size SD1.5-architecture "
        f"UNet (random weights), 512x512 (64x64 latent), batch 1, cfg {report['cfg']}, euler / "
        f"normal, {report['steps']} steps per round, rounds alternating; seconds per step.\n\n"
        "| round | ours (KSampler path) | bare diffusers loop | ratio |\n|---|---|---|---|\n"
        + rows
        + f"\n\nMedian: ours {report['ours_median']:.3f} s/step, diffusers "
        f"{report['diffusers_median']:.3f} s/step: overhead {100 * report['overhead']:+.1f}% "
        "(target: under 5%).\n\n"
        f"Model cache, the same UNet as a single-file fp16 checkpoint: cold load "
        f"{cache['cold_load_s']:.2f} s, cache hit {1000 * cache['hit_s']:.3f} ms "
        f"(ratio {cache['cold_load_s'] / max(cache['hit_s'], 1e-9):.0f}x).\n"
    )
    name = "sampling" if m["device"] == "cpu" else f"sampling ({m['device']})"
    return {name: body}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cfg", type=float, default=8.0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args(argv)
    report = measure(args)
    command = "PYTHONPATH=. .venv/bin/python bench/sampling_speed.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    sections = section(report, command.strip())
    for name, body in sections.items():
        print(f"## {name}\n\n{body}")
    if args.record:
        record_sections(sections)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
