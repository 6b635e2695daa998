"""`comfyray serve` argument parsing and its mapping onto settings (nothing is started)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from serve_app import cli, lifecycle
from serve_app.settings import ServeSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("COMFYRAY_") or name == "RAY_ADDRESS":
            monkeypatch.delenv(name)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[ServeSettings]:
    """Settings the CLI would hand to the supervisor; nothing is spawned."""
    seen: list[ServeSettings] = []

    def fake_supervise(settings: ServeSettings) -> int:
        seen.append(settings)
        return 0

    monkeypatch.setattr(lifecycle, "supervise", fake_supervise)
    return seen


def overrides(*argv: str) -> dict[str, object]:
    args = cli.build_parser().parse_args(["serve", *argv])
    return cli.settings_overrides(args)


def test_no_flags_leave_every_setting_to_the_other_layers() -> None:
    assert overrides() == {}


@pytest.mark.parametrize(
    ("argv", "host"),
    [(["--listen"], "0.0.0.0"), (["--listen", "10.0.0.5"], "10.0.0.5"), ([], None)],
)
def test_listen(argv: list[str], host: str | None) -> None:
    assert overrides(*argv).get("host") == host


def test_listen_without_value_before_another_flag() -> None:
    assert overrides("--listen", "--port", "8189") == {"host": "0.0.0.0", "port": 8189}


def test_directories_and_repeatable_extra_model_paths() -> None:
    got = overrides(
        "--base-directory", "b",
        "--output-directory", "o",
        "--input-directory", "i",
        "--user-directory", "u",
        "--temp-directory", "t",
        "--extra-model-paths-config", "a.yaml",
        "--extra-model-paths-config", "b.yaml",
    )  # fmt: skip
    assert got == {
        "base_directory": Path("b"),
        "output_directory": Path("o"),
        "input_directory": Path("i"),
        "user_directory": Path("u"),
        # ComfyUI puts temp files in a "temp" folder inside the given directory.
        "temp_directory": Path("t") / "temp",
        "extra_model_paths_configs": [Path("a.yaml"), Path("b.yaml")],
    }


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--cache-classic"], {"cache_mode": "classic"}),
        (["--cache-none"], {"cache_mode": "none"}),
        (["--cache-lru", "12"], {"cache_mode": "lru", "cache_lru_size": 12}),
        (["--cpu", "--multi-user"], {"cpu": True, "multi_user": True}),
        (["--workers", "3", "--config", "p.yaml"], {"workers": 3, "config_file": Path("p.yaml")}),
        (
            ["--store-uri", "s3://b?endpoint=127.0.0.1:9000&prefix=p"],
            {"store_uri": "s3://b?endpoint=127.0.0.1:9000&prefix=p"},
        ),
        (
            ["--max-upload-size", "2.5", "--front-end-root", "web"],
            {"max_upload_size": 2.5, "front_end_root": Path("web")},
        ),
    ],
)
def test_flag_mapping(argv: list[str], expected: dict[str, object]) -> None:
    assert overrides(*argv) == expected


def test_flags_reach_the_supervised_settings(started: list[ServeSettings], tmp_path: Path) -> None:
    assert cli.main(["serve", "--port", "8189", "--cache-lru", "5", "--base-directory", "srv"]) == 0
    (settings,) = started
    assert settings.port == 8189
    assert (settings.cache_mode, settings.cache_lru_size) == ("lru", 5)
    assert settings.output_directory == tmp_path / "srv" / "output"


def test_store_uri_reaches_the_settings_and_overrides_the_config_file(
    started: list[ServeSettings], tmp_path: Path
) -> None:
    (tmp_path / "p.yaml").write_text("store_uri: file:///from/profile\n")
    uri = f"file://{tmp_path}/shared"
    assert cli.main(["serve", "--config", "p.yaml", "--store-uri", uri]) == 0
    (settings,) = started
    assert settings.store_uri == uri


def test_flags_override_the_config_file(started: list[ServeSettings], tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("port: 9000\ncache_mode: none\n")
    assert cli.main(["serve", "--config", "p.yaml", "--port", "9001"]) == 0
    (settings,) = started
    assert (settings.port, settings.cache_mode) == (9001, "none")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["serve", "--frobnicate"], "--frobnicate"),
        (["serve", "--port", "8188", "--no-such", "x"], "--no-such"),
        (["--bogus", "serve"], "--bogus"),
        (["serve", "--port", "70000"], "port"),
        (["serve", "--workers", "0"], "--workers"),
        (["serve", "--cache-lru", "0"], "--cache-lru"),
        (["serve", "--port", "http"], "--port"),
        (["serve", "--max-upload-size", "0"], "max_upload_size"),
        (["serve", "--cache-none", "--cache-classic"], "not allowed with"),
        (["serve", "--config", "absent.yaml"], "absent.yaml"),
        (["serve", "--extra-model-paths-config", "nope.yaml"], "extra_model_paths_configs"),
        # Abbreviations would make a typo silently mean another flag.
        (["serve", "--out", "x"], "--out"),
    ],
)
def test_usage_errors_exit_2_naming_the_problem(
    argv: list[str], needle: str, started: list[ServeSettings], capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    assert needle in capsys.readouterr().err
    assert started == []


def test_config_with_a_bad_field_exits_2_naming_it(
    started: list[ServeSettings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p.yaml").write_text("workers: many\n")
    assert cli.main(["serve", "--config", "p.yaml"]) == 2
    assert "workers" in capsys.readouterr().err
    assert started == []


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "serve" in capsys.readouterr().err


def test_help_documents_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--listen", "--port", "--output-directory", "--input-directory", "--temp-directory",
        "--user-directory", "--base-directory", "--extra-model-paths-config", "--cpu",
        "--cache-classic", "--cache-lru", "--cache-none", "--multi-user", "--workers", "--config",
        "--store-uri",
    ):  # fmt: skip
        assert flag in text
