"""`comfyray` command line: `comfyray serve` with ComfyUI's server flags plus ours.

Only flags the user actually typed reach the settings, so the YAML profiles and COMFYRAY_*
variables keep their say for everything else. Usage errors exit 2, as argparse does.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from serve_app.settings import ServeSettings, SettingsFileError, load_settings

logger = logging.getLogger(__name__)

USAGE_ERROR = 2
SUPPRESS = argparse.SUPPRESS


class UsageError(ValueError):
    """The command line parsed, but the settings it leads to are invalid."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse's own wording names the flag ("unrecognized arguments: --foo"); add a hint.
        self.print_usage(sys.stderr)
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\nSee '{self.prog} --help'.\n")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="comfyray",
        description="ComfyUI's server API served by Ray Serve, prompts run on Ray workers.",
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    serve = commands.add_parser(
        "serve",
        help="start the server (ComfyUI's HTTP/WebSocket API)",
        description=(
            "Start Ray (or join RAY_ADDRESS) and serve ComfyUI's API. Settings come from, in "
            "rising precedence: configs/default.yaml, --config FILE, COMFYRAY_<FIELD> "
            "environment variables, these flags."
        ),
        allow_abbrev=False,
        argument_default=SUPPRESS,
    )
    net = serve.add_argument_group("network (as ComfyUI)")
    net.add_argument(
        "--listen",
        nargs="?",
        const="0.0.0.0",
        metavar="HOST",
        help="address to listen on; without a value 0.0.0.0 (all IPv4). Default: 127.0.0.1",
    )
    net.add_argument("--port", type=int, help="port to listen on. Default: 8188")

    dirs = serve.add_argument_group("directories (as ComfyUI; default: under the base directory)")
    dirs.add_argument(
        "--base-directory",
        type=Path,
        metavar="DIR",
        help="root of models/, custom_nodes/, input/, output/, temp/, user/. Default: cwd",
    )
    dirs.add_argument("--output-directory", type=Path, metavar="DIR", help="output directory")
    dirs.add_argument("--input-directory", type=Path, metavar="DIR", help="input directory")
    dirs.add_argument(
        "--temp-directory",
        type=Path,
        metavar="DIR",
        help="temp files go to DIR/temp, as in ComfyUI",
    )
    dirs.add_argument("--user-directory", type=Path, metavar="DIR", help="user data directory")
    dirs.add_argument(
        "--extra-model-paths-config",
        type=Path,
        action="append",
        metavar="PATH",
        help="an extra_model_paths.yaml in ComfyUI's format; repeatable",
    )

    run = serve.add_argument_group("execution (as ComfyUI)")
    run.add_argument("--cpu", action="store_true", help="run every node on CPU, even with GPUs")
    cache = run.add_mutually_exclusive_group()
    cache.add_argument(
        "--cache-classic",
        action="store_true",
        help="keep only results of nodes in the current prompt",
    )
    cache.add_argument(
        "--cache-lru",
        type=_positive_int,
        metavar="N",
        help="keep at most N node results (least recently used go first)",
    )
    cache.add_argument("--cache-none", action="store_true", help="cache nothing: every node runs")
    run.add_argument(
        "--max-upload-size",
        type=float,
        metavar="MB",
        help="largest upload in MB; a larger one gets 413. Default: 100",
    )
    run.add_argument(
        "--front-end-root",
        type=Path,
        metavar="DIR",
        help="serve this web frontend folder instead of comfyui-frontend-package's",
    )
    run.add_argument(
        "--multi-user",
        action="store_true",
        help="separate user data per user (the comfy-user header)",
    )

    ours = serve.add_argument_group("comfyray")
    ours.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="worker actors. Default: one per GPU, or 1 without GPUs",
    )
    ours.add_argument(
        "--store-uri",
        metavar="URI",
        help=(
            "content store for inputs, outputs, temp files and user data, shared by every "
            "replica and worker: file://DIR or s3://BUCKET?endpoint=HOST:PORT[&prefix=P] "
            "(credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). Default: the "
            "directories above"
        ),
    )
    ours.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="YAML profile laid over configs/default.yaml (e.g. configs/cluster.yaml)",
    )
    return parser


def settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Settings fields set by the flags present in `args` (absent flags are left out)."""
    given = vars(args)
    out: dict[str, Any] = {}
    if "listen" in given:
        out["host"] = given["listen"]
    renamed = {
        "config": "config_file",
        "extra_model_paths_config": "extra_model_paths_configs",
    }
    for flag in (
        "port",
        "base_directory",
        "output_directory",
        "input_directory",
        "user_directory",
        "extra_model_paths_config",
        "workers",
        "store_uri",
        "max_upload_size",
        "front_end_root",
        "config",
    ):
        if flag in given:
            out[renamed.get(flag, flag)] = given[flag]
    if "temp_directory" in given:
        out["temp_directory"] = given["temp_directory"] / "temp"
    for flag in ("cpu", "multi_user"):
        if given.get(flag):
            out[flag] = True
    if given.get("cache_classic"):
        out["cache_mode"] = "classic"
    elif given.get("cache_none"):
        out["cache_mode"] = "none"
    elif "cache_lru" in given:
        out["cache_mode"] = "lru"
        out["cache_lru_size"] = given["cache_lru"]
    return out


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming the setting, e.g. `port: Input should be ...`."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return "; ".join(lines)


def resolve_settings(args: argparse.Namespace) -> ServeSettings:
    """The validated settings; raises `UsageError` naming the bad field or file."""
    try:
        return load_settings(settings_overrides(args))
    except ValidationError as exc:
        raise UsageError(f"invalid settings: {describe_validation_error(exc)}") from exc
    except SettingsFileError as exc:
        raise UsageError(str(exc)) from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command != "serve":
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    try:
        if unknown:
            raise UsageError(f"unrecognized arguments: {' '.join(unknown)}")
        settings = resolve_settings(args)
    except UsageError as exc:
        print(f"comfyray serve: error: {exc}\nSee 'comfyray serve --help'.", file=sys.stderr)
        return USAGE_ERROR
    # Imported here so `--help` and usage errors stay fast.
    from serve_app import lifecycle

    lifecycle.configure_logging()
    return lifecycle.supervise(settings)


if __name__ == "__main__":
    sys.exit(main())
