"""The models side of a node worker: resolves model files, makes ModelRefs, and turns them into
loaded torch modules through the worker's ModelCache (LoRA patches applied on a copy).

One `ModelRuntime` per worker process, installed next to the folder paths (as ComfyUI's model
management is per process). Loader nodes only make references; the nodes that compute
(CLIPTextEncode, KSampler, VAEDecode, ...) ask the runtime for the modules.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node_actors.models.model_ref import LoraPatch, ModelRef, file_identity

if TYPE_CHECKING:
    from node_actors.folders import FolderPaths
    from node_actors.models.cache import ModelCache
    from node_actors.models.clip_models import ClipModels
    from node_actors.models.families import ModelFamily

logger = logging.getLogger(__name__)

# Which LoRA key prefixes patch which module of a family (kohya names, then diffusers/peft names).
UNET_LORA_PREFIXES = ("lora_unet_", "unet.")
CLIP_LORA_PREFIXES: dict[tuple[str, str], tuple[str, ...]] = {
    ("sd1", "l"): ("lora_te_", "text_encoder."),
    ("sd2", "h"): ("lora_te_", "text_encoder."),
    ("sd2_v", "h"): ("lora_te_", "text_encoder."),
    ("sdxl", "l"): ("lora_te1_", "text_encoder."),
    ("sdxl", "g"): ("lora_te2_", "text_encoder_2."),
    ("sdxl_refiner", "g"): ("lora_te_", "lora_te2_", "text_encoder."),
}


def ldm_module_names(unet: Any) -> dict[str, str]:
    """Original (LDM) module name -> the diffusers UNet's own, for LoRAs keyed the old way."""
    from node_actors.models.ldm_layout import unet_to_ldm

    state = unet.state_dict()
    try:
        renamed = unet_to_ldm(state)
    except KeyError:
        return {}
    aliases: dict[str, str] = {}
    # unet_to_ldm keeps the order of the keys it renames.
    for ours, ldm in zip(state, renamed, strict=True):
        if ours.endswith(".weight") and ldm.endswith(".weight"):
            aliases[ldm.removesuffix(".weight")] = ours.removesuffix(".weight")
    return aliases


class ModelFileError(ValueError):
    """A model file named by a node is missing or cannot be used."""


