from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def engine_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.model_library import populate_models

    base = tmp_path_factory.mktemp("engine_base")
    # Before the first worker starts: loader combos list the files present then.
    populate_models(base)
    return base


@pytest.fixture
def arun() -> Callable[[Coroutine[Any, Any, Any]], Any]:
    def run(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run(asyncio.wait_for(coro, 60))

    return run
