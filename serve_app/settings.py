"""Settings of `comfyray serve`: one validated model built from four layers.

Precedence, highest first: command-line flags (passed as init values), environment variables
(`COMFYRAY_<FIELD>`, plus `RAY_ADDRESS`), the `--config` YAML profile, the embedded profile
`configs/default.yaml`, then the field defaults below. The model is plain data (JSON
round-trips), so the supervisor can hand it to the server process and the server to actors.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
# Ray refuses an object store below 75 MiB.
MIN_OBJECT_STORE_MEMORY = 75 * MIB
DEFAULT_PROFILE = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"

CacheMode = Literal["classic", "lru", "none", "ram"]


class SettingsFileError(ValueError):
    """A YAML profile is missing, unreadable or not a mapping of settings."""


def read_profile(path: Path) -> dict[str, Any]:
    """The settings mapping stored in one YAML profile (an empty file is an empty mapping)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsFileError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SettingsFileError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsFileError(f"config file {path} must hold a mapping of settings")
    return data


def merge_profiles(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` laid over `base`; nested mappings merge key by key instead of replacing."""
    merged = dict(base)
    for key, value in override.items():
        below = merged.get(key)
        if isinstance(below, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_profiles(below, value)
        else:
            merged[key] = value
    return merged


def detect_gpu_count(environ: Mapping[str, str] | None = None, dev_dir: Path = Path("/dev")) -> int:
    """GPUs this machine offers, found without importing torch or starting Ray (both are slow).

    CUDA_VISIBLE_DEVICES wins when set, as it does for CUDA itself; otherwise the NVIDIA device
    nodes are counted.
    """
    env = os.environ if environ is None else environ
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [part.strip() for part in visible.split(",") if part.strip()]
        # CUDA stops at the first invalid id, and "-1" is the usual way to hide every GPU.
        count = 0
        for device_id in ids:
            if device_id.startswith("-"):
                break
            count += 1
        return count
    try:
        return sum(1 for entry in dev_dir.iterdir() if re.fullmatch(r"nvidia\d+", entry.name))
    except OSError:
        return 0


class _ProfileSource(PydanticBaseSettingsSource):
    """The YAML layer: the embedded profile with the `config_file` profile laid over it.

    It runs after the init and environment layers, so it can read which `config_file` they chose.
    """

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ returns the whole mapping at once.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        data = read_profile(DEFAULT_PROFILE)
        chosen = self.current_state.get("config_file")
        if chosen:
            data = merge_profiles(data, read_profile(Path(chosen)))
        # A profile cannot chain to another one: only the flag or environment picks it.
        data.pop("config_file", None)
        return data


class ServeSettings(BaseSettings):
    """Everything `comfyray serve` and the app it deploys need to know at start."""

    model_config = SettingsConfigDict(
        env_prefix="COMFYRAY_",
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
    )

    config_file: Path | None = Field(
        None, description="YAML profile laid over configs/default.yaml"
    )
    host: str = Field("127.0.0.1", min_length=1, description="address the HTTP server binds")
    port: int = Field(8188, ge=1, le=65535)
    base_directory: Path = Field(default_factory=Path.cwd)
    output_directory: Path | None = None
    input_directory: Path | None = None
    temp_directory: Path | None = None
    user_directory: Path | None = None
    models_directory: Path | None = None
    custom_nodes_directory: Path | None = None
    extra_model_paths_configs: list[Path] = Field(default_factory=list)
    model_paths: dict[str, list[Path]] = Field(
        default_factory=dict, description="extra folders per model folder name, e.g. checkpoints"
    )
    cpu: bool = False
    cache_mode: CacheMode = "ram"
    cache_lru_size: int = Field(0, ge=0)
    multi_user: bool = False
    workers: int | None = Field(None, ge=1, description="worker actors; default: GPUs, or 1")
    model_cache_bytes: int = Field(
        0,
        ge=0,
        description="each worker's model cache budget (VRAM on GPU, RAM on CPU); 0: half the "
        "device's memory (on CPU shared by the workers)",
    )
    pinned_models: list[str] = Field(
        default_factory=list,
        description="models every worker keeps loaded: folder/file names, e.g. checkpoints/x.safetensors",
    )
    ray_address: str | None = Field(
        None,
        validation_alias=AliasChoices("ray_address", "COMFYRAY_RAY_ADDRESS", "RAY_ADDRESS"),
    )
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a local Ray; default: all")
    http_proxy: Literal["haproxy", "python"] = Field(
        "python",
        description="Serve's HTTP proxy for a local Ray: Serve's Python proxy, or HAProxy "
        "(ships with ray[serve] on Linux; about 6 ms less per request here, but it also opens "
        "stats and metrics ports on every interface)",
    )
    object_store_memory: int = Field(512 * MIB, ge=MIN_OBJECT_STORE_MEMORY)
    state_dir: Path | None = None
    store_uri: str | None = Field(
        None, description="content store (file://DIR or s3://BUCKET?endpoint=...); None: the dirs"
    )
    catalog_dir: Path | None = None
    max_upload_size: float = Field(
        100, gt=0, description="largest upload in MB, as ComfyUI's --max-upload-size; over it: 413"
    )
    front_end_root: Path | None = Field(
        None, description="the web frontend's static folder; default: comfyui-frontend-package"
    )
    ingress_factory: str = Field(
        "serve_app.ingress:deploy",
        pattern=r"^[\w.]+:\w+$",
        description="module:function that deploys the app; tests point it at a stub",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _ProfileSource(settings_cls))

    @model_validator(mode="after")
    def _derive(self) -> ServeSettings:
        if "," in self.host:
            raise ValueError("host: Ray Serve binds one address; give a single host")
        if self.cache_mode == "lru" and self.cache_lru_size < 1:
            raise ValueError("cache_lru_size must be at least 1 when cache_mode is 'lru'")
        for path in self.extra_model_paths_configs:
            if not path.is_file():
                raise ValueError(f"extra_model_paths_configs: no such file: {path}")

        base = _absolute(self.base_directory)
        self.base_directory = base
        self.output_directory = _absolute(self.output_directory or base / "output")
        self.input_directory = _absolute(self.input_directory or base / "input")
        self.temp_directory = _absolute(self.temp_directory or base / "temp")
        self.user_directory = _absolute(self.user_directory or base / "user")
        self.models_directory = _absolute(self.models_directory or base / "models")
        self.custom_nodes_directory = _absolute(
            self.custom_nodes_directory or base / "custom_nodes"
        )
        self.state_dir = _absolute(self.state_dir or self.user_directory / "comfyray")
        self.catalog_dir = _absolute(self.catalog_dir or self.state_dir / "catalog")
        self.extra_model_paths_configs = [_absolute(p) for p in self.extra_model_paths_configs]
        if self.front_end_root is not None:
            self.front_end_root = _absolute(self.front_end_root)
        if self.workers is None:
            self.workers = 1 if self.cpu else max(1, detect_gpu_count())
        return self

    def display_url(self) -> str:
        """The URL a person on this machine opens: a wildcard bind is reached over loopback."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path.expanduser()))


def load_settings(cli_values: Mapping[str, Any] | None = None) -> ServeSettings:
    """Settings from all layers; `cli_values` holds only the flags the user actually gave."""
    return ServeSettings(**dict(cli_values or {}))
