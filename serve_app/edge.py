"""What every API replica serves besides the cluster: files, users, settings, extensions.

`EdgeConfig` is plain data built from the settings where `comfyray serve` starts and handed
to each ingress replica through the controller; `EdgeServices` is what a replica opens from it
(the content store areas) and keeps in `app.state.edge` for the routes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request

from storage.areas import StoreAreas, area_uris, open_areas

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_MAX_UPLOAD_BYTES = 100 * MIB


@dataclass(frozen=True)
class EdgeConfig:
    area_uris: dict[str, str]
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    multi_user: bool = False
    base_dir: str = ""
    custom_node_dirs: list[str] = field(default_factory=list)
    # The web frontend's static folder; "" serves the installed comfyui-frontend-package.
    front_end_root: str = ""


def edge_config(settings: Any) -> EdgeConfig:
    """The EdgeConfig of a ServeSettings (serve_app/settings.py)."""
    directories = {
        "input": settings.input_directory,
        "output": settings.output_directory,
        "temp": settings.temp_directory,
        "user": settings.user_directory,
    }
    custom = [str(settings.custom_nodes_directory)] if settings.custom_nodes_directory else []
    return EdgeConfig(
        area_uris=area_uris(settings.store_uri, directories),
        max_upload_bytes=int(settings.max_upload_size * MIB),
        multi_user=bool(settings.multi_user),
        base_dir=str(settings.base_directory),
        custom_node_dirs=custom,
        front_end_root=str(settings.front_end_root or ""),
    )


def local_edge_config(base_dir: Path, **overrides: Any) -> EdgeConfig:
    """ComfyUI's layout under one folder, as file stores; for tests and the memory backend."""
    directories = {area: base_dir / area for area in ("input", "output", "temp", "user")}
    values: dict[str, Any] = {
        "area_uris": area_uris(None, directories),
        "base_dir": str(base_dir),
        "custom_node_dirs": [str(base_dir / "custom_nodes")],
    }
    values.update(overrides)
    return EdgeConfig(**values)


@dataclass
class EdgeServices:
    config: EdgeConfig
    areas: StoreAreas

    @classmethod
    def open(cls, config: EdgeConfig) -> EdgeServices:
        return cls(config=config, areas=open_areas(config.area_uris))


def get_edge(request: Request) -> EdgeServices:
    edge = getattr(request.app.state, "edge", None)
    if edge is None:
        raise RuntimeError("app has no edge services (build_app(..., edge=...))")
    return edge


# Route parameter type: `edge: EdgeDep` injects the replica's EdgeServices.
EdgeDep = Annotated[EdgeServices, Depends(get_edge)]
