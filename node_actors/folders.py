"""Where models, inputs, outputs and temp files live on a worker.

`FolderPaths` is the object behind ComfyUI's `folder_paths` module: the model folder table,
the input/output/temp directories, extra_model_paths.yaml, annotated file names
("x.png [output]") and SaveImage's file naming. The compat `folder_paths` module and the core
nodes reach the process-wide instance through `installed()`.

Every name a client supplies (an image name, an annotated path, a filename prefix) is
confined to its folder: `..`, absolute paths and NUL bytes never reach a file outside it.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import time
from collections.abc import Iterable
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

import yaml

from node_actors.save_names import counter_of, expand_prefix_tokens

logger = logging.getLogger(__name__)

SUPPORTED_PT_EXTENSIONS: frozenset[str] = frozenset(
    {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
)

# Old folder names that ComfyUI still accepts everywhere a folder name is taken.
LEGACY_FOLDER_NAMES = MappingProxyType({"unet": "diffusion_models", "clip": "text_encoders"})

# Extensions mimetypes does not know on every system but ComfyUI treats as images.
_EXTRA_IMAGE_EXTENSIONS = frozenset({"webp"})

_ANNOTATIONS = ("output", "input", "temp")

OUTSIDE_OUTPUT_MESSAGE = "Saving image outside the output folder is not allowed."


class FolderPathError(ValueError):
    """A client-supplied name that would resolve outside its folder, or is malformed."""


class FolderConfigError(ValueError):
    """An extra_model_paths.yaml that does not have ComfyUI's shape."""


class FoldersNotInstalledError(RuntimeError):
    """`installed()` was called before `install()` in this process."""


class AreaSync(Protocol):
    """Keeps the worker's input/output/temp directories in step with a shared content store
    (node_actors/store_sync.py); FolderPaths consults it when one is set."""

    def ensure_local(self, area: str, key: str) -> bool:
        """Make the local file for `key` of `area` current before a node reads it."""
        ...

    def top_level_files(self, area: str) -> list[str] | None:
        """Names of the files directly in `area`, or None to list the local directory."""
        ...


def _check_name(name: str) -> None:
    if "\x00" in name:
        raise FolderPathError(f"Invalid file path: {name!r}")


def _is_within(directory: str | Path, target: str | Path) -> bool:
    """True if `target` resolves (symlinks followed) to `directory` or a path inside it."""
    try:
        root = os.path.realpath(directory)
        resolved = os.path.realpath(target)
        return os.path.commonpath((root, resolved)) == root
    except ValueError:
        return False


def _is_image_name(name: str) -> bool:
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension in _EXTRA_IMAGE_EXTENSIONS:
        return True
    mime, _ = mimetypes.guess_type(name, strict=False)
    return mime is not None and mime.startswith("image/")


def _split_path_list(value: object, section: str, key: str) -> list[str]:
    if isinstance(value, str):
        parts: Iterable[str] = value.replace("|", "\n").split("\n")
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        parts = value
    else:
        raise FolderConfigError(
            f"extra model paths: {section}.{key} must be a path string or a list of paths"
        )
    return [p.strip() for p in parts if p.strip()]


