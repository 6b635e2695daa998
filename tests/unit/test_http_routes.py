"""Every served route, at its bare path and under /api, over the in-memory backend."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serve_app.http import ComfyBackend, build_app
from serve_app.http.memory_backend import InMemoryBackend

PREFIXES = ["", "/api"]
PROMPT = {"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}}}
UUID_A = "0b7d1f0e-5c1e-4c36-9d4e-3c1c1d0a9f11"
UUID_B = "6a1e8a5c-2b55-4f5e-8d0b-6f4f9e0b1c22"
NODE_INFO = {"SaveImage": {"name": "SaveImage", "output_node": True, "input": {}}}


@pytest.fixture
def backend() -> InMemoryBackend:
    return InMemoryBackend(
        node_info=NODE_INFO,
        model_files={"checkpoints": ["b.safetensors", "a.ckpt"], "loras": []},
        embeddings=["emb"],
        system_stats={"system": {"os": "linux"}, "devices": [{"name": "cpu", "type": "cpu"}]},
    )


@pytest.fixture
def client(backend: InMemoryBackend) -> TestClient:
    return TestClient(build_app(backend))


def test_memory_backend_implements_the_protocol(backend: InMemoryBackend) -> None:
    assert isinstance(backend, ComfyBackend)


def submit(client: TestClient, prefix: str = "", **body: Any) -> dict[str, Any]:
    response = client.post(f"{prefix}/prompt", json={"prompt": PROMPT, **body})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("prefix", PREFIXES)
def test_prompt_submit_and_queue_info(
    client: TestClient, backend: InMemoryBackend, prefix: str
) -> None:
    first = submit(client, prefix, client_id="c1")
    second = submit(client, prefix, front=True, prompt_id=UUID_A)
    assert first["number"] == 0 and first["node_errors"] == {}
    assert second == {"prompt_id": UUID_A, "number": -1, "node_errors": {}}
    assert client.get(f"{prefix}/prompt").json() == {"exec_info": {"queue_remaining": 2}}
    queue = client.get(f"{prefix}/queue").json()
    assert queue["queue_running"] == []
    assert [item[1] for item in queue["queue_pending"]] == [first["prompt_id"], UUID_A]
    assert queue["queue_pending"][0][3]["client_id"] == "c1"


def test_explicit_number_is_returned_as_float_json(client: TestClient) -> None:
    response = client.post("/api/prompt", json={"prompt": PROMPT, "number": 5})
    assert b'"number":5.0' in response.content


def test_usage_source_header_reaches_backend(client: TestClient, backend: InMemoryBackend) -> None:
    client.post("/prompt", json={"prompt": PROMPT}, headers={"Comfy-Usage-Source": "cli"})
    client.post("/prompt", json={"prompt": PROMPT})
    sources = [args[1] for name, args in backend.calls if name == "submit_prompt"]
    assert sources == ["cli", None]


def test_prompt_body_passed_to_backend_as_sent(
    client: TestClient, backend: InMemoryBackend
) -> None:
    body = {"prompt": PROMPT, "extra_data": {"extra_pnginfo": {"workflow": {}}}, "custom": [1]}
    client.post("/prompt", json=body)
    assert backend.calls[-1] == ("submit_prompt", (body, None))


@pytest.mark.parametrize("prefix", PREFIXES)
def test_post_queue_clear_and_delete(
    client: TestClient, backend: InMemoryBackend, prefix: str
) -> None:
    ids = [submit(client)["prompt_id"] for _ in range(3)]
    response = client.post(f"{prefix}/queue", json={"delete": [ids[1]]})
    assert response.status_code == 200 and response.content == b""
    assert [row[1] for row in backend.pending] == [ids[0], ids[2]]
    assert client.post(f"{prefix}/queue", json={"clear": True}).status_code == 200
    assert backend.pending == []
    assert backend.calls[-1] == ("manage_queue", (True, []))


@pytest.mark.parametrize("prefix", PREFIXES)
def test_interrupt_and_free(client: TestClient, backend: InMemoryBackend, prefix: str) -> None:
    for body, expected in (({"prompt_id": UUID_A}, UUID_A), ({}, None)):
        response = client.post(f"{prefix}/interrupt", json=body)
        assert response.status_code == 200 and response.content == b""
        assert backend.calls[-1] == ("interrupt", (expected,))
    assert client.post(f"{prefix}/interrupt").status_code == 200  # no body at all
    assert backend.calls[-1] == ("interrupt", (None,))
    response = client.post(f"{prefix}/free", json={"unload_models": True})
    assert response.status_code == 200 and response.content == b""
    assert backend.calls[-1] == ("free", (True, False))
    assert client.post(f"{prefix}/free").status_code == 200
    assert backend.calls[-1] == ("free", (False, False))


def test_interrupt_treats_invalid_json_as_empty(
    client: TestClient, backend: InMemoryBackend
) -> None:
    response = client.post("/interrupt", content=b"{nope", headers={"content-type": "text/plain"})
    assert response.status_code == 200
    assert backend.calls[-1] == ("interrupt", (None,))


@pytest.mark.parametrize("prefix", PREFIXES)
def test_history_routes(client: TestClient, backend: InMemoryBackend, prefix: str) -> None:
    ids = [submit(client)["prompt_id"] for _ in range(3)]
    for prompt_id in ids:
        backend.finish(prompt_id, outputs={"1": {"images": []}})
    assert list(client.get(f"{prefix}/history").json()) == ids
    assert list(client.get(f"{prefix}/history?max_items=2").json()) == ids[1:]
    assert list(client.get(f"{prefix}/history?max_items=1&offset=0").json()) == ids[:1]
    assert backend.calls[-1] == ("get_history", (1, 0))
    one = client.get(f"{prefix}/history/{ids[0]}").json()
    assert list(one) == [ids[0]] and one[ids[0]]["outputs"] == {"1": {"images": []}}
    unknown = client.get(f"{prefix}/history/{UUID_B}")
    assert unknown.status_code == 200 and unknown.json() == {}
    response = client.post(f"{prefix}/history", json={"delete": [ids[0]]})
    assert response.status_code == 200 and response.content == b""
    assert list(backend.history) == ids[1:]
    client.post(f"{prefix}/history", json={"clear": True})
    assert client.get(f"{prefix}/history").json() == {}


def test_history_default_offset_is_minus_one(client: TestClient, backend: InMemoryBackend) -> None:
    client.get("/history")
    assert backend.calls[-1] == ("get_history", (None, -1))


JOBS_PREFIXES = ["/api", "/api/api"]


@pytest.mark.parametrize("prefix", JOBS_PREFIXES)
def test_jobs_list_and_detail(client: TestClient, backend: InMemoryBackend, prefix: str) -> None:
    done = submit(client)["prompt_id"]
    backend.finish(done, outputs={"9": {"images": [{"filename": "a.png", "type": "output"}]}})
    waiting = submit(client, prompt_id=UUID_A)["prompt_id"]
    listing = client.get(f"{prefix}/jobs?status=pending,completed&limit=1").json()
    assert [job["id"] for job in listing["jobs"]] == [waiting]
    assert listing["pagination"] == {"offset": 0, "limit": 1, "total": 2, "has_more": True}
    query = backend.calls[-1][1][0]
    assert query.statuses == ("pending", "completed") and query.limit == 1
    detail = client.get(f"{prefix}/jobs/{done}").json()
    assert detail["status"] == "completed" and detail["outputs_count"] == 1
    assert set(detail) >= {"outputs", "execution_status", "workflow", "preview_output"}
    assert client.get(f"{prefix}/jobs/{waiting}").json()["status"] == "pending"


@pytest.mark.parametrize("prefix", JOBS_PREFIXES)
def test_job_cancel_routes(client: TestClient, backend: InMemoryBackend, prefix: str) -> None:
    submit(client, prompt_id=UUID_A)
    submit(client, prompt_id=UUID_B)
    response = client.post(f"{prefix}/jobs/{UUID_A}/cancel")
    assert response.status_code == 200 and response.json() == {"cancelled": True}
    assert client.post(f"{prefix}/jobs/{UUID_A}/cancel").json() == {"cancelled": False}
    assert client.post(f"{prefix}/jobs/not-a-uuid/cancel").json() == {"cancelled": False}
    many = client.post(f"{prefix}/jobs/cancel", json={"job_ids": [UUID_A, UUID_B]})
    assert many.status_code == 200 and many.json() == {"cancelled": True}
    assert backend.pending == []


@pytest.mark.parametrize("prefix", PREFIXES)
def test_catalogue_routes(client: TestClient, prefix: str) -> None:
    def get(path: str) -> Any:
        response = client.get(f"{prefix}{path}")
        assert response.status_code == 200, path
        return response.json()

    assert get("/system_stats")["system"] == {"os": "linux"}
    assert get("/features")["max_upload_size"] == 104857600
    assert get("/object_info") == NODE_INFO
    assert get("/object_info/SaveImage") == {"SaveImage": NODE_INFO["SaveImage"]}
    assert get("/object_info/Nope") == {}
    assert get("/embeddings") == ["emb"]
    assert get("/models") == ["checkpoints", "loras"]
    assert get("/models/checkpoints") == ["a.ckpt", "b.safetensors"]
    assert get("/models/loras") == []
    assert [folder["name"] for folder in get("/experiment/models")] == ["checkpoints", "loras"]
    assert get("/experiment/models/checkpoints")[0] == {"name": "a.ckpt", "pathIndex": 0}
    for path in ("/models/nope", "/experiment/models/nope"):
        response = client.get(f"{prefix}{path}")
        assert response.status_code == 404
        assert response.json() == {"error": "Unknown model folder: nope"}


def test_responses_keep_nan_like_comfyui(client: TestClient, backend: InMemoryBackend) -> None:
    backend.stats = {"system": {"ram_free": float("nan")}, "devices": []}
    response = client.get("/system_stats")
    assert response.status_code == 200 and b"NaN" in response.content
    assert json.loads(response.content)["devices"] == []
