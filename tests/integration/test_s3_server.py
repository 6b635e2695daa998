"""`comfyray serve --store-uri s3://...`: inputs, outputs and temp files live in the bucket.

One real server for the module (Ray, one worker) over the session's SeaweedFS, with its own
prefix in the bucket. A prompt LoadImage -> ImageInvert -> SaveImage + PreviewImage runs
once; the tests then look at the bucket (through a plain S3 client) and at what the API
serves. Run inside /work/shared/tools/netns-run.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from minio import Minio
from minio.error import S3Error
from PIL import Image

from tests.seaweed import SeaweedServer
from tests.server_process import ServerProcess, start_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

BUCKET = "comfyray-server-test"
START_TIMEOUT_S = 240.0
PROMPT_TIMEOUT_S = 180.0
UPLOAD_LIMIT_MB = 1.5


@dataclass
class S3Server:
    server: ServerProcess
    client: Minio
    prefix: str

    @property
    def url(self) -> str:
        return self.server.url

    def object_name(self, area: str, key: str) -> str:
        return f"{self.prefix}/{area}/{key}"

    def get(self, area: str, key: str) -> bytes:
        response = self.client.get_object(BUCKET, self.object_name(area, key))
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def put(self, area: str, key: str, data: bytes) -> None:
        self.client.put_object(BUCKET, self.object_name(area, key), io.BytesIO(data), len(data))

    def has(self, area: str, key: str) -> bool:
        try:
            self.client.stat_object(BUCKET, self.object_name(area, key))
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                return False
            raise
        return True


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def pixels_of(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB")).astype(np.int16)


def close(a: np.ndarray, b: np.ndarray) -> bool:
    # Float pixels are truncated back to 8 bits on save: one level of slack.
    return a.shape == b.shape and bool((np.abs(a - b.astype(np.int16)) <= 1).all())


SOURCE = np.zeros((8, 12, 3), dtype=np.uint8)
SOURCE[..., 0] = 200
SOURCE[:, :6, 1] = 40


@pytest.fixture(scope="module")
def s3_server(
    seaweed: SeaweedServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[S3Server]:
    prefix = f"srv-{uuid.uuid4().hex[:12]}"
    client = seaweed.client()
    if not client.bucket_exists(BUCKET):
        client.make_bucket(BUCKET)
    base = tmp_path_factory.mktemp("s3-server") / "base"
    server = start_server(
        base,
        "--store-uri",
        seaweed.uri(BUCKET, prefix=prefix),
        "--workers",
        "1",
        "--max-upload-size",
        str(UPLOAD_LIMIT_MB),
        timeout=START_TIMEOUT_S,
    )
    try:
        yield S3Server(server, client, prefix)
    finally:
        server.stop()


def run_prompt(url: str, prompt: dict[str, Any]) -> dict[str, Any]:
    prompt_id = str(uuid.uuid4())
    r = httpx.post(f"{url}/prompt", json={"prompt": prompt, "prompt_id": prompt_id}, timeout=30)
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + PROMPT_TIMEOUT_S
    while time.monotonic() < deadline:
        entry = httpx.get(f"{url}/history/{prompt_id}", timeout=30).json()
        if prompt_id in entry:
            return entry[prompt_id]
        time.sleep(0.3)
    raise TimeoutError(f"prompt {prompt_id} did not finish in {PROMPT_TIMEOUT_S}s")


def invert_prompt(image: str) -> dict[str, Any]:
    return {
        "load": {"class_type": "LoadImage", "inputs": {"image": image}},
        "invert": {"class_type": "ImageInvert", "inputs": {"image": ["load", 0]}},
        "save": {
            "class_type": "SaveImage",
            "inputs": {"images": ["invert", 0], "filename_prefix": "s3/inverted"},
        },
        "preview": {"class_type": "PreviewImage", "inputs": {"images": ["load", 0]}},
    }


@pytest.fixture(scope="module")
def ran(s3_server: S3Server) -> dict[str, Any]:
    """The prompt's history entry, run on an input that only the bucket holds."""
    s3_server.put("input", "from-bucket.png", png(SOURCE))
    entry = run_prompt(s3_server.url, invert_prompt("from-bucket.png"))
    assert entry["status"]["status_str"] == "success", entry["status"]
    return entry


