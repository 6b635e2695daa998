"""Loads custom node packs the way ComfyUI does.

Each entry of a custom-nodes folder that is a package (a folder with __init__.py) or a .py
file is imported with `spec_from_file_location` under a sys.modules name derived from its
full path, so relative imports inside the pack work and two packs with the same folder name
in different folders do not collide. A pack that fails to import, or exits, is logged with
its traceback and skipped; the rest still load.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from node_actors.compat_path import install_compat_path

if TYPE_CHECKING:
    from node_actors.registry import NodeRegistry

logger = logging.getLogger(__name__)


@dataclass
class PackLoadFailure:
    path: Path
    error: str


class PackLoadError(Exception):
    """A pack imported but cannot be used (for example it defines no nodes)."""


def describe_exception(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def pack_entries(directory: Path) -> list[Path]:
    """The importable entries of one custom-nodes folder, in name order."""
    entries = []
    for entry in sorted(directory.iterdir(), key=lambda p: p.name):
        if entry.name == "__pycache__" or entry.name.endswith(".disabled"):
            continue
        if entry.is_dir() and (entry / "__init__.py").is_file():
            entries.append(entry)
        elif entry.is_file() and entry.suffix == ".py":
            entries.append(entry)
    return entries


def _sys_module_name(path: Path) -> str:
    # Dots would make the import system treat parts of the path as parent packages.
    base = path if path.is_dir() else path.with_suffix("")
    return str(base).replace(".", "_x_")


def _pack_name(path: Path) -> str:
    return path.name if path.is_dir() else path.stem


def _import_pack(path: Path, sys_name: str) -> ModuleType:
    if path.is_dir():
        spec = importlib.util.spec_from_file_location(
            sys_name, path / "__init__.py", submodule_search_locations=[str(path)]
        )
    else:
        spec = importlib.util.spec_from_file_location(sys_name, path)
    if spec is None or spec.loader is None:
        raise PackLoadError(f"cannot build an import spec for {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[sys_name] = module
    spec.loader.exec_module(module)
    return module


def _forget_modules(sys_name: str) -> None:
    for name in [n for n in sys.modules if n == sys_name or n.startswith(sys_name + ".")]:
        del sys.modules[name]


def load_custom_node_pack(registry: NodeRegistry, path: Path) -> PackLoadFailure | None:
    """Import one pack and register its nodes; a failure is returned, never raised."""
    path = path.resolve()
    name = _pack_name(path)
    sys_name = _sys_module_name(path)
    try:
        module = _import_pack(path, sys_name)
        web = getattr(module, "WEB_DIRECTORY", None)
        if web is not None:
            module_dir = path if path.is_dir() else path.parent
            web_dir = (module_dir / str(web)).resolve()
            if web_dir.is_dir():
                registry.web_directories[name] = web_dir
            else:
                logger.warning("pack %s: WEB_DIRECTORY %s is not a folder", name, web_dir)
        if getattr(module, "NODE_CLASS_MAPPINGS", None) is None and not hasattr(
            module, "comfy_entrypoint"
        ):
            raise PackLoadError("it defines neither NODE_CLASS_MAPPINGS nor comfy_entrypoint")
        count = registry.register_module_mappings(module, f"custom_nodes.{name}")
    # SystemExit too: a pack calling sys.exit() at import must not stop the worker.
    except (Exception, SystemExit) as exc:
        _forget_modules(sys_name)
        logger.error("custom node pack %s failed to load:\n%s", path, traceback.format_exc())
        return PackLoadFailure(path, describe_exception(exc))
    logger.info("custom node pack %s: %d nodes", path, count)
    return None


def load_custom_node_packs(registry: NodeRegistry, dirs: Sequence[Path]) -> list[PackLoadFailure]:
    install_compat_path()
    failures = []
    for directory in dirs:
        directory = Path(directory)
        if not directory.is_dir():
            logger.warning("custom nodes folder %s does not exist; skipped", directory)
            continue
        for entry in pack_entries(directory):
            failure = load_custom_node_pack(registry, entry)
            if failure is not None:
                failures.append(failure)
    return failures
