"""/upload/image, /upload/mask, /view and /view_metadata through the whole app, on the file
and the S3 store (comfyui-behaviour.md §1.4, §1.5)."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image, PngImagePlugin

from serve_app.edge import EdgeServices
from serve_app.http.app import build_app
from serve_app.http.memory_backend import InMemoryBackend
from storage.areas import AREAS
from tests.integration.conftest import make_edge_config

pytestmark = pytest.mark.integration

BOUNDARY = "comfyrayTestBoundary"


def png_bytes(
    color: tuple[int, ...] = (10, 20, 30, 255),
    size: tuple[int, int] = (8, 6),
    mode: str = "RGBA",
    **text: str,
) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def form_body(*parts: tuple[str, str | None, bytes | str]) -> tuple[bytes, dict[str, str]]:
    """A multipart body built by hand, so names can hold any byte (NUL, backslash)."""
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += (data.encode() if isinstance(data, str) else data) + b"\r\n"
    out += f"--{BOUNDARY}--\r\n".encode()
    return out, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def upload(
    client: TestClient,
    data: bytes,
    filename: str = "a.png",
    path: str = "/upload/image",
    **fields: str,
) -> httpx.Response:
    parts: list[tuple[str, str | None, bytes | str]] = [("image", filename, data)]
    parts += [(name, None, value) for name, value in fields.items()]
    body, headers = form_body(*parts)
    return client.post(path, content=body, headers=headers)


def stored(edge: EdgeServices, area: str) -> dict[str, bytes]:
    store = edge.areas.area(area)
    return {info.key: store.read_bytes(info.key) for info in store.list()}


def error_of(response: httpx.Response) -> str:
    message = response.json()["error"]
    assert isinstance(message, str) and message
    return message


# --- /upload/image ---------------------------------------------------------------------------


@pytest.mark.parametrize("area", ["input", "temp", "output"])
def test_upload_to_each_type(edge_client: TestClient, edge: EdgeServices, area: str) -> None:
    data = png_bytes()
    response = upload(edge_client, data, "pic.png", type=area, subfolder="sub/dir")
    assert response.status_code == 200, response.text
    assert response.json() == {"name": "pic.png", "subfolder": "sub/dir", "type": area}
    assert stored(edge, area) == {"sub/dir/pic.png": data}
    assert all(stored(edge, other) == {} for other in AREAS if other != area)


def test_upload_defaults_to_input_and_is_served_under_api(
    edge_client: TestClient, edge: EdgeServices
) -> None:
    response = upload(edge_client, b"x", "plain.png", path="/api/upload/image")
    assert response.json() == {"name": "plain.png", "subfolder": "", "type": "input"}
    assert stored(edge, "input") == {"plain.png": b"x"}


def test_upload_with_a_client_library_multipart(
    edge_client: TestClient, edge: EdgeServices
) -> None:
    response = edge_client.post(
        "/upload/image",
        files={"image": ("lib.png", b"library bytes", "image/png")},
        data={"subfolder": "s", "type": "temp"},
    )
    assert response.json() == {"name": "lib.png", "subfolder": "s", "type": "temp"}
    assert stored(edge, "temp") == {"s/lib.png": b"library bytes"}


def test_same_bytes_keep_the_name_other_bytes_are_numbered(
    edge_client: TestClient, edge: EdgeServices
) -> None:
    names = [
        upload(edge_client, content, "a.png").json()["name"]
        for content in (b"one", b"one", b"two", b"three", b"two")
    ]
    assert names == ["a.png", "a.png", "a (1).png", "a (2).png", "a (1).png"]
    assert stored(edge, "input") == {"a.png": b"one", "a (1).png": b"two", "a (2).png": b"three"}


@pytest.mark.parametrize(("flag", "replaces"), [("true", True), ("1", True), ("True", False)])
def test_overwrite(edge_client: TestClient, edge: EdgeServices, flag: str, replaces: bool) -> None:
    upload(edge_client, b"old", "a.png")
    name = upload(edge_client, b"new", "a.png", overwrite=flag).json()["name"]
    if replaces:
        assert (name, stored(edge, "input")) == ("a.png", {"a.png": b"new"})
    else:
        assert (name, stored(edge, "input")) == (
            "a (1).png",
            {"a.png": b"old", "a (1).png": b"new"},
        )


def test_a_large_upload_streams_through(edge_client: TestClient, edge: EdgeServices) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # past the spool's memory size
    assert upload(edge_client, data, "big.bin").json()["name"] == "big.bin"
    assert upload(edge_client, data, "big.bin").json()["name"] == "big.bin"
    assert stored(edge, "input") == {"big.bin": data}


@pytest.mark.parametrize(
    ("parts", "words"),
    [
        ([("type", None, "input")], "'image'"),
        ([("image", None, "not a file")], "file part"),
        ([("image", "", b"data")], "empty filename"),
        ([("image", "a.png", b"")], "empty"),
        ([("image", "a.png", b"x"), ("type", None, "user")], "type"),
        ([("image", "a.png", b"x"), ("type", None, "models")], "type"),
    ],
)
def test_upload_refusals_name_the_field(
    edge_client: TestClient, edge: EdgeServices, parts: list[Any], words: str
) -> None:
    body, headers = form_body(*parts)
    response = edge_client.post("/upload/image", content=body, headers=headers)
    assert response.status_code == 400
    assert words in error_of(response)
    assert all(stored(edge, area) == {} for area in AREAS)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"image": "x"}', "application/json"),
        (b"--x\r\nbroken", f"multipart/form-data; boundary={BOUNDARY}"),
        (b"", "multipart/form-data"),
    ],
)
def test_malformed_upload_bodies_are_400(
    edge_client: TestClient, body: bytes, content_type: str
) -> None:
    response = edge_client.post(
        "/upload/image", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 400
    error_of(response)


@pytest.fixture
def small_limit_client(
    store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[TestClient, EdgeServices]]:
    config = make_edge_config(store_kind, tmp_path / "small", request, max_upload_bytes=4096)
    edge = EdgeServices.open(config)
    with TestClient(build_app(InMemoryBackend(), edge)) as client:
        yield client, edge


@pytest.mark.parametrize("path", ["/upload/image", "/upload/mask"])
def test_over_the_limit_by_content_length_is_413(
    small_limit_client: tuple[TestClient, EdgeServices], path: str
) -> None:
    client, edge = small_limit_client
    response = upload(client, b"x" * 5000, "big.png", path=path, original_ref='{"filename": "a"}')
    assert response.status_code == 413
    assert "4096" in error_of(response)
    assert all(stored(edge, area) == {} for area in AREAS)


def test_over_the_limit_while_streaming_is_413(
    small_limit_client: tuple[TestClient, EdgeServices],
) -> None:
    client, edge = small_limit_client
    body, headers = form_body(("image", "big.png", b"y" * 5000))
    # A generator body goes out chunked: no Content-Length to refuse it early.
    response = client.post(
        "/upload/image",
        content=(body[i : i + 1000] for i in range(0, len(body), 1000)),
        headers=headers,
    )
    assert response.status_code == 413
    assert all(stored(edge, area) == {} for area in AREAS)
    # Under the limit the same way is fine.
    body, headers = form_body(("image", "ok.png", b"y" * 1000))
    response = client.post("/upload/image", content=iter([body]), headers=headers)
    assert response.json()["name"] == "ok.png"


# --- /upload/mask ----------------------------------------------------------------------------


def mask_bytes(size: tuple[int, int] = (8, 6), alpha: int = 200) -> bytes:
    mask = Image.new("RGBA", size, (255, 255, 255, 0))
    mask.putpixel((size[0] // 4, size[1] // 2), (0, 0, 0, alpha))
    out = io.BytesIO()
    mask.save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    "ref",
    [
        {"filename": "orig.png [input]", "subfolder": "s"},
        {"filename": "orig.png", "subfolder": "s", "type": "input"},
    ],
)
def test_mask_is_merged_into_the_original(
    edge_client: TestClient, edge: EdgeServices, ref: dict[str, str]
) -> None:
    original = png_bytes((90, 80, 70, 255), workflow='{"nodes": []}', prompt='{"1": {}}')
    upload(edge_client, original, "orig.png", subfolder="s")
    response = upload(
        edge_client, mask_bytes(), "clipspace-mask.png", path="/upload/mask",
        original_ref=json.dumps(ref), subfolder="clipspace",
    )  # fmt: skip
    assert response.json() == {
        "name": "clipspace-mask.png",
        "subfolder": "clipspace",
        "type": "input",
    }
    merged = decode(edge.areas.input.read_bytes("clipspace/clipspace-mask.png"))
    assert (merged.format, merged.mode, merged.size) == ("PNG", "RGBA", (8, 6))
    assert merged.getpixel((2, 3)) == (90, 80, 70, 200)
    assert merged.getpixel((0, 0)) == (90, 80, 70, 0)
    assert merged.text == {"workflow": '{"nodes": []}', "prompt": '{"1": {}}'}


def test_mask_original_defaults_to_output(edge_client: TestClient, edge: EdgeServices) -> None:
    upload(edge_client, png_bytes((1, 2, 3, 255)), "o.png", type="output")
    response = upload(
        edge_client,
        mask_bytes(),
        "m.png",
        path="/upload/mask",
        original_ref='{"filename": "o.png"}',
    )
    assert response.status_code == 200
    assert decode(edge.areas.input.read_bytes("m.png")).getpixel((2, 3)) == (1, 2, 3, 200)


def test_mask_names_collide_like_uploads(edge_client: TestClient, edge: EdgeServices) -> None:
    upload(edge_client, png_bytes(), "o.png")
    ref = '{"filename": "o.png", "type": "input"}'
    first = upload(edge_client, mask_bytes(), "m.png", path="/upload/mask", original_ref=ref)
    second = upload(
        edge_client, mask_bytes(alpha=9), "m.png", path="/upload/mask", original_ref=ref
    )
    assert (first.json()["name"], second.json()["name"]) == ("m.png", "m (1).png")
    assert decode(edge.areas.input.read_bytes("m (1).png")).getpixel((2, 3))[3] == 9


@pytest.mark.parametrize(
    "ref",
    [
        {"filename": "missing.png", "type": "input"},
        {"filename": "o.png", "type": "models"},
        {"filename": "o.png [temp]"},
    ],
)
def test_mask_without_a_usable_original_writes_nothing(
    edge_client: TestClient, edge: EdgeServices, ref: dict[str, str]
) -> None:
    upload(edge_client, png_bytes(), "o.png")
    response = upload(
        edge_client, mask_bytes(), "m.png", path="/upload/mask", original_ref=json.dumps(ref)
    )
    # ComfyUI's quirk (§1.4): 200 with the computed name, and no file.
    assert response.json() == {"name": "m.png", "subfolder": "", "type": "input"}
    assert set(stored(edge, "input")) == {"o.png"}


@pytest.mark.parametrize(
    ("original_ref", "mask", "words"),
    [
        (None, mask_bytes(), "original_ref"),
        ("{not json", mask_bytes(), "original_ref"),
        ('{"subfolder": ""}', mask_bytes(), "filename"),
        ('{"filename": "o.png", "type": "input"}', png_bytes(mode="RGB", color=(1, 1, 1)), "alpha"),
        ('{"filename": "o.png", "type": "input"}', mask_bytes(size=(3, 3)), "3x3"),
        ('{"filename": "o.png", "type": "input"}', b"not an image", "mask"),
    ],
)
def test_mask_refusals(
    edge_client: TestClient, edge: EdgeServices, original_ref: str | None, mask: bytes, words: str
) -> None:
    upload(edge_client, png_bytes(), "o.png")
    fields = {} if original_ref is None else {"original_ref": original_ref}
    response = upload(edge_client, mask, "m.png", path="/upload/mask", **fields)
    assert response.status_code == 400
    assert words in error_of(response)
    assert set(stored(edge, "input")) == {"o.png"}


# --- /view -----------------------------------------------------------------------------------


def put(edge: EdgeServices, area: str, key: str, data: bytes) -> None:
    edge.areas.area(area).write_bytes(key, data)


def test_view_streams_the_original(edge_client: TestClient, edge: EdgeServices) -> None:
    data = png_bytes()
    put(edge, "output", "s/ComfyUI_00001_.png", data)
    response = edge_client.get("/view", params={"filename": "ComfyUI_00001_.png", "subfolder": "s"})
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-length"] == str(len(data))
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-disposition"] == 'filename="ComfyUI_00001_.png"'
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["etag"]
    again = edge_client.get(
        "/api/view",
        params={"filename": "ComfyUI_00001_.png", "subfolder": "s"},
        headers={"If-None-Match": response.headers["etag"]},
    )
    assert again.status_code == 304 and again.content == b""


def test_view_type_and_suffix(edge_client: TestClient, edge: EdgeServices) -> None:
    for area in ("input", "output", "temp"):
        put(edge, area, "same.png", area.encode())
    assert edge_client.get("/view", params={"filename": "same.png"}).content == b"output"
    assert (
        edge_client.get("/view", params={"filename": "same.png", "type": "temp"}).content == b"temp"
    )
    suffixed = {"filename": "same.png [input]", "type": "temp"}
    assert edge_client.get("/view", params=suffixed).content == b"input"


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({}, 404, "filename"),
        ({"type": "input"}, 404, "filename"),
        ({"filename": "blake3:" + "ab" * 32}, 404, "asset"),
        ({"filename": "nope.png"}, 404, "nope.png"),
        ({"filename": "nope.png", "subfolder": "x"}, 404, "nope.png"),
        ({"filename": ""}, 400, "filename"),
        ({"filename": "/x.png"}, 400, "filename"),
        ({"filename": "a..png"}, 400, "filename"),
        ({"filename": "x.png", "type": "user"}, 400, "type"),
        ({"filename": "x.png", "subfolder": "../input"}, 403, "subfolder"),
        ({"filename": "x.png", "preview": "webp;50"}, 404, "x.png"),
    ],
)
def test_view_refusals(
    edge_client: TestClient, edge: EdgeServices, params: dict[str, str], status: int, words: str
) -> None:
    put(edge, "input", "x.png", png_bytes())
    response = edge_client.get("/view", params=params)
    assert response.status_code == status
    assert words in error_of(response)


def test_view_a_folder_is_not_a_file(edge_client: TestClient, edge: EdgeServices) -> None:
    put(edge, "output", "dir/inner.png", b"x")
    assert edge_client.get("/view", params={"filename": "dir"}).status_code == 404


@pytest.mark.parametrize(
    ("preview", "channel", "media", "mode"),
    [
        ("webp;50", None, "image/webp", "RGBA"),
        ("webp", "rgb", "image/webp", "RGB"),
        ("jpeg;80", None, "image/jpeg", "RGB"),
        ("jpeg;80", "a", "image/webp", "RGBA"),
        ("gif", None, "image/webp", "RGBA"),
    ],
)
def test_view_preview(
    edge_client: TestClient,
    edge: EdgeServices,
    preview: str,
    channel: str | None,
    media: str,
    mode: str,
) -> None:
    put(edge, "temp", "p.png", png_bytes((200, 100, 0, 128), size=(32, 16)))
    params = {"filename": "p.png", "type": "temp", "preview": preview}
    if channel:
        params["channel"] = channel
    response = edge_client.get("/view", params=params)
    assert response.status_code == 200
    assert response.headers["content-type"] == media
    assert response.headers["content-disposition"] == 'filename="p.png"'
    image = decode(response.content)
    assert (image.format, image.mode, image.size) == (media.split("/")[1].upper(), mode, (32, 16))


def test_view_channels(edge_client: TestClient, edge: EdgeServices) -> None:
    put(edge, "output", "c.png", png_bytes((200, 100, 50, 77)))
    rgb = edge_client.get("/view", params={"filename": "c.png", "channel": "rgb"})
    assert rgb.headers["content-type"] == "image/png"
    assert decode(rgb.content).mode == "RGB"
    assert decode(rgb.content).getpixel((0, 0)) == (200, 100, 50)
    alpha = edge_client.get("/view", params={"filename": "c.png", "channel": "a"})
    assert alpha.headers["content-type"] == "image/png"
    assert alpha.headers["content-disposition"] == 'filename="c.png"'
    assert decode(alpha.content).getpixel((0, 0)) == (0, 0, 0, 77)
    rgba = edge_client.get("/view", params={"filename": "c.png", "channel": "rgba"})
    assert rgba.content == edge.areas.output.read_bytes("c.png")


def test_view_conversion_of_a_non_image_is_400(edge_client: TestClient, edge: EdgeServices) -> None:
    put(edge, "output", "notes.txt", b"hello")
    response = edge_client.get("/view", params={"filename": "notes.txt", "preview": "webp"})
    assert response.status_code == 400
    assert "notes.txt" in error_of(response)
    plain = edge_client.get("/view", params={"filename": "notes.txt"})
    assert plain.content == b"hello"
    assert plain.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    ("name", "dest", "media", "disposition"),
    [
        ("page.html", None, "application/octet-stream", 'attachment; filename="page.html"'),
        ("code.js", "script", "application/octet-stream", 'attachment; filename="code.js"'),
        ("pic.svg", "document", "application/octet-stream", 'attachment; filename="pic.svg"'),
        ("pic.svg", "image", "image/svg+xml", 'filename="pic.svg"'),
    ],
)
def test_view_dangerous_types(
    edge_client: TestClient,
    edge: EdgeServices,
    name: str,
    dest: str | None,
    media: str,
    disposition: str,
) -> None:
    put(edge, "output", name, b"<svg onload=alert(1)>")
    headers = {"Sec-Fetch-Dest": dest} if dest else {}
    response = edge_client.get("/view", params={"filename": name}, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == media
    assert response.headers["content-disposition"] == disposition
    assert response.headers["vary"] == "Sec-Fetch-Dest"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"


DATA = bytes(range(256)) * 40  # 10240 bytes


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=0-99", 0, 100), ("bytes=10000-", 10000, 10240), ("bytes=-40", 10200, 10240),
     ("bytes=5000-99999", 5000, 10240)],
)  # fmt: skip
def test_view_ranges(
    edge_client: TestClient, edge: EdgeServices, header: str, start: int, end: int
) -> None:
    put(edge, "output", "r.bin", DATA)
    response = edge_client.get("/view", params={"filename": "r.bin"}, headers={"Range": header})
    assert response.status_code == 206
    assert response.content == DATA[start:end]
    assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{len(DATA)}"
    assert response.headers["content-length"] == str(end - start)
    assert response.headers["content-type"] == "application/octet-stream"


@pytest.mark.parametrize("header", ["bytes=10240-", "bytes=99999-100000", "bytes=-0"])
def test_view_unsatisfiable_range_is_416(
    edge_client: TestClient, edge: EdgeServices, header: str
) -> None:
    put(edge, "output", "r.bin", DATA)
    response = edge_client.get("/view", params={"filename": "r.bin"}, headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(DATA)}"


def test_view_ignores_ranges_it_does_not_serve(edge_client: TestClient, edge: EdgeServices) -> None:
    put(edge, "output", "r.bin", DATA)
    for header in ("bytes=0-1,5-6", "lines=1-2", "bytes=9-3"):
        response = edge_client.get("/view", params={"filename": "r.bin"}, headers={"Range": header})
        assert (response.status_code, response.content) == (200, DATA)
    stale = edge_client.get(
        "/view", params={"filename": "r.bin"}, headers={"Range": "bytes=0-9", "If-Range": '"old"'}
    )
    assert (stale.status_code, stale.content) == (200, DATA)


def test_view_range_of_a_large_file(edge_client: TestClient, edge: EdgeServices) -> None:
    data = os.urandom(3 * 1024 * 1024)
    put(edge, "output", "big.bin", data)
    whole = edge_client.get("/view", params={"filename": "big.bin"})
    assert whole.content == data
    middle = edge_client.get(
        "/view", params={"filename": "big.bin"}, headers={"Range": "bytes=1048000-2097999"}
    )
    assert middle.status_code == 206
    assert middle.content == data[1048000:2098000]


def test_view_head_has_the_get_headers_and_no_body(
    edge_client: TestClient, edge: EdgeServices
) -> None:
    put(edge, "output", "r.bin", DATA)
    params = {"filename": "r.bin"}
    got = edge_client.get("/view", params=params, headers={"Range": "bytes=-10"})
    head = edge_client.head("/api/view", params=params, headers={"Range": "bytes=-10"})
    assert (head.status_code, head.content) == (206, b"")
    for name in ("content-length", "content-range", "content-type", "etag", "content-disposition"):
        assert head.headers[name] == got.headers[name]
    assert edge_client.head("/view", params={"filename": "nope.bin"}).status_code == 404


# --- /view_metadata --------------------------------------------------------------------------


def test_view_metadata(edge_client: TestClient) -> None:
    backend: InMemoryBackend = edge_client.app.state.backend  # type: ignore[attr-defined]
    backend.model_metadata[("loras", "style.safetensors")] = {"ss_network_dim": "16"}
    response = edge_client.get("/view_metadata/loras", params={"filename": "style.safetensors"})
    assert (response.status_code, response.json()) == (200, {"ss_network_dim": "16"})
    api = edge_client.get("/api/view_metadata/loras", params={"filename": "style.safetensors"})
    assert api.json() == {"ss_network_dim": "16"}
    for params in ({}, {"filename": ""}, {"filename": "other.safetensors"}):
        missing = edge_client.get("/view_metadata/loras", params=params)
        assert missing.status_code == 404
        error_of(missing)
    assert (
        edge_client.get("/view_metadata/vae", params={"filename": "style.safetensors"}).status_code
        == 404
    )


# --- confinement -----------------------------------------------------------------------------

SENTINEL = "TOP-SECRET-SENTINEL"
SECRET_PNG = png_bytes((1, 1, 1, 255), secret=SENTINEL)
ABSOLUTE = "<absolute path of the secret outside the areas>"

# Every way a client might name the secret beside or above the input/output/temp areas. The
# "user" area holds it on both backends; on the file backend a copy also sits above the areas.
ESCAPES = {
    "dotdot": "../user/secret.png",
    "dotdot-deep": "../../secret.png",
    "dotdot-inner": "a/../../user/secret.png",
    "pct-dots": "%2e%2e/user/secret.png",
    "pct-upper": "%2E%2E%2Fuser%2Fsecret.png",
    "dotdot-pct-slash": "..%2fuser%2fsecret.png",
    "absolute": "/etc/passwd",
    "absolute-secret": ABSOLUTE,
    "nul": "secret\x00.png",
    "backslash": "..\\user\\secret.png",
    "backslash-abs": "C:\\secret.png",
}

# (endpoint, field); the mask's original_ref fields are answered 200 (ComfyUI's quirk) and
# must simply read nothing.
TARGETS = [
    ("upload_image", "filename"),
    ("upload_image", "subfolder"),
    ("upload_mask", "filename"),
    ("upload_mask", "subfolder"),
    ("upload_mask", "original_ref.filename"),
    ("upload_mask", "original_ref.subfolder"),
    ("view", "filename"),
    ("view", "subfolder"),
    ("view_metadata", "filename"),
]


@pytest.fixture
def secret(edge: EdgeServices, store_kind: str, tmp_path: Path) -> Path:
    """The secret in the user area and (file backend) above the areas; its disk path."""
    edge.areas.user.write_bytes("secret.png", SECRET_PNG)
    on_disk = tmp_path / "secret.png"
    on_disk.write_bytes(SECRET_PNG)
    edge.areas.input.write_bytes("orig.png", png_bytes())
    return on_disk


def snapshot(edge: EdgeServices, root: Path) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Every object of every area, and every file under the test's folder."""
    areas = {area: {i.key: i.size for i in edge.areas.area(area).list()} for area in AREAS}
    files = sorted(os.path.join(d, f) for d, _dirs, names in os.walk(root) for f in names)
    return areas, files