def only_image(entry: dict[str, Any], node: str) -> dict[str, str]:
    (image,) = entry["outputs"][node]["images"]
    return image


def view(url: str, image: dict[str, str]) -> httpx.Response:
    params = {"filename": image["filename"], "subfolder": image["subfolder"], "type": image["type"]}
    return httpx.get(f"{url}/view", params=params, timeout=30)


# -- the worker side (no upload or view route involved) ------------------------------------


def test_an_input_in_the_bucket_is_a_load_image_option(s3_server: S3Server) -> None:
    s3_server.put("input", "listed.png", png(SOURCE))
    s3_server.put("input", "notes.txt", b"not an image")
    info = httpx.get(f"{s3_server.url}/object_info/LoadImage", timeout=60).json()
    options = info["LoadImage"]["input"]["required"]["image"][0]
    assert "listed.png" in options
    assert "notes.txt" not in options


def test_outputs_of_a_prompt_are_in_the_bucket(s3_server: S3Server, ran: dict[str, Any]) -> None:
    saved = only_image(ran, "save")
    assert saved["type"] == "output" and saved["subfolder"] == "s3"
    key = f"{saved['subfolder']}/{saved['filename']}"
    assert s3_server.has("output", key)
    assert close(pixels_of(s3_server.get("output", key)), 255 - SOURCE)

    preview = only_image(ran, "preview")
    assert preview["type"] == "temp"
    temp_key = f"{preview['subfolder']}/{preview['filename']}".lstrip("/")
    assert close(pixels_of(s3_server.get("temp", temp_key)), SOURCE)
    # The worker read its input from a local copy fetched from the bucket.
    fetched = s3_server.server.base_dir / "input" / "from-bucket.png"
    assert fetched.read_bytes() == s3_server.get("input", "from-bucket.png")


# -- the API side (needs /upload/image and /view) ------------------------------------------


def test_uploaded_image_goes_to_the_bucket_and_the_options(s3_server: S3Server) -> None:
    data = png(SOURCE[::-1])
    r = httpx.post(
        f"{s3_server.url}/upload/image",
        files={"image": ("uploaded.png", data, "image/png")},
        data={"type": "input", "subfolder": ""},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "uploaded.png", "subfolder": "", "type": "input"}
    assert s3_server.get("input", "uploaded.png") == data
    info = httpx.get(f"{s3_server.url}/object_info/LoadImage", timeout=60).json()
    assert "uploaded.png" in info["LoadImage"]["input"]["required"]["image"][0]


def local_file(s3_server: S3Server, image: dict[str, str]) -> Path:
    return s3_server.server.base_dir / image["type"] / image["subfolder"] / image["filename"]


@pytest.mark.parametrize("node", ["save", "preview"])
def test_view_serves_the_stored_file_after_the_local_copy_is_gone(
    s3_server: S3Server, ran: dict[str, Any], node: str
) -> None:
    image = only_image(ran, node)
    local = local_file(s3_server, image)
    assert local.is_file()
    local.unlink()  # only the bucket has it now
    r = view(s3_server.url, image)
    assert r.status_code == 200, r.text
    key = f"{image['subfolder']}/{image['filename']}".lstrip("/")
    assert r.content == s3_server.get(image["type"], key)
    expected = 255 - SOURCE if node == "save" else SOURCE
    assert close(pixels_of(r.content), expected)


def test_the_configured_upload_limit_is_reported_and_enforced(s3_server: S3Server) -> None:
    limit = int(UPLOAD_LIMIT_MB * 1024 * 1024)
    features = httpx.get(f"{s3_server.url}/features", timeout=30).json()
    assert features["max_upload_size"] == limit
    response = httpx.post(
        f"{s3_server.url}/upload/image",
        files={"image": ("big.png", b"\x89PNG" + bytes(limit))},
        timeout=60,
    )
    assert response.status_code == 413
    assert not s3_server.has("input", "big.png")
