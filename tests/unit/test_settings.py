"""ServeSettings: layers, derived defaults and validation (no Ray, no processes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from serve_app import settings as settings_module
from serve_app.settings import (
    DEFAULT_PROFILE,
    MIB,
    ServeSettings,
    SettingsFileError,
    detect_gpu_count,
    load_settings,
    merge_profiles,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("COMFYRAY_") or name in ("RAY_ADDRESS", "CUDA_VISIBLE_DEVICES"):
            monkeypatch.delenv(name)
    # No GPUs unless a test says so, whatever machine runs the suite.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def error_locs(exc: ValidationError) -> list[str]:
    return [".".join(str(p) for p in e["loc"]) for e in exc.errors()]


def test_defaults_follow_comfyui_layout_under_the_working_directory(tmp_path: Path) -> None:
    s = load_settings()
    assert (s.host, s.port) == ("127.0.0.1", 8188)
    assert s.base_directory == tmp_path
    assert s.output_directory == tmp_path / "output"
    assert s.input_directory == tmp_path / "input"
    assert s.temp_directory == tmp_path / "temp"
    assert s.user_directory == tmp_path / "user"
    assert s.models_directory == tmp_path / "models"
    assert s.state_dir == tmp_path / "user" / "comfyray"
    assert s.catalog_dir == tmp_path / "user" / "comfyray" / "catalog"
    assert s.cache_mode == "ram"
    assert s.object_store_memory == 512 * MIB
    assert s.workers == 1
    assert s.ray_address is None
    assert s.multi_user is False and s.cpu is False


def test_directories_follow_a_given_base_and_relative_paths_become_absolute(
    tmp_path: Path,
) -> None:
    s = load_settings({"base_directory": Path("srv"), "output_directory": Path("out")})
    assert s.base_directory == tmp_path / "srv"
    assert s.input_directory == tmp_path / "srv" / "input"
    assert s.output_directory == tmp_path / "out"
    assert s.state_dir == tmp_path / "srv" / "user" / "comfyray"


def test_state_dir_follows_a_moved_user_directory(tmp_path: Path) -> None:
    s = load_settings({"user_directory": tmp_path / "u"})
    assert s.state_dir == tmp_path / "u" / "comfyray"


def test_embedded_profile_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    profile = write(tmp_path / "default.yaml", "port: 9100\ncache_mode: classic\n")
    monkeypatch.setattr(settings_module, "DEFAULT_PROFILE", profile)
    s = load_settings()
    assert (s.port, s.cache_mode) == (9100, "classic")


def test_config_file_overrides_embedded_profile_and_merges_nested_maps(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    embedded = write(
        tmp_path / "default.yaml",
        "port: 9100\nmodel_paths:\n  checkpoints: [/a]\n  loras: [/b]\n",
    )
    monkeypatch.setattr(settings_module, "DEFAULT_PROFILE", embedded)
    chosen = write(tmp_path / "x.yaml", "port: 9200\nmodel_paths:\n  loras: [/c]\n")
    s = load_settings({"config_file": chosen})
    assert s.port == 9200
    assert s.model_paths == {"checkpoints": [Path("/a")], "loras": [Path("/c")]}


def test_precedence_cli_over_env_over_yaml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    chosen = write(tmp_path / "x.yaml", "port: 9200\nworkers: 3\nmulti_user: true\n")
    monkeypatch.setenv("COMFYRAY_PORT", "9300")
    monkeypatch.setenv("COMFYRAY_WORKERS", "5")
    s = load_settings({"config_file": chosen, "port": 9400})
    assert s.port == 9400  # flag beats env and YAML
    assert s.workers == 5  # env beats YAML
    assert s.multi_user is True  # YAML beats the default


def test_config_file_can_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("COMFYRAY_CONFIG_FILE", str(write(tmp_path / "x.yaml", "port: 9201\n")))
    assert load_settings().port == 9201


def test_ray_address_comes_from_ray_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert load_settings().ray_address == "127.0.0.1:6379"


def test_shipped_profiles_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    assert DEFAULT_PROFILE == REPO / "configs" / "default.yaml"
    local = load_settings()
    assert local.ray_address is None
    cluster = load_settings({"config_file": REPO / "configs" / "cluster.yaml"})
    assert cluster.ray_address == "auto"
    assert cluster.cache_mode == "lru" and cluster.cache_lru_size > 0
    assert cluster.store_uri is not None and cluster.store_uri.startswith("s3://")


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"workers": 0}, "workers"),
        ({"cache_mode": "fast"}, "cache_mode"),
        ({"object_store_memory": 1024}, "object_store_memory"),
        ({"ingress_factory": "no colon"}, "ingress_factory"),
        ({"no_such_setting": 1}, "no_such_setting"),
    ],
)
def test_invalid_values_name_the_field(values: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        load_settings(values)
    assert field in error_locs(caught.value)


def test_unknown_yaml_key_is_named(tmp_path: Path) -> None:
    chosen = write(tmp_path / "x.yaml", "prot: 1\n")
    with pytest.raises(ValidationError) as caught:
        load_settings({"config_file": chosen})
    assert "prot" in error_locs(caught.value)


def test_bad_env_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFYRAY_PORT", "http")
    with pytest.raises(ValidationError) as caught:
        load_settings()
    assert "port" in error_locs(caught.value)


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"cache_mode": "lru"}, "cache_lru_size"),
        ({"host": "0.0.0.0,::"}, "host"),
        ({"extra_model_paths_configs": [Path("missing.yaml")]}, "extra_model_paths_configs"),
    ],
)
def test_cross_field_errors_name_the_field(values: dict[str, object], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        load_settings(values)


@pytest.mark.parametrize(
    ("text", "needle"),
    [("port: [\n", "not valid YAML"), ("- a\n- b\n", "mapping")],
)
def test_broken_profiles_raise_settings_file_error(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(SettingsFileError, match=needle):
        load_settings({"config_file": write(tmp_path / "x.yaml", text)})


def test_missing_profile_raises_settings_file_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsFileError, match="cannot read"):
        load_settings({"config_file": tmp_path / "absent.yaml"})


def test_empty_profile_is_allowed(tmp_path: Path) -> None:
    assert load_settings({"config_file": write(tmp_path / "x.yaml", "")}).port == 8188


def test_workers_default_to_gpu_count_unless_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    assert load_settings().workers == 3
    assert load_settings({"cpu": True}).workers == 1
    assert load_settings({"workers": 7}).workers == 7


@pytest.mark.parametrize(
    ("visible", "expected"),
    [("", 0), ("0", 1), ("0,1", 2), ("-1", 0), ("0,-1,2", 1), ("GPU-aa, GPU-bb", 2)],
)
def test_gpu_count_from_cuda_visible_devices(visible: str, expected: int) -> None:
    assert detect_gpu_count({"CUDA_VISIBLE_DEVICES": visible}) == expected


def test_gpu_count_from_device_nodes(tmp_path: Path) -> None:
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "null"):
        (tmp_path / name).touch()
    assert detect_gpu_count({}, dev_dir=tmp_path) == 2
    assert detect_gpu_count({}, dev_dir=tmp_path / "absent") == 0


def test_json_round_trip_does_not_reread_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = load_settings({"port": 9001, "cache_mode": "lru", "cache_lru_size": 4})
    monkeypatch.setenv("COMFYRAY_PORT", "9999")
    again = ServeSettings.model_validate_json(s.model_dump_json())
    assert again == s


def test_merge_profiles_replaces_scalars_and_lists() -> None:
    merged = merge_profiles({"a": 1, "m": {"x": [1], "y": 2}}, {"a": 2, "m": {"x": [3]}})
    assert merged == {"a": 2, "m": {"x": [3], "y": 2}}


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8188"),
        ("0.0.0.0", "http://127.0.0.1:8188"),
        ("::", "http://[::1]:8188"),
        ("10.1.2.3", "http://10.1.2.3:8188"),
    ],
)
def test_display_url(host: str, url: str) -> None:
    assert load_settings({"host": host}).display_url() == url
