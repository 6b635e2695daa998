"""The node registry: class_type -> NodeAdapter, plus the web folders packs ship.

Built once per worker process by `build_default_registry`: the core library first, then
custom node packs, so that a pack can never replace a built-in node (first name wins).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import logging
import pkgutil
import traceback
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from node_actors.adapter import NodeAdapter
from node_actors.compat_path import install_compat_path
from node_actors.custom_nodes import PackLoadFailure, describe_exception, load_custom_node_packs
from node_actors.protocol import NodeDefinition

if TYPE_CHECKING:
    from node_actors.folders import FolderPaths

logger = logging.getLogger(__name__)

LIBRARY_PACKAGE = "node_actors.library"


class NodeRegistry:
    def __init__(self) -> None:
        self._adapters: dict[str, NodeAdapter] = {}
        # module name -> absolute WEB_DIRECTORY, served at /extensions/<module name>/
        self.web_directories: dict[str, Path] = {}

    def __contains__(self, class_type: object) -> bool:
        return class_type in self._adapters

    def __len__(self) -> int:
        return len(self._adapters)

    def class_types(self) -> list[str]:
        return list(self._adapters)

    def register(
        self,
        class_type: str,
        cls: type,
        *,
        display_name: str | None = None,
        python_module: str = "nodes",
    ) -> bool:
        """Add a node class. A name that is already registered keeps its first class."""
        existing = self._adapters.get(class_type)
        if existing is not None:
            logger.warning(
                "node %s from %s ignored: the name is already registered by %s",
                class_type,
                python_module,
                existing.python_module,
            )
            return False
        if not isinstance(cls, type):
            logger.warning(
                "node %s from %s ignored: %r is not a class", class_type, python_module, cls
            )
            return False
        self._adapters[class_type] = NodeAdapter(
            class_type, cls, display_name=display_name, python_module=python_module
        )
        return True

    def register_module_mappings(self, module: ModuleType, python_module: str) -> int:
        """Register a module's NODE_CLASS_MAPPINGS (with NODE_DISPLAY_NAME_MAPPINGS) and the
        nodes of its V3 `comfy_entrypoint()` extension. Returns how many were added."""
        count = 0
        mappings = getattr(module, "NODE_CLASS_MAPPINGS", None)
        display_names: Mapping[str, str] = getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None) or {}
        if mappings:
            for class_type, cls in mappings.items():
                if self.register(
                    class_type,
                    cls,
                    display_name=display_names.get(class_type),
                    python_module=python_module,
                ):
                    count += 1
        entrypoint = getattr(module, "comfy_entrypoint", None)
        if callable(entrypoint):
            for cls in _extension_nodes(entrypoint):
                schema = cls.GET_SCHEMA()
                if self.register(
                    schema.node_id,
                    cls,
                    display_name=schema.display_name,
                    python_module=python_module,
                ):
                    count += 1
        return count

    def adapter(self, class_type: str) -> NodeAdapter:
        return self._adapters[class_type]

    def definitions(self) -> dict[str, NodeDefinition]:
        """Fresh definitions of every node whose class can describe itself."""
        definitions = {}
        for class_type, adapter in self._adapters.items():
            definition = self._build(class_type, adapter)
            if definition is not None:
                definitions[class_type] = definition
        return definitions

    def object_info(self) -> dict[str, dict[str, Any]]:
        return {class_type: d.info for class_type, d in self.definitions().items()}

    def object_info_for(self, class_type: str) -> dict[str, Any]:
        adapter = self._adapters.get(class_type)
        if adapter is None:
            return {}
        definition = self._build(class_type, adapter)
        return {} if definition is None else definition.info

    @staticmethod
    def _build(class_type: str, adapter: NodeAdapter) -> NodeDefinition | None:
        try:
            return adapter.build_definition()
        except Exception:
            logger.exception(
                "node %s (%s): building its object_info failed; it is left out",
                class_type,
                adapter.python_module,
            )
            return None


def _resolve(value: Any) -> Any:
    """The value of a possibly awaitable result, from sync code."""
    if not inspect.isawaitable(value):
        return value

    async def wait() -> Any:
        return await value

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wait())
    # Called from inside a running loop (an async actor's setup): use a loop of our own
    # in another thread rather than blocking or re-entering the caller's.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, wait()).result()


def _extension_nodes(entrypoint: Any) -> list[type]:
    extension = _resolve(entrypoint())
    _resolve(extension.on_load())
    return list(_resolve(extension.get_node_list()))


def _library_modules() -> list[str]:
    package = importlib.import_module(LIBRARY_PACKAGE)
    names = [
        f"{LIBRARY_PACKAGE}.{info.name}"
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_")
    ]
    return sorted(names)


def build_default_registry(
    folders: FolderPaths, custom_node_dirs: Sequence[Path]
) -> tuple[NodeRegistry, list[PackLoadFailure]]:
    """The core library, then the custom packs found in custom_node_dirs."""
    install_compat_path()
    from node_actors.folders import install

    # Packs call folder_paths at import time, so the folders must be in place first.
    install(folders)
    registry = NodeRegistry()
    failures: list[PackLoadFailure] = []
    for module_name in _library_modules():
        try:
            module = importlib.import_module(module_name)
            count = registry.register_module_mappings(
                module, getattr(module, "PYTHON_MODULE", "nodes")
            )
        except Exception as exc:
            logger.error(
                "core node module %s failed to load:\n%s", module_name, traceback.format_exc()
            )
            spec = importlib.util.find_spec(module_name)
            origin = Path(spec.origin) if spec and spec.origin else Path(module_name)
            failures.append(PackLoadFailure(origin, describe_exception(exc)))
            continue
        logger.info("core node module %s: %d nodes", module_name, count)
    failures.extend(load_custom_node_packs(registry, custom_node_dirs))
    return registry, failures