def attempt(client: TestClient, endpoint: str, field: str, value: str) -> httpx.Response:
    """One request with `value` in `field`, everything else valid."""
    if endpoint == "view":
        params = {"filename": "secret.png", "type": "input", field: value}
        return client.get("/view", params=params)
    if endpoint == "view_metadata":
        return client.get("/view_metadata/checkpoints", params={"filename": value})
    ref = {"filename": "orig.png", "type": "input"}
    fields = {"subfolder": ""}
    filename = "new.png"
    if field == "filename":
        filename = value
    elif field == "subfolder":
        fields["subfolder"] = value
    else:
        ref[field.removeprefix("original_ref.")] = value
    if endpoint == "upload_mask":
        fields["original_ref"] = json.dumps(ref)
        return upload(client, mask_bytes(), filename, path="/upload/mask", **fields)
    return upload(client, png_bytes(), filename, **fields)


@pytest.mark.parametrize(("endpoint", "field"), TARGETS)
@pytest.mark.parametrize("escape", list(ESCAPES))
def test_no_path_leaves_the_areas(
    edge_client: TestClient,
    edge: EdgeServices,
    secret: Path,
    tmp_path: Path,
    endpoint: str,
    field: str,
    escape: str,
) -> None:
    value = ESCAPES[escape]
    value = str(secret) if value == ABSOLUTE else value
    before = snapshot(edge, tmp_path)
    response = attempt(edge_client, endpoint, field, value)
    assert SENTINEL.encode() not in response.content
    if field.startswith("original_ref."):
        # Computed name, nothing written: in particular no merge of the secret.
        assert response.status_code == 200, response.text
    else:
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
        error_of(response)
    assert snapshot(edge, tmp_path) == before


