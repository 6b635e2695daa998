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
                load_checkpoint(path, unet=part == "unet", clip=part == "clip", vae=part == "vae")
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
    # A module made afterwards, anywhere in the process, has real weights.
    assert torch.nn.Linear(2, 2).weight.device.type == "cpu"
