"""Models built by several worker threads at once leave no module on the meta device."""

from __future__ import annotations

import threading
from pathlib import Path

import torch

from node_actors.models.checkpoint import load_checkpoint
from tests.model_fixtures import write_checkpoint


def test_concurrent_builds_do_not_leak_the_empty_weights_patch(tmp_path: Path) -> None:
    sd1 = write_checkpoint(tmp_path / "sd1.safetensors", "sd1")
    sdxl = write_checkpoint(tmp_path / "sdxl.safetensors", "sdxl")
    failures: list[BaseException] = []

    def load(path: Path, part: str) -> None:
        try:
            for _ in range(3):
                loaded = load_checkpoint(
                    path, unet=part == "unet", clip=part == "clip", vae=part == "vae"
                )
                modules = [loaded.unet, loaded.vae]
                modules += list(loaded.clip.encoders().values()) if loaded.clip else []
                for module in modules:
                    if module is not None and any(p.is_meta for p in module.parameters()):
                        raise AssertionError(f"{path.name} {part}: parameters on meta")
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [
        threading.Thread(target=load, args=(path, part))
        for path in (sd1, sdxl)
        for part in ("unet", "clip", "vae")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    # Every module loaded has real weights, and so does one made afterwards.
    for path in (sd1, sdxl):
        loaded = load_checkpoint(path)
        for module in (loaded.unet, loaded.vae, *loaded.clip.encoders().values()):
            assert not any(p.is_meta for p in module.parameters())
    assert torch.nn.Linear(2, 2).weight.device.type == "cpu"