class FolderPaths:
    def __init__(
        self,
        base_dir: Path,
        *,
        output_dir: Path | None = None,
        input_dir: Path | None = None,
        temp_dir: Path | None = None,
        user_dir: Path | None = None,
        models_dir: Path | None = None,
    ) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.output_dir = Path(output_dir or self.base_dir / "output").absolute()
        self.input_dir = Path(input_dir or self.base_dir / "input").absolute()
        self.temp_dir = Path(temp_dir or self.base_dir / "temp").absolute()
        self.user_dir = Path(user_dir or self.base_dir / "user").absolute()
        self.models_dir = Path(models_dir or self.base_dir / "models").absolute()
        for directory in (self.output_dir, self.input_dir, self.temp_dir):
            directory.mkdir(parents=True, exist_ok=True)
        # Set by a worker whose areas live in a shared store; None: the directories are all.
        self.sync: AreaSync | None = None
        # One set object shared by the entries, as in ComfyUI, so a pack that adds an
        # extension to it changes every folder that uses the default list.
        self.supported_pt_extensions: set[str] = set(SUPPORTED_PT_EXTENSIONS)
        self.folder_names_and_paths: dict[str, tuple[list[str], set[str]]] = self._default_folders()

    def _default_folders(self) -> dict[str, tuple[list[str], set[str]]]:
        pt = self.supported_pt_extensions

        def models(*names: str) -> list[str]:
            return [str(self.models_dir / n) for n in names]

        return {
            "checkpoints": (models("checkpoints"), pt),
            "configs": (models("configs"), {".yaml"}),
            "loras": (models("loras"), pt),
            "vae": (models("vae"), pt),
            "text_encoders": (models("text_encoders", "clip"), pt),
            "diffusion_models": (models("unet", "diffusion_models"), pt),
            "clip_vision": (models("clip_vision"), pt),
            "style_models": (models("style_models"), pt),
            "embeddings": (models("embeddings"), pt),
            "diffusers": (models("diffusers"), {"folder"}),
            "vae_approx": (models("vae_approx"), pt),
            "controlnet": (models("controlnet", "t2i_adapter"), pt),
            "gligen": (models("gligen"), pt),
            "upscale_models": (models("upscale_models"), pt),
            "latent_upscale_models": (models("latent_upscale_models"), pt),
            # Custom nodes sit next to models/, not inside it (ComfyUI's layout).
            "custom_nodes": ([str(self.base_dir / "custom_nodes")], set()),
            "hypernetworks": (models("hypernetworks"), pt),
            "photomaker": (models("photomaker"), pt),
            "classifiers": (models("classifiers"), {""}),
            "model_patches": (models("model_patches"), pt),
            "audio_encoders": (models("audio_encoders"), pt),
        }

    # ---- directories -------------------------------------------------------------------

    def get_directory_by_type(self, type_name: str) -> Path | None:
        return {"output": self.output_dir, "input": self.input_dir, "temp": self.temp_dir}.get(
            type_name
        )

    # ---- model folders -----------------------------------------------------------------

    def get_folder_paths(self, folder: str) -> list[str]:
        """The folder's search paths (a copy). Raises KeyError for an unknown folder."""
        return list(self.folder_names_and_paths[LEGACY_FOLDER_NAMES.get(folder, folder)][0])

    def get_filename_list(self, folder: str) -> list[str]:
        """Sorted '/'-separated relative paths of the folder's files, across all its paths."""
        paths, extensions = self.folder_names_and_paths[LEGACY_FOLDER_NAMES.get(folder, folder)]
        found: set[str] = set()
        for root in paths:
            for relative in _walk_files(root):
                if not extensions or os.path.splitext(relative)[1].lower() in extensions:
                    found.add(relative)
        return sorted(found)

    def get_full_path(self, folder: str, filename: str) -> str | None:
        """The first existing file `filename` under the folder's paths, else None.

        Confinement is lexical on purpose: model folders often hold symlinks to weights
        stored elsewhere, and those must keep working.
        """
        key = LEGACY_FOLDER_NAMES.get(folder, folder)
        if key not in self.folder_names_and_paths or not filename or "\x00" in filename:
            return None
        if os.path.isabs(filename):
            return None
        relative = os.path.normpath(filename)
        if relative == ".." or relative.startswith(".." + os.sep):
            return None
        for root in self.folder_names_and_paths[key][0]:
            candidate = os.path.join(root, relative)
            if os.path.isfile(candidate):
                return candidate
            if os.path.islink(candidate):
                logger.warning("model path %s is a broken symlink, skipping", candidate)
        return None

    def add_model_folder_path(self, folder: str, path: str, is_default: bool = False) -> None:
        key = LEGACY_FOLDER_NAMES.get(folder, folder)
        path = str(path)
        if key not in self.folder_names_and_paths:
            self.folder_names_and_paths[key] = ([path], set())
            return
        paths = self.folder_names_and_paths[key][0]
        if path in paths:
            if is_default and paths[0] != path:
                paths.remove(path)
                paths.insert(0, path)
        elif is_default:
            paths.insert(0, path)
        else:
            paths.append(path)

    def load_extra_model_paths(self, yaml_path: Path) -> list[Path]:
        """Apply an extra_model_paths.yaml; returns the custom node folders it lists."""
        yaml_path = Path(yaml_path).absolute()
        try:
            config = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise FolderConfigError(f"extra model paths: {yaml_path} is not valid YAML") from exc
        if config is None:
            return []
        if not isinstance(config, dict):
            raise FolderConfigError(f"extra model paths: {yaml_path} must be a mapping")
        yaml_dir = yaml_path.parent
        custom_node_dirs: list[Path] = []
        for section, entries in config.items():
            if entries is None:
                continue
            if not isinstance(entries, dict):
                raise FolderConfigError(f"extra model paths: section {section!r} must be a mapping")
            entries = dict(entries)
            base = entries.pop("base_path", None)
            base_path: str | None = None
            if base is not None:
                base_path = os.path.expandvars(os.path.expanduser(str(base)))
                if not os.path.isabs(base_path):
                    base_path = os.path.join(yaml_dir, base_path)
            is_default = bool(entries.pop("is_default", False))
            for key, value in entries.items():
                for entry in _split_path_list(value, str(section), str(key)):
                    entry = os.path.expandvars(os.path.expanduser(entry))
                    if base_path is not None:
                        full = os.path.join(base_path, entry)
                    elif os.path.isabs(entry):
                        full = entry
                    else:
                        full = os.path.join(yaml_dir, entry)
                    full = os.path.normpath(os.path.abspath(full))
                    logger.info("adding extra search path %s %s", key, full)
                    self.add_model_folder_path(str(key), full, is_default)
                    if key == "custom_nodes":
                        custom_node_dirs.append(Path(full))
        return custom_node_dirs

    # ---- annotated input/output/temp names ---------------------------------------------

    def _split_annotation(self, name: str) -> tuple[str, Path | None]:
        for kind in _ANNOTATIONS:
            suffix = f"[{kind}]"
            if name.endswith(suffix):
                stripped = name[: -len(suffix)]
                if stripped.endswith(" "):
                    stripped = stripped[:-1]
                return stripped, self.get_directory_by_type(kind)
        return name, None

    def get_annotated_filepath(self, name: str, default_dir: str | None = None) -> str:
        """The absolute path of "x.png", "sub/x.png [output]", ...; input/ by default.

        Raises FolderPathError when the name would leave its directory.
        """
        _check_name(name)
        bare, base = self._split_annotation(name)
        base_dir: str | Path = base if base is not None else (default_dir or self.input_dir)
        if os.path.isabs(bare):
            raise FolderPathError(f"Invalid file path: {bare!r}")
        path = os.path.abspath(os.path.join(base_dir, bare))
        if not _is_within(base_dir, path):
            raise FolderPathError(f"Invalid file path: {bare!r}")
        if self.sync is not None:
            self._sync_file(self.sync, base_dir, path)
        return path

    def _sync_file(self, sync: AreaSync, base_dir: str | Path, path: str) -> None:
        """Fetch `path` from its area of the shared store (a node is about to read it), if
        `base_dir` is one of the areas; a caller's own default_dir is left alone."""
        root = os.path.realpath(base_dir)
        for area in _ANNOTATIONS:
            directory = self.get_directory_by_type(area)
            if directory is not None and os.path.realpath(directory) == root:
                relative = os.path.relpath(path, os.path.abspath(base_dir))
                if relative != os.curdir:
                    sync.ensure_local(area, relative.replace(os.sep, "/"))
                return

    def exists_annotated_filepath(self, name: str) -> bool:
        try:
            path = self.get_annotated_filepath(name)
        except FolderPathError:
            return False
        return os.path.isfile(path)

    # ---- SaveImage naming --------------------------------------------------------------

    def get_save_image_path(
        self,
        filename_prefix: str,
        output_dir: str | Path,
        image_width: int = 0,
        image_height: int = 0,
        *,
        now: time.struct_time | None = None,
    ) -> tuple[str, str, int, str, str]:
        """(full_output_folder, filename, counter, subfolder, filename_prefix).

        `counter` is one more than the largest N of the existing files named
        `<filename>_<N>...` in the folder (base compared case-insensitively), else 1.
        """
        if "\x00" in filename_prefix:
            raise FolderPathError(f"Invalid filename prefix: {filename_prefix!r}")
        if "%" in filename_prefix:
            filename_prefix = expand_prefix_tokens(
                filename_prefix, image_width, image_height, now or time.localtime()
            )
        normalized = os.path.normpath(filename_prefix)
        subfolder = os.path.dirname(normalized)
        filename = os.path.basename(normalized)
        output_dir = str(output_dir)
        full_output_folder = os.path.join(output_dir, subfolder)
        if os.path.isabs(subfolder) or not _is_within(output_dir, full_output_folder):
            logger.error(
                "refusing to save outside the output folder: prefix %r, output dir %s",
                filename_prefix,
                output_dir,
            )
            raise FolderPathError(OUTSIDE_OUTPUT_MESSAGE)
        try:
            existing = os.listdir(full_output_folder)
        except FileNotFoundError:
            os.makedirs(full_output_folder, exist_ok=True)
            existing = []
        counter = 1 + max((counter_of(n, filename) for n in existing), default=0)
        return full_output_folder, filename, counter, subfolder, filename_prefix

    # ---- LoadImage's options -----------------------------------------------------------

    def input_image_files(self) -> list[str]:
        if self.sync is not None:
            try:
                shared = self.sync.top_level_files("input")
            except Exception as exc:
                # LoadImage's options are only a convenience; the local ones beat none.
                logger.warning(
                    "listing the shared input area failed, using %s: %s", self.input_dir, exc
                )
                shared = None
            if shared is not None:
                return sorted(n for n in shared if _is_image_name(n))
        try:
            names = os.listdir(self.input_dir)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if _is_image_name(n) and os.path.isfile(self.input_dir / n))


def _walk_files(root: str) -> list[str]:
    """Relative '/'-separated paths of the non-hidden files below `root`, links followed."""
    if not os.path.isdir(root):
        return []
    result: list[str] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith("."):
                continue
            relative = os.path.relpath(os.path.join(dirpath, name), root)
            result.append(relative.replace(os.sep, "/"))
    return result


# The process-wide instance the compat `folder_paths` module and the core nodes read.
_installed: FolderPaths | None = None


def install(folders: FolderPaths) -> None:
    global _installed
    _installed = folders
    logger.info("folder paths installed: base %s", folders.base_dir)


def uninstall() -> None:
    """Forget the installed instance (tests)."""
    global _installed
    _installed = None


def installed() -> FolderPaths:
    if _installed is None:
        raise FoldersNotInstalledError("no FolderPaths installed in this process")
    return _installed
