"""One real `comfyray serve` and one headless Chromium (Debian's, never a downloaded one)
for the browser tests of this folder.

Run inside /work/shared/tools/netns-run: the server binds 127.0.0.1 and nothing else is
reachable, so the page can only talk to our server.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server_process import ServerProcess, start_server

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1440, "height": 900}
SCREENSHOT_ENV = "COMFYRAY_SAVE_SCREENSHOT"
DOCS_SCREENSHOT = REPO / "docs" / "frontend.png"


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install -e '.[test]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (scripts/install installs Debian's chromium as root)"
    return None


@pytest.fixture(scope="module")
def e2e_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("e2e_server"), "--workers", "1")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A persistent context on a fresh profile folder, so reloads keep local storage."""
    reason = browser_missing()
    if reason is not None:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium_profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def screenshot_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots") / "frontend.png"


def publish_screenshot(path: Path) -> Path | None:
    """Copy the screenshot to docs/ when asked to; normal runs leave the tree clean."""
    if os.environ.get(SCREENSHOT_ENV) != "1":
        return None
    DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, DOCS_SCREENSHOT)
    return DOCS_SCREENSHOT
