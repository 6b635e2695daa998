"""Property-based requests against every operation of openapi.yaml, sent to a real server:
whatever a client sends, the answer is never a 5xx (schemathesis, bounded examples)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server_process import REPO, start_server


def test_no_request_gets_a_server_error(tmp_path: Path) -> None:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if cli is None:
        pytest.fail("schemathesis is a test dependency: run the install step")
    server = start_server(tmp_path / "base", "--workers", "1")
    try:
        result = subprocess.run(
            [
                cli,
                "run",
                str(REPO / "openapi.yaml"),
                "--url",
                server.url,
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "15",
                "--phases",
                "coverage,fuzzing",
                "--seed",
                "20261130",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
