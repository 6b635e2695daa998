"""The web frontend's static files: caching headers, path confinement, API routes untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import WebSocket
from fastapi.testclient import TestClient
from starlette.routing import Match

from serve_app.edge import EdgeServices, local_edge_config
from serve_app.http import frontend
from serve_app.http.app import build_app
from serve_app.http.frontend import StaticRoute, cache_control
from serve_app.http.memory_backend import InMemoryBackend

INDEX = "<!doctype html><title>fake frontend</title>"
HASHED_JS = "assets/index-AbCd_f12.js"
SECRET = "top secret outside the web root"
IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.fixture
def web_root(tmp_path: Path) -> Path:
    root = tmp_path / "web"
    files = {
        "index.html": INDEX,
        HASHED_JS: "export const app = 1;",
        "assets/index-AbCd_f12.js.map": "{}",
        "assets/favicon.ico": "ico",
        "assets/images/comfy-icon-192.png": "png",
        "scripts/app.js": "export {};",
        "style.css": "body{}",
        "fonts/inter.woff2": "font",
        "extensions/core/widget.js": "// belongs to the extensions routes",
        "api/trap.json": '{"served": "from the web root"}',
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "secret.txt").write_text(SECRET)
    (root / "escape.txt").symlink_to(tmp_path / "secret.txt")
    return root


def make_client(tmp_path: Path, front_end_root: str) -> TestClient:
    config = local_edge_config(tmp_path / "base", front_end_root=front_end_root)
    app = build_app(InMemoryBackend(), EdgeServices.open(config))

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    # As serve_app/ingress.py does: the WebSocket route comes after build_app.
    app.add_api_websocket_route("/ws", echo)
    return TestClient(app)


@pytest.fixture
def client(tmp_path: Path, web_root: Path) -> TestClient:
    return make_client(tmp_path, str(web_root))


@pytest.mark.parametrize("path", ["/", "/index.html"])
def test_index_is_never_cached(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.text == INDEX
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store, must-revalidate"
    assert response.headers["pragma"] == "no-cache"
    assert response.headers["expires"] == "0"


def test_head_of_index_has_headers_and_no_body(client: TestClient) -> None:
    response = client.head("/")
    assert response.status_code == 200
    assert response.content == b""
    assert int(response.headers["content-length"]) == len(INDEX)
    assert response.headers["cache-control"] == "no-store, must-revalidate"


@pytest.mark.parametrize(
    ("path", "expected", "content_type"),
    [
        (f"/{HASHED_JS}", IMMUTABLE, "text/javascript"),
        ("/assets/index-AbCd_f12.js.map", IMMUTABLE, "application/json"),
        # Copied into assets/ without a hash: images get ComfyUI's day-long max-age.
        ("/assets/favicon.ico", "public, max-age=86400", "image/x-icon"),
        ("/assets/images/comfy-icon-192.png", "public, max-age=86400", "image/png"),
        ("/scripts/app.js", "no-store", "text/javascript"),
        ("/style.css", "no-store", "text/css"),
        ("/fonts/inter.woff2", "no-cache", "font/woff2"),
    ],
)
def test_static_file_cache_policy(
    client: TestClient, path: str, expected: str, content_type: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["cache-control"] == expected
    assert response.headers["content-type"].startswith(content_type)


@pytest.mark.parametrize(
    ("key", "hashed_dir", "expected"),
    [
        ("index.html", "assets", "no-store, must-revalidate"),
        ("assets/BillingTab-BQ4KtpF-.js", "assets", IMMUTABLE),
        ("assets/primeicons-C6QP2o4f.woff2", "assets", IMMUTABLE),
        ("assets/plain.js", "assets", "no-store"),
        ("other/index-AbCd_f12.js", "assets", "no-store"),
        ("assets/index-AbCd_f12.js", None, "no-store"),
        ("index.json", None, "no-store"),
        ("index.en.json", None, "no-store"),
        ("flux_dev.json", None, "no-cache"),
        ("flux_dev-1.webp", None, "public, max-age=86400"),
    ],
)
def test_cache_control_rules(key: str, hashed_dir: str | None, expected: str) -> None:
    assert cache_control(key, hashed_dir)["Cache-Control"] == expected


def test_conditional_get_and_range(client: TestClient) -> None:
    first = client.get(f"/{HASHED_JS}")
    again = client.get(f"/{HASHED_JS}", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    since = client.get(
        f"/{HASHED_JS}", headers={"If-Modified-Since": first.headers["last-modified"]}
    )
    assert since.status_code == 304
    stale = client.get(f"/{HASHED_JS}", headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200 and stale.text == first.text
    part = client.get(f"/{HASHED_JS}", headers={"Range": "bytes=0-5"})
    assert part.status_code == 206
    assert part.content == first.content[:6]


@pytest.mark.parametrize(
    "path",
    [
        "/%2e%2e/secret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/%2Fetc/passwd",
        "/%252e%252e/secret.txt",
        "/assets%5c..%5c..%5csecret.txt",
        "/a%00b",
        "/escape.txt",
        "/missing.js",
        "/assets",
        "/assets/",
    ],
)
def test_paths_stay_inside_the_web_root(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code in (400, 403, 404), response.status_code
    assert SECRET not in response.text
    assert "root:" not in response.text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/prompt", 200),
        ("GET", "/api/prompt", 200),
        ("GET", "/system_stats", 200),
        ("GET", "/api/jobs", 200),
        # POST-only routes keep their 405 rather than becoming a missing static file.
        ("GET", "/interrupt", 405),
        ("GET", "/api/interrupt", 405),
        ("POST", "/", 404),
        ("DELETE", "/index.html", 404),
    ],
)
def test_api_routes_are_not_shadowed(
    client: TestClient, method: str, path: str, status: int
) -> None:
    response = client.request(method, path)
    assert response.status_code == status
    assert INDEX not in response.text
    if status == 200:
        assert response.headers["content-type"].startswith("application/json")


def test_trailing_slash_still_redirects_to_api_routes(client: TestClient) -> None:
    response = client.get("/prompt/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"].endswith("/prompt")


@pytest.mark.parametrize("path", ["/api/trap.json", "/api/nothing", "/internal/x", "/ws"])
def test_reserved_prefixes_never_come_from_the_web_root(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "from the web root" not in response.text


def frontend_route(client: TestClient) -> StaticRoute:
    routes = [route for route in client.app.router.routes if isinstance(route, StaticRoute)]
    return next(route for route in routes if route.name == "frontend")


@pytest.mark.parametrize(
    ("path", "served"),
    [
        ("/extensions/core/widget.js", False),  # the extensions routes own this prefix
        ("/extensions", False),
        ("/api/trap.json", False),
        ("/internal/logs", False),
        ("/ws", False),
        ("/templates/index.json", False),
        ("/scripts/app.js", True),
        ("/", True),
    ],
)
def test_frontend_route_claims_only_its_own_paths(
    client: TestClient, path: str, served: bool
) -> None:
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "query_string": b""}
    match, _ = frontend_route(client).matches(scope)
    assert (match is Match.FULL) is served
    websocket = {**scope, "type": "websocket"}
    assert frontend_route(client).matches(websocket)[0] is Match.NONE


def test_websocket_route_added_later_still_connects(client: TestClient) -> None:
    with client.websocket_connect("/ws") as websocket:
        assert websocket.receive_text() == "hello"


def test_templates_are_served_from_the_package_when_installed(client: TestClient) -> None:
    root = frontend.templates_root()
    if root is None:
        pytest.skip("comfyui-workflow-templates is not installed")
    response = client.get("/templates/index.json")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert isinstance(response.json(), list) and response.json()
    assert client.get("/templates/%2e%2e/__init__.py").status_code in (403, 404)
    assert client.get("/templates/no-such-template.json").status_code == 404


def test_templates_answer_404_without_the_package(
    tmp_path: Path, web_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (web_root / "templates").mkdir()
    (web_root / "templates" / "index.json").write_text("[]")
    monkeypatch.setattr(frontend, "templates_root", lambda: None)
    client = make_client(tmp_path, str(web_root))
    assert client.get("/templates/index.json").status_code == 404


def test_missing_web_root_leaves_the_api_alone(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    client = make_client(tmp_path, str(empty))
    assert client.get("/").status_code == 404
    assert client.get("/prompt").status_code == 200


def test_installed_frontend_package_is_the_default(tmp_path: Path) -> None:
    if frontend.frontend_root("") is None:
        pytest.skip("comfyui-frontend-package is not installed")
    client = make_client(tmp_path, "")
    index = client.get("/")
    assert index.status_code == 200
    assert "<title>ComfyUI</title>" in index.text
    # The entry script the page names is served, as JavaScript, cached for good.
    entry = index.text.split('type="module" crossorigin src="./', 1)[1].split('"', 1)[0]
    script = client.get(f"/{entry}")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["cache-control"] == IMMUTABLE
