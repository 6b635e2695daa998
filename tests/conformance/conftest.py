"""One real `comfyray serve` (local Ray, 2 workers, the stub pack) for the whole session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server_process import ServerProcess, start_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    from tests.model_library import populate_models

    base = tmp_path_factory.mktemp("conformance_server")
    # Before the server starts: loader combos list the files present when workers start.
    populate_models(base)
    process = start_server(base, "--workers", "2", "--cache-classic")
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def base_dir(server: ServerProcess) -> Path:
    return server.base_dir
