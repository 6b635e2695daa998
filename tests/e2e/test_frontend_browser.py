"""The official ComfyUI web frontend, driven in headless Chromium against a real server.

Each test checks one thing a user does: the app boots, the node library lists our nodes, a
model-free workflow runs from the page and shows its image, a setting survives a reload.
Console errors and failed requests to our server fail the test of the step they happened in,
except the few 404s that ComfyUI answers as well (ALLOWED_NOT_FOUND says why, one by one).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.e2e.conftest import browser_missing, publish_screenshot
from tests.server_process import ServerProcess

logger = logging.getLogger(__name__)

_missing = browser_missing()
if _missing is not None:
    pytest.skip(_missing, allow_module_level=True)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

# The machine is slow and shared: the first load compiles ~10 MB of JavaScript.
BOOT_TIMEOUT_MS = 120_000
STEP_TIMEOUT_MS = 30_000
RUN_TIMEOUT_MS = 180_000

# (method, path, required query items) -> why ComfyUI itself answers 404 there.
ALLOWED_NOT_FOUND: dict[tuple[str, str, tuple[tuple[str, str], ...]], str] = {
    ("GET", "/user.css", ()): (
        "index.html links user.css relative to the web root; the frontend package ships none "
        "and ComfyUI serves the same folder, so ComfyUI answers 404 as well"
    ),
    ("GET", "/api/userdata/user.css", ()): (
        "index.html links the user's optional stylesheet; a user without one gets 404 (§1.7)"
    ),
    ("GET", "/api/userdata/comfy.templates.json", ()): (
        "the frontend reads the user's optional saved templates file; missing -> 404 (§1.7)"
    ),
    ("GET", "/api/userdata", (("dir", "workflows"),)): (
        "a new user has no workflows folder yet; ComfyUI lists a missing dir as 404 (§1.7) and "
        "the frontend reads that as an empty list"
    ),
    ("GET", "/api/userdata", (("dir", "subgraphs"),)): (
        "a new user has no subgraphs folder yet; same 404 as for workflows (§1.7)"
    ),
    ("GET", "/templates/index_logo.json", ()): (
        "frontend 1.58 asks for the templates' logo index, which comfyui-workflow-templates "
        "0.1.30 does not contain; ComfyUI serves the same package folder and 404s too"
    ),
}

# The page's own API client: LiteGraph's registry, the app and its settings store.
BOOTED_JS = """() => Boolean(
    window.app && window.app.graph && window.app.extensionManager?.setting
    && window.LiteGraph && Object.keys(window.LiteGraph.registered_node_types).length > 0
    && !document.getElementById('splash-loader'))"""
OUR_NODES = ["KSampler", "EmptyImage", "ImageInvert", "SaveImage"]
EMPTY_COLOR = 0x3366CC
SAVE_PREFIX = "e2e_frontend"
SETTING_ID = "Comfy.Graph.ZoomSpeed"
SETTING_VALUE = 1.35


@dataclass
class PageWatch:
    """Console errors and failed requests to our server, since the last mark()."""

    origin: str
    errors: list[str] = field(default_factory=list)
    reloading: bool = False
    _answered: set[int] = field(default_factory=set, repr=False)
    _start: int = 0

    def attach(self, context: Any) -> None:
        context.on("console", self._console)
        context.on("response", self._response)
        context.on("requestfailed", self._failed)
        context.on("weberror", lambda error: self.errors.append(f"page error: {error.error}"))

    def ours(self, url: str) -> bool:
        return url.startswith(self.origin + "/")

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        url = message.location.get("url", "") if message.location else ""
        if message.text.startswith("Failed to load resource"):
            # The response or request handler below judges the request itself; a resource
            # outside our server (the netns has no internet) is not our API's doing.
            return
        self.errors.append(f"console error: {message.text[:600]} (at {url})")

    def _response(self, response: Any) -> None:
        self._answered.add(id(response.request))
        if response.status < 400 or not self.ours(response.url):
            return
        why = allowed_not_found(response.request.method, response.url, response.status)
        if why is None:
            self.errors.append(f"{response.status} for {response.request.method} {response.url}")

    def _failed(self, request: Any) -> None:
        if not self.ours(request.url):
            return
        failure = request.failure or ""
        # Aborted after the answer came (the frontend drops bodies it does not read), or cut
        # off by our own reload: neither is a failure of the server.
        if id(request) in self._answered or (self.reloading and "ERR_ABORTED" in failure):
            return
        self.errors.append(f"request failed: {request.method} {request.url}: {failure}")

    def mark(self) -> None:
        self._start = len(self.errors)

    def since_mark(self) -> list[str]:
        return self.errors[self._start :]


def allowed_not_found(method: str, url: str, status: int) -> str | None:
    if status != 404:
        return None
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    for (allowed_method, path, items), why in ALLOWED_NOT_FOUND.items():
        if method == allowed_method and parts.path == path:
            if all(query.get(name) == value for name, value in items):
                return why
    return None


def wait_booted(page: Any) -> None:
    page.wait_for_function(BOOTED_JS, timeout=BOOT_TIMEOUT_MS)


def close_dialogs(page: Any) -> None:
    """A new user is greeted by the templates browser; it would cover the canvas."""
    for _ in range(3):
        dialog = page.locator("[role=dialog]")
        if dialog.count() == 0:
            return
        page.keyboard.press("Escape")
        page.wait_for_timeout(300)


@pytest.fixture(scope="module")
def watch(e2e_server: ServerProcess, browser_context: Any) -> PageWatch:
    watch = PageWatch(origin=e2e_server.url)
    watch.attach(browser_context)
    return watch


@pytest.fixture(scope="module")
def page(e2e_server: ServerProcess, browser_context: Any, watch: PageWatch) -> Iterator[Any]:
    page = browser_context.pages[0] if browser_context.pages else browser_context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    started = time.monotonic()
    page.goto(f"{e2e_server.url}/", timeout=BOOT_TIMEOUT_MS)
    wait_booted(page)
    logger.info("frontend booted in %.1fs", time.monotonic() - started)
    yield page


@pytest.fixture
def step(watch: PageWatch) -> Iterator[PageWatch]:
    """Fails the test on console errors or failed requests that happened during it."""
    watch.mark()
    yield watch
    # Late answers (a settings write, a status poll) belong to the step that caused them.
    time.sleep(0.5)
    problems = watch.since_mark()
    assert problems == [], "\n".join(problems)


def test_app_boots_without_errors(page: Any, watch: PageWatch) -> None:
    # Everything since the first request counts here, not only since this test started.
    assert page.title().endswith("ComfyUI")
    assert page.locator("canvas#graph-canvas").is_visible()
    page.wait_for_timeout(2000)
    assert watch.errors == [], "\n".join(watch.errors)


def test_node_library_lists_our_nodes(page: Any, step: PageWatch) -> None:
    registered = page.evaluate(
        "names => names.filter(name => name in window.LiteGraph.registered_node_types)",
        OUR_NODES,
    )
    assert registered == OUR_NODES
    close_dialogs(page)
    page.locator("[data-testid=node-library-tab-button]").click()
    search = page.get_by_placeholder("Search", exact=False).first
    search.fill("Invert Image")
    # The display name comes from our object_info, so this is our node, not a built-in label.
    page.get_by_text("Invert Image Colors", exact=True).first.wait_for(state="visible")
    search.fill("")
    page.locator("[data-testid=node-library-tab-button]").click()


BUILD_GRAPH_JS = """([color, prefix]) => {
    const graph = window.app.graph;
    graph.clear();
    const make = (type, x) => {
        const node = window.LiteGraph.createNode(type);
        node.pos = [x, 120];
        graph.add(node);
        return node;
    };
    const setWidget = (node, name, value) => {
        const widget = node.widgets.find(w => w.name === name);
        if (!widget) throw new Error(`${node.type} has no widget ${name}`);
        widget.value = value;
    };
    const empty = make('EmptyImage', 60);
    const invert = make('ImageInvert', 420);
    const save = make('SaveImage', 720);
    setWidget(empty, 'width', 64);
    setWidget(empty, 'height', 48);
    setWidget(empty, 'color', color);
    setWidget(save, 'filename_prefix', prefix);
    empty.connect(0, invert, 0);
    invert.connect(0, save, 0);
    window.app.canvas.setDirty(true, true);
    return save.id;
}"""

SHOWN_IMAGE_JS = """saveId => {
    const node = window.app.graph.getNodeById(saveId);
    const shown = (node?.imgs ?? []).concat(Array.from(document.querySelectorAll('img')));
    const img = shown.find(i => i.src.includes('/view?') && i.complete && i.naturalWidth > 0);
    return img ? img.src : null;
}"""


def test_workflow_runs_from_the_page(
    page: Any, step: PageWatch, e2e_server: ServerProcess, screenshot_path: Path
) -> None:
    from PIL import Image

    close_dialogs(page)
    save_id = page.evaluate(BUILD_GRAPH_JS, [EMPTY_COLOR, SAVE_PREFIX])
    with page.expect_response(
        lambda r: urlsplit(r.url).path in ("/api/prompt", "/prompt") and r.request.method == "POST"
    ) as queued:
        page.locator("[data-testid=queue-button]").click()
    assert queued.value.status == 200, queued.value.text()
    prompt_id = queued.value.json()["prompt_id"]

    src = page.wait_for_function(SHOWN_IMAGE_JS, arg=save_id, timeout=RUN_TIMEOUT_MS).json_value()
    query = parse_qs(urlsplit(src).query)
    assert query["type"] == ["output"]
    assert query["filename"][0].startswith(SAVE_PREFIX)

    history = httpx.get(f"{e2e_server.url}/history/{prompt_id}", timeout=10).json()
    saved = history[prompt_id]["outputs"][str(save_id)]["images"][0]
    assert saved["filename"] == query["filename"][0]
    image = httpx.get(
        f"{e2e_server.url}/view",
        params={"filename": saved["filename"], "type": "output", "subfolder": saved["subfolder"]},
        timeout=10,
    )
    assert image.status_code == 200
    pixels = Image.open(io.BytesIO(image.content)).convert("RGB")
    assert pixels.size == (64, 48)
    inverted = [255 - ((EMPTY_COLOR >> shift) & 0xFF) for shift in (16, 8, 0)]
    # Off by one at most: float32 pixels are truncated to bytes on save, as ComfyUI does.
    pixel = pixels.getpixel((10, 10))
    assert all(abs(got - want) <= 1 for got, want in zip(pixel, inverted, strict=True)), pixel

    page.screenshot(path=str(screenshot_path))
    assert Image.open(screenshot_path).size == (1440, 900)
    publish_screenshot(screenshot_path)


def test_setting_persists_across_reload(
    page: Any, step: PageWatch, e2e_server: ServerProcess
) -> None:
    before = page.evaluate(f"() => window.app.extensionManager.setting.get('{SETTING_ID}')")
    assert before != SETTING_VALUE
    page.evaluate(
        "([id, value]) => window.app.extensionManager.setting.set(id, value)",
        [SETTING_ID, SETTING_VALUE],
    )
    stored = httpx.get(f"{e2e_server.url}/settings", timeout=10).json()
    assert stored.get(SETTING_ID) == SETTING_VALUE

    step.reloading = True
    try:
        page.reload(timeout=BOOT_TIMEOUT_MS)
        wait_booted(page)
    finally:
        step.reloading = False
    after = page.evaluate(f"() => window.app.extensionManager.setting.get('{SETTING_ID}')")
    assert after == SETTING_VALUE
    one = httpx.get(f"{e2e_server.url}/settings/{SETTING_ID}", timeout=10)
    assert one.json() == SETTING_VALUE