@pytest.mark.parametrize(
    "query",
    [
        "filename=%2e%2e%2fuser%2fsecret.png&type=input",
        "filename=..%2Fuser%2Fsecret.png&type=input",
        "filename=secret.png&subfolder=%2e%2e%2fuser&type=input",
        "filename=secret.png&subfolder=..%2F..&type=input",
        "filename=secret.png&subfolder=%2Fetc&type=input",
        "filename=secret%00.png&type=input",
        "filename=secret.png&subfolder=a%00b&type=input",
        "filename=..%5Cuser%5Csecret.png&type=input",
    ],
)
def test_view_with_percent_encoded_escapes(
    edge_client: TestClient, edge: EdgeServices, secret: Path, query: str
) -> None:
    # Sent as written: the server decodes these once, into "..", "/", NUL and "\".
    response = edge_client.get(f"/view?{query}")
    assert 400 <= response.status_code < 500
    error_of(response)
    assert SENTINEL.encode() not in response.content
    metadata = edge_client.get(f"/view_metadata/checkpoints?{query}")
    assert 400 <= metadata.status_code < 500


@pytest.fixture
def linked(store_kind: str, edge: EdgeServices, secret: Path, tmp_path: Path) -> Path:
    """Symlinks inside the input area to a folder and a file outside it (file backend)."""
    if store_kind != "file":
        pytest.skip("symlinks exist only in the file store")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(SECRET_PNG)
    root = edge.areas.input.local_path("orig.png").parent  # type: ignore[union-attr]
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "file-link.png").symlink_to(outside / "secret.png")
    return outside