class ModelRuntime:
    def __init__(
        self,
        folders: FolderPaths,
        *,
        budget_bytes: int,
        device: str = "cpu",
        pinned: Sequence[str] = (),
    ) -> None:
        from node_actors.models.cache import ModelCache

        self.folders = folders
        self.device = device
        self._identities: dict[Any, Any] = {}
        self._lock = threading.Lock()
        self._pinned_names = [p.replace("\\", "/") for p in pinned]
        self._pinned_files: set[str] | None = None
        self._key_files: dict[str, tuple[str, ...]] = {}
        self.cache: ModelCache = ModelCache(budget_bytes, is_pinned=self._is_pinned)

    # --- files and references ---------------------------------------------------------------

    def resolve(self, folder: str, name: str) -> Path:
        path = self.folders.get_full_path(folder, name)
        if path is None:
            raise ModelFileError(f"{folder} file not found: {name}")
        return Path(path)

    def identity(self, path: Path) -> str:
        with self._lock:
            return file_identity(path, cache=self._identities)

    def ref(
        self,
        kind: str,
        paths: Sequence[Path],
        family: str | None,
        options: tuple[tuple[str, Any], ...] = (),
    ) -> ModelRef:
        files = tuple(str(p) for p in paths)
        return ModelRef(
            kind=kind,
            files=files,
            file_hashes=tuple(self.identity(p) for p in paths),
            family=family,
            options=options,
        )

    def lora_patch(self, name: str, strength: float) -> LoraPatch:
        path = self.resolve("loras", name)
        return LoraPatch(path=str(path), file_hash=self.identity(path), strength=float(strength))

    # --- pinning ------------------------------------------------------------------------------

    def _is_pinned(self, key: str) -> bool:
        if not self._pinned_names:
            return False
        if self._pinned_files is None:
            files: set[str] = set()
            for name in self._pinned_names:
                folder, _, rest = name.partition("/")
                path = self.folders.get_full_path(folder, rest) if rest else None
                if path is not None:
                    files.add(str(Path(path)))
                else:
                    logger.warning("pinned model %s not found in the model folders", name)
            self._pinned_files = files
        return any(f in self._pinned_files for f in self._key_files.get(key, ()))

    # --- loading ------------------------------------------------------------------------------

    def _cached(self, ref: ModelRef, key: str, load: Callable[[], Any], label: str) -> Any:
        self._key_files[key] = ref.files
        return self.cache.get(key, load, label=label)

    def unet(self, ref: ModelRef) -> tuple[ModelFamily, Any]:
        from node_actors.models.checkpoint import load_checkpoint, load_unet_file

        def load_base() -> tuple[ModelFamily, Any]:
            path = Path(ref.files[0])
            if ref.option("source") == "checkpoint":
                loaded = load_checkpoint(path, unet=True, clip=False, vae=False)
                family, module = loaded.family, loaded.unet
            else:
                family, module = load_unet_file(path)
            return family, self._to_device(module)

        base = self._cached(ref, ref.base_key(), load_base, f"unet {Path(ref.files[0]).name}")
        if not ref.patches:
            return base

        def load_patched() -> tuple[ModelFamily, Any]:
            from node_actors.models.lora import apply_lora, load_lora

            family, module = base
            patched = copy.deepcopy(module)
            aliases = ldm_module_names(patched)
            for patch in ref.patches:
                weights = load_lora(Path(patch.path))
                apply_lora(patched, weights, UNET_LORA_PREFIXES, patch.strength, aliases)
            return family, patched

        return self._cached(ref, ref.cache_key(), load_patched, "unet+lora")

    def clip(self, ref: ModelRef) -> ClipModels:
        from node_actors.models.checkpoint import load_checkpoint, load_clip_files

        def load_base() -> ClipModels:
            paths = [Path(f) for f in ref.files]
            if ref.option("source") == "checkpoint":
                clip = load_checkpoint(paths[0], unet=False, clip=True, vae=False).clip
            else:
                clip = load_clip_files(paths, ref.option("clip_type", "stable_diffusion"))
            if clip is None:
                raise ModelFileError(f"no text encoder in {paths[0].name}")
            for name, module in clip.encoders().items():
                setattr(clip, name, self._to_device(module))
            return clip

        base = self._cached(ref, ref.base_key(), load_base, f"clip {Path(ref.files[0]).name}")
        if not ref.patches:
            return base

        def load_patched() -> ClipModels:
            from node_actors.models.lora import apply_lora, load_lora

            patched = copy.deepcopy(base)
            for patch in ref.patches:
                weights = load_lora(Path(patch.path))
                for name, module in patched.encoders().items():
                    prefixes = CLIP_LORA_PREFIXES.get((patched.family, name), ("lora_te_",))
                    apply_lora(module, weights, prefixes, patch.strength)
            return patched

        return self._cached(ref, ref.cache_key(), load_patched, "clip+lora")

    def vae(self, ref: ModelRef) -> Any:
        from node_actors.models.checkpoint import load_checkpoint, load_vae_file

        def load() -> Any:
            path = Path(ref.files[0])
            if ref.option("source") == "checkpoint":
                module = load_checkpoint(path, unet=False, clip=False, vae=True).vae
                if module is None:
                    raise ModelFileError(f"no VAE in {path.name}")
            else:
                module = load_vae_file(path)
            return self._to_device(module)

        return self._cached(ref, ref.base_key(), load, f"vae {Path(ref.files[0]).name}")

    def _to_device(self, module: Any) -> Any:
        if self.device != "cpu":
            import torch

            module = module.to(self.device, dtype=torch.float16)
        return module

    # --- control ------------------------------------------------------------------------------

    def held_keys(self) -> tuple[str, ...]:
        return tuple(self.cache.keys())

    def free(self) -> int:
        dropped = self.cache.free()
        logger.info("model cache freed: %d models unloaded", dropped)
        return dropped


_installed: ModelRuntime | None = None


def install(runtime: ModelRuntime | None) -> None:
    """Make the runtime reachable from node code in this process (as the folder paths are)."""
    global _installed
    _installed = runtime


def installed() -> ModelRuntime:
    if _installed is None:
        raise RuntimeError("no model runtime in this process: nodes run on a NodeWorker")
    return _installed
