"""Error shapes at the edge, the 400 cases, and the dual-path routing rules (§1.0)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from cluster.errors import PromptValidationError, error_dict
from serve_app.http import RouteFamily, build_app, mount
from serve_app.http.memory_backend import InMemoryBackend

PROMPT = {"1": {"class_type": "SaveImage", "inputs": {}}}


@pytest.fixture
def backend() -> InMemoryBackend:
    return InMemoryBackend()


@pytest.fixture
def client(backend: InMemoryBackend) -> TestClient:
    return TestClient(build_app(backend))


def post_raw(client: TestClient, path: str, content: bytes) -> Any:
    return client.post(path, content=content, headers={"content-type": "application/json"})


# --- /prompt envelope ---------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "/api"])
def test_prompt_invalid_json_is_400_envelope(client: TestClient, prefix: str) -> None:
    response = post_raw(client, f"{prefix}/prompt", b'{"prompt": ')
    assert response.status_code == 400
    body = response.json()
    assert body["node_errors"] == {}
    assert body["error"]["type"] == "invalid_json"
    assert body["error"]["message"] == "Request body is not valid JSON"
    assert "line 1" in body["error"]["details"] and body["error"]["extra_info"] == {}


def test_prompt_empty_and_non_object_bodies(client: TestClient) -> None:
    empty = post_raw(client, "/prompt", b"")
    assert empty.status_code == 400 and empty.json()["error"]["details"] == "the body is empty"
    array = post_raw(client, "/prompt", b"[1, 2]")
    assert array.status_code == 400
    assert array.json()["error"] == {
        "type": "invalid_json",
        "message": "Request body must be a JSON object, got array",
        "details": "array",
        "extra_info": {},
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": [1]}, "prompt"),
        ({"prompt": PROMPT, "extra_data": "x"}, "extra_data"),
        ({"prompt": PROMPT, "number": "soon"}, "number"),
        ({"prompt": PROMPT, "partial_execution_targets": "1"}, "partial_execution_targets"),
        ({"prompt": PROMPT, "partial_execution_targets": [1]}, "partial_execution_targets.0"),
        ({"prompt": PROMPT, "client_id": 5}, "client_id"),
    ],
)
def test_prompt_wrong_field_types_name_the_field(
    client: TestClient, backend: InMemoryBackend, body: dict, field: str
) -> None:
    response = client.post("/prompt", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request" and error["details"] == field
    assert f"'{field}'" in error["message"]
    assert backend.calls == []  # rejected before reaching the cluster


def test_missing_prompt_and_bad_prompt_id_are_left_to_the_backend(
    client: TestClient, backend: InMemoryBackend
) -> None:
    missing = client.post("/prompt", json={"client_id": "c"})
    assert missing.status_code == 400
    assert missing.json() == {
        "error": {
            "type": "no_prompt",
            "message": "No prompt provided",
            "details": "No prompt provided",
            "extra_info": {},
        },
        "node_errors": {},
    }
    bad_id = client.post("/prompt", json={"prompt": PROMPT, "prompt_id": 12})
    assert bad_id.status_code == 400
    assert bad_id.json()["error"]["type"] == "invalid_prompt_id"
    assert [name for name, _ in backend.calls] == ["submit_prompt", "submit_prompt"]


def test_backend_validation_error_becomes_400_with_node_errors(
    client: TestClient, backend: InMemoryBackend
) -> None:
    node_errors = {"1": {"errors": [], "dependent_outputs": ["1"], "class_type": "SaveImage"}}

    async def reject(body: dict, usage_source: str | None) -> dict:
        error = error_dict("prompt_outputs_failed_validation", "Prompt outputs failed validation")
        raise PromptValidationError(error, node_errors)

    backend.submit_prompt = reject  # type: ignore[method-assign]
    response = client.post("/api/prompt", json={"prompt": PROMPT})
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": "",
            "extra_info": {},
        },
        "node_errors": node_errors,
    }


# --- other routes: {"error": "<message>"} ---------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content", "needle"),
    [
        ("/queue", b"{oops", "not valid JSON"),
        ("/queue", b"", "the body is empty"),
        ("/queue", b'"clear"', "must be a JSON object, got string"),
        ("/queue", b'{"delete": "abc"}', "'delete'"),
        ("/queue", b'{"delete": [1]}', "'delete.0'"),
        ("/queue", b'{"clear": "maybe"}', "'clear'"),
        ("/history", b'{"delete": {"a": 1}}', "'delete'"),
        ("/history", b"nope", "not valid JSON"),
        ("/free", b'{"unload_models": "lots"}', "'unload_models'"),
        ("/free", b"{", "not valid JSON"),
        ("/interrupt", b'{"prompt_id": 5}', "'prompt_id'"),
        ("/interrupt", b"[]", "must be a JSON object"),
    ],
)
def test_malformed_bodies_are_400_naming_the_problem(
    client: TestClient, backend: InMemoryBackend, path: str, content: bytes, needle: str
) -> None:
    for prefix in ("", "/api"):
        response = post_raw(client, f"{prefix}{path}", content)
        assert response.status_code == 400, (path, content)
        body = response.json()
        assert list(body) == ["error"] and needle in body["error"]
    assert backend.calls == []


@pytest.mark.parametrize("param", ["max_items", "offset"])
def test_history_non_integer_params(client: TestClient, param: str) -> None:
    response = client.get(f"/api/history?{param}=ten")
    assert response.status_code == 400
    assert response.json() == {"error": f"{param} must be an integer"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=bogus", "Invalid status value(s): bogus. Valid values: "),
        ("sort_by=x", "sort_by must be 'created_at' or 'execution_duration'"),
        ("sort_order=x", "sort_order must be 'asc' or 'desc'"),
        ("limit=0", "limit must be a positive integer"),
        ("limit=x", "limit must be an integer"),
        ("offset=x", "offset must be an integer"),
    ],
)
def test_jobs_query_errors(client: TestClient, query: str, message: str) -> None:
    response = client.get(f"/api/jobs?{query}")
    assert response.status_code == 400
    assert list(response.json()) == ["error"] and response.json()["error"].startswith(message)


def test_unknown_job_is_404(client: TestClient) -> None:
    for path in ("/api/jobs/whatever", "/api/api/jobs/whatever"):
        response = client.get(path)
        assert response.status_code == 404 and response.json() == {"error": "Job not found"}


def test_cancel_many_errors(client: TestClient) -> None:
    bad_json = post_raw(client, "/api/jobs/cancel", b"{")
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["error"]
    not_list = client.post("/api/jobs/cancel", json={"job_ids": "x"})
    assert not_list.status_code == 400 and not_list.json() == {"error": "job_ids must be a list"}
    bad_ids = client.post("/api/jobs/cancel", json={"job_ids": ["x", 3]})
    assert bad_ids.status_code == 400
    assert bad_ids.json() == {
        "error": "job_ids must contain only valid UUID strings",
        "invalid_ids": ["x", 3],
    }


# --- routing rules, 404, 500, 503 ---------------------------------------------------------


def test_jobs_are_not_served_bare_and_unknown_routes_404(client: TestClient) -> None:
    assert client.get("/api/jobs").status_code == 200
    assert client.get("/api/api/jobs").status_code == 200
    for path in ("/jobs", "/jobs/x", "/api/api/prompt", "/nope", "/api/nope"):
        assert client.get(path).status_code == 404, path
    assert client.post("/jobs/cancel", json={"job_ids": []}).status_code == 404


def test_route_families_mount_where_comfyui_serves_them() -> None:
    app = build_app(InMemoryBackend())
    for family, path in (
        (RouteFamily.INTERNAL, "/internal/ping"),
        (RouteFamily.COMFY, "/ping"),
        (RouteFamily.API, "/api/pong"),
    ):
        router = APIRouter()
        router.add_api_route(path, lambda: {"ok": True}, methods=["GET"])
        mount(app, router, family)
    client = TestClient(app)
    served = {p for p in ("/internal/ping", "/api/internal/ping", "/ping", "/api/ping",
                          "/api/pong", "/api/api/pong", "/pong")
              if client.get(p).status_code == 200}  # fmt: skip
    assert served == {"/internal/ping", "/ping", "/api/ping", "/api/pong", "/api/api/pong"}
    documented = set(app.openapi()["paths"])
    assert {"/internal/ping", "/api/ping", "/api/pong"} <= documented
    assert not {"/ping", "/api/api/pong", "/api/internal/ping"} & documented


def test_framework_validation_errors_become_400() -> None:
    app = build_app(InMemoryBackend())
    router = APIRouter()

    async def needs_int(count: int) -> dict:
        return {"count": count}

    router.add_api_route("/needs_int", needs_int, methods=["GET"])
    mount(app, router, RouteFamily.COMFY)
    client = TestClient(app)
    assert client.get("/needs_int?count=3").json() == {"count": 3}
    response = client.get("/api/needs_int?count=x")
    assert response.status_code == 400
    assert response.json()["error"].startswith("Invalid query parameter 'count'")
    missing = client.get("/needs_int")
    assert missing.json() == {"error": "Missing required query parameter 'count'"}


def test_unexpected_exception_is_logged_500(
    client: TestClient, backend: InMemoryBackend, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken() -> dict:
        raise RuntimeError("bug")

    backend.get_queue = broken  # type: ignore[method-assign]
    quiet = TestClient(client.app, raise_server_exceptions=False)
    response = quiet.get("/api/queue")
    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error"}
    assert any("unhandled error on GET /api/queue" in r.getMessage() for r in caplog.records)


def test_no_backend_yet_is_503_and_late_attach_works() -> None:
    app = build_app()
    client = TestClient(app)
    response = client.get("/prompt")
    assert response.status_code == 503 and "error" in response.json()
    app.state.backend = InMemoryBackend()
    assert client.get("/prompt").json() == {"exec_info": {"queue_remaining": 0}}