@pytest.mark.parametrize(
    ("endpoint", "field", "value"),
    [
        ("view", "filename", "link/secret.png"),
        ("view", "subfolder", "link"),
        ("view", "filename", "file-link.png"),
        ("upload_image", "subfolder", "link"),
        ("upload_image", "filename", "link/new.png"),
        ("upload_image", "filename", "file-link.png"),
        ("upload_mask", "subfolder", "link"),
        ("upload_mask", "original_ref.subfolder", "link"),
        ("upload_mask", "original_ref.filename", "file-link.png"),
    ],
)
def test_symlinks_out_of_the_area_are_not_followed(
    edge_client: TestClient,
    edge: EdgeServices,
    linked: Path,
    tmp_path: Path,
    endpoint: str,
    field: str,
    value: str,
) -> None:
    before = snapshot(edge, tmp_path)
    if endpoint == "view":
        params = {"filename": "secret.png", "type": "input", field: value}
        response = edge_client.get("/view", params=params)
    else:
        response = attempt(edge_client, endpoint, field, value)
    assert SENTINEL.encode() not in response.content
    if field.startswith("original_ref."):
        assert response.status_code == 200
    else:
        assert response.status_code == 403, response.text
        assert "outside" in error_of(response)
    assert snapshot(edge, tmp_path) == before
    assert (linked / "secret.png").read_bytes() == SECRET_PNG


def test_overwrite_does_not_write_through_a_file_symlink(
    edge_client: TestClient, linked: Path
) -> None:
    response = upload(edge_client, b"replaced", "file-link.png", overwrite="true")
    assert response.status_code == 403
    assert (linked / "secret.png").read_bytes() == SECRET_PNG
