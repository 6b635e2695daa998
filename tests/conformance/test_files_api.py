"""Uploads and /view against the real server: an uploaded image is a LoadImage option, runs
through a prompt, and its output is served back with previews and ranges (§1.4, §1.5)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from PIL import Image

from tests.conformance.client import ComfyClient
from tests.conformance.graph import Graph, unique
from tests.server_process import ServerProcess


@pytest.fixture
def comfy(server: ServerProcess) -> Iterator[ComfyClient]:
    client = ComfyClient(server.url, server.ws_url)
    yield client
    client.close()


def gradient_png() -> tuple[Image.Image, bytes]:
    image = Image.new("RGB", (12, 9))
    image.putdata([(x * 20, y * 25, (x + y) * 10) for y in range(9) for x in range(12)])
    out = io.BytesIO()
    image.save(out, "PNG")
    return image, out.getvalue()


def test_uploaded_image_runs_and_its_output_is_viewable(comfy: ComfyClient) -> None:
    source, data = gradient_png()
    name = unique("upload") + ".png"
    uploaded = comfy.http.post(
        "/upload/image", files={"image": (name, data, "image/png")}, data={"type": "input"}
    )
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json() == {"name": name, "subfolder": "", "type": "input"}
    # The same bytes again keep the name.
    again = comfy.http.post("/api/upload/image", files={"image": (name, data, "image/png")})
    assert again.json()["name"] == name

    info = comfy.get_json("/object_info/LoadImage")["LoadImage"]
    assert name in info["input"]["required"]["image"][0]

    g = Graph()
    loaded = g.node("LoadImage", image=name)
    inverted = g.node("ImageInvert", image=loaded.out(0))
    save = g.node("SaveImage", images=inverted.out(0), filename_prefix=unique("inverted"))
    run = comfy.run(g.prompt())
    assert run.status["status_str"] == "success", run.status
    (item,) = run.outputs[save.node_id]["images"]
    assert item["type"] == "output"

    where = {"filename": item["filename"], "subfolder": item["subfolder"], "type": "output"}
    view = comfy.get("/view", **where)
    assert view.status_code == 200
    assert view.headers["content-type"] == "image/png"
    saved = Image.open(io.BytesIO(view.content)).convert("RGB")
    assert saved.size == source.size
    # float32 round trip through the nodes: each channel within 1 of 255 - c.
    for got, original in zip(saved.getdata(), source.getdata(), strict=True):
        assert all(abs(g - (255 - c)) <= 1 for g, c in zip(got, original, strict=True)), (
            got,
            original,
        )

    preview = comfy.get("/view", **where, preview="webp;50")
    assert preview.status_code == 200
    assert preview.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(preview.content)).format == "WEBP"

    ranged = comfy.http.get("/view", params=where, headers={"Range": "bytes=0-15"})
    assert ranged.status_code == 206
    assert ranged.content == view.content[:16]
    assert ranged.headers["content-range"] == f"bytes 0-15/{len(view.content)}"
