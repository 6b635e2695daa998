"""/users, /userdata, /v2/userdata and /settings over the whole app, on the file and S3 stores.

Run inside /work/shared/tools/netns-run (the S3 runs start SeaweedFS on 127.0.0.1).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serve_app.edge import EdgeServices
from serve_app.http.app import build_app
from serve_app.http.memory_backend import InMemoryBackend
from storage.content_store import ContentStore
from tests.integration.conftest import make_edge_config

pytestmark = pytest.mark.integration

PREFIXES = ["", "/api"]
ID_PATTERN = re.compile(
    r"^[A-Za-z0-9_-]+_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
)
SECRET = b'{"secret": true}'


def open_client(
    kind: str, base: Path, request: pytest.FixtureRequest, **overrides: object
) -> tuple[TestClient, EdgeServices]:
    edge = EdgeServices.open(make_edge_config(kind, base, request, **overrides))
    return TestClient(build_app(InMemoryBackend(), edge)), edge


@pytest.fixture
def user_store(edge: EdgeServices) -> ContentStore:
    return edge.areas.user


@pytest.fixture
def multi(
    store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[TestClient, EdgeServices]]:
    client, edge = open_client(store_kind, tmp_path / "multi", request, multi_user=True)
    with client:
        yield client, edge


def add_user(client: TestClient, name: str) -> dict[str, str]:
    response = client.post("/users", json={"username": name})
    assert response.status_code == 200, response.text
    return {"Comfy-User": response.json()}


# -- /users ----------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_single_user_migrated_once_default_stored_anything(
    edge_client: TestClient, user_store: ContentStore, prefix: str
) -> None:
    assert edge_client.get(f"{prefix}/users").json() == {"storage": "server", "migrated": False}
    assert (
        edge_client.post(f"{prefix}/userdata/workflows%2Fa.json", content=b"{}").status_code == 200
    )
    assert edge_client.get(f"{prefix}/users").json() == {"storage": "server", "migrated": True}
    assert user_store.exists("default/workflows/a.json")


def test_create_user_answers_its_id_and_records_it(
    edge_client: TestClient, user_store: ContentStore
) -> None:
    response = edge_client.post("/api/users", json={"username": "Ann Lee"})
    assert response.status_code == 200
    user_id = response.json()
    assert isinstance(user_id, str) and ID_PATTERN.match(user_id)
    assert user_id.startswith("Ann-Lee_")
    assert json.loads(user_store.read_bytes("users.json")) == {user_id: "Ann Lee"}
    duplicate = edge_client.post("/users", json={"username": " Ann Lee "})
    assert (duplicate.status_code, duplicate.json()) == (400, {"error": "Duplicate username."})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"{", "not valid JSON"),
        (b"[]", "JSON object"),
        (b"{}", "username"),
        (b'{"username": 3}', "username"),
        (b'{"username": "  "}', "username"),
        (b'{"username": "__root"}', "__"),
    ],
)
def test_create_user_refuses_bad_bodies(
    edge_client: TestClient, user_store: ContentStore, body: bytes, message: str
) -> None:
    response = edge_client.post("/users", content=body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert not user_store.exists("users.json")


def test_multi_user_lists_users(multi: tuple[TestClient, EdgeServices]) -> None:
    client, _ = multi
    ann = add_user(client, "ann")["Comfy-User"]
    bob = add_user(client, "bob")["Comfy-User"]
    assert client.get("/api/users").json() == {
        "storage": "server",
        "users": {ann: "ann", bob: "bob"},
    }


@pytest.mark.parametrize("header", [None, "", "nobody", "default", "__system"])
def test_multi_user_unknown_or_missing_user_is_401_for_settings_403_for_userdata(
    multi: tuple[TestClient, EdgeServices], header: str | None
) -> None:
    client, edge = multi
    add_user(client, "ann")
    # A system user in the registry is still refused.
    users = json.loads(edge.areas.user.read_bytes("users.json"))
    edge.areas.user.write_bytes("users.json", json.dumps({**users, "__system": "s"}).encode())
    headers = {} if header is None else {"Comfy-User": header}
    for method, path in [("GET", "/settings"), ("POST", "/settings"), ("GET", "/settings/x")]:
        response = client.request(method, path, headers=headers, json={"x": 1})
        assert response.status_code == 401, (method, path)
        assert "user" in response.json()["error"].lower()
    for method, path in [
        ("GET", "/userdata?dir=workflows"),
        ("GET", "/v2/userdata"),
        ("GET", "/userdata/a.json"),
        ("POST", "/userdata/a.json"),
        ("DELETE", "/userdata/a.json"),
        ("POST", "/userdata/a.json/move/b.json"),
    ]:
        response = client.request(method, f"/api{path}", headers=headers, content=b"x")
        assert response.status_code == 403, (method, path)
        assert "user" in response.json()["error"].lower()
    assert [info.key for info in edge.areas.user.list()] == ["users.json"]


def test_corrupt_registry_makes_users_unknown_and_is_never_overwritten(
    multi: tuple[TestClient, EdgeServices],
) -> None:
    client, edge = multi
    edge.areas.user.write_bytes("users.json", b"{not json")
    assert client.get("/users").json() == {"storage": "server", "users": {}}
    assert client.get("/settings", headers={"Comfy-User": "x"}).status_code == 401
    response = client.post("/users", json={"username": "ann"})
    assert response.status_code == 409 and "users.json" in response.json()["error"]
    assert edge.areas.user.read_bytes("users.json") == b"{not json"


# -- /userdata files -------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_write_read_list_delete(
    edge_client: TestClient, user_store: ContentStore, prefix: str
) -> None:
    url = f"{prefix}/userdata/workflows%2Fa.json"
    written = edge_client.post(url, content=b'{"nodes": []}')
    assert (written.status_code, written.json()) == (200, "workflows/a.json")
    assert user_store.read_bytes("default/workflows/a.json") == b'{"nodes": []}'
    got = edge_client.get(url)
    assert got.status_code == 200 and got.content == b'{"nodes": []}'
    assert got.headers["content-type"].startswith("application/json")
    assert got.headers["content-disposition"] == "attachment"
    assert got.headers["x-content-type-options"] == "nosniff"
    # Plain slashes reach the same file.
    assert edge_client.get(f"{prefix}/userdata/workflows/a.json").content == b'{"nodes": []}'
    listed = edge_client.get(f"{prefix}/userdata", params={"dir": "workflows"})
    assert listed.json() == ["a.json"]
    deleted = edge_client.delete(url)
    assert deleted.status_code == 204 and deleted.content == b""
    assert edge_client.delete(url).status_code == 404
    assert edge_client.get(url).status_code == 404
    assert not user_store.exists("default/workflows/a.json")


def test_write_full_info_and_overwrite_rules(edge_client: TestClient) -> None:
    url = "/api/userdata/notes%2Fn.txt"
    first = edge_client.post(f"{url}?full_info=true", content=b"12345")
    info = first.json()
    assert set(info) == {"path", "size", "modified", "created"}
    assert info["path"] == "notes/n.txt" and info["size"] == 5
    assert isinstance(info["modified"], int) and info["modified"] > 1_600_000_000_000
    refused = edge_client.post(f"{url}?overwrite=false", content=b"other")
    assert refused.status_code == 409 and "exists" in refused.json()["error"]
    assert edge_client.get(url).content == b"12345"
    # Without overwrite=false ComfyUI replaces the file.
    assert edge_client.post(url, content=b"new").status_code == 200
    assert edge_client.post(f"{url}?overwrite=true", content=b"newer").status_code == 200
    assert edge_client.get(url).content == b"newer"
    assert edge_client.post("/userdata/fresh.txt?overwrite=false", content=b"x").status_code == 200


def test_upload_streams_in_chunks(edge_client: TestClient, user_store: ContentStore) -> None:
    chunks = [bytes([i]) * 65536 for i in range(8)]
    response = edge_client.post("/userdata/big.bin", content=iter(chunks))
    assert response.status_code == 200
    assert user_store.stat("default/big.bin").size == 8 * 65536
    body = edge_client.get("/userdata/big.bin")
    assert body.content == b"".join(chunks)
    assert body.headers["content-type"] == "application/octet-stream"


def test_upload_over_the_limit_is_413_and_keeps_nothing(
    store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    client, edge = open_client(store_kind, tmp_path / "small", request, max_upload_bytes=10)
    with client:
        assert client.post("/userdata/ok.bin", content=b"x" * 10).status_code == 200
        declared = client.post("/userdata/big.bin", content=b"x" * 11)
        assert declared.status_code == 413 and "10 bytes" in declared.json()["error"]
        streamed = client.post("/userdata/big.bin", content=iter([b"x" * 6, b"x" * 6]))
        assert streamed.status_code == 413
        assert client.post("/settings", content=b'{"a": "' + b"x" * 20 + b'"}').status_code == 413
        assert [i.key for i in edge.areas.user.list()] == ["default/ok.bin"]


@pytest.mark.parametrize(
    ("name", "media_type", "disposition"),
    [
        ("user.css", "text/css", "inline"),
        ("sub%2Fuser.css", "application/octet-stream", "attachment"),
        ("page.html", "application/octet-stream", "attachment"),
        ("script.js", "application/octet-stream", "attachment"),
        ("image.svg", "application/octet-stream", "attachment"),
        ("pic.png", "image/png", "attachment"),
    ],
)
def test_download_types(
    edge_client: TestClient, name: str, media_type: str, disposition: str
) -> None:
    assert edge_client.post(f"/userdata/{name}", content=b"<b>x</b>").status_code == 200
    response = edge_client.get(f"/api/userdata/{name}")
    assert response.headers["content-type"].split(";")[0] == media_type
    assert response.headers["content-disposition"] == disposition
    assert response.headers["x-content-type-options"] == "nosniff"


def test_file_in_place_of_a_folder_and_the_reverse_are_400(
    edge_client: TestClient, user_store: ContentStore
) -> None:
    edge_client.post("/userdata/a", content=b"file")
    edge_client.post("/userdata/d%2Fx.json", content=b"x")
    under_file = edge_client.post("/userdata/a%2Fb.json", content=b"x")
    assert under_file.status_code == 400 and "Invalid filename" in under_file.json()["error"]
    on_folder = edge_client.post("/userdata/d", content=b"x")
    assert on_folder.status_code == 400
    assert edge_client.post("/userdata/d/x.json/move/a%2Fy.json").status_code == 400
    assert sorted(i.key for i in user_store.list()) == ["default/a", "default/d/x.json"]


# -- move ------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_move(edge_client: TestClient, user_store: ContentStore, prefix: str) -> None:
    edge_client.post("/userdata/workflows%2Fa.json", content=b"A")
    edge_client.post("/userdata/workflows%2Fb.json", content=b"B")
    base = f"{prefix}/userdata"
    missing = edge_client.post(f"{base}/workflows%2Fnope.json/move/workflows%2Fz.json")
    assert missing.status_code == 404
    clash = edge_client.post(f"{base}/workflows%2Fa.json/move/workflows%2Fb.json?overwrite=false")
    assert clash.status_code == 409
    assert user_store.read_bytes("default/workflows/b.json") == b"B"
    # A destination inside a folder named "move" still splits where the client meant.
    moved = edge_client.post(f"{base}/workflows%2Fa.json/move/workflows%2Fmove%2Fc.json")
    assert (moved.status_code, moved.json()) == (200, "workflows/move/c.json")
    assert user_store.read_bytes("default/workflows/move/c.json") == b"A"
    assert not user_store.exists("default/workflows/a.json")
    replaced = edge_client.post(
        f"{base}/workflows/move/c.json/move/workflows/b.json?overwrite=true&full_info=true"
    )
    assert replaced.status_code == 200
    assert replaced.json()["path"] == "workflows/b.json" and replaced.json()["size"] == 1
    assert user_store.read_bytes("default/workflows/b.json") == b"A"


# -- listings --------------------------------------------------------------------------


def seed(client: TestClient, headers: dict[str, str] | None = None) -> None:
    for name in ["workflows/a.json", "workflows/sub/b.json", "workflows/.hidden", "top.txt"]:
        response = client.post(
            f"/userdata/{name.replace('/', '%2F')}", content=b"12", headers=headers
        )
        assert response.status_code == 200, response.text


def test_userdata_listing_flags(edge_client: TestClient) -> None:
    seed(edge_client)

    def listing(**params: str) -> object:
        response = edge_client.get("/api/userdata", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    assert listing(dir="workflows") == ["a.json"]
    assert listing(dir="workflows/", recurse="true") == ["a.json", "sub/b.json"]
    assert listing(dir="workflows", recurse="true", split="true") == [
        ["a.json", "a.json"],
        ["sub/b.json", "sub", "b.json"],
    ]
    full = listing(dir="workflows", recurse="true", split="true", full_info="true")
    assert [entry["path"] for entry in full] == ["a.json", "sub/b.json"]
    assert full[0]["size"] == 2 and full[0]["created"] == full[0]["modified"]
    assert listing(dir=".") == ["top.txt"]
    assert listing(dir="top.txt") == []
    assert listing(dir="workflows/sub") == ["b.json"]


def test_userdata_listing_errors(edge_client: TestClient) -> None:
    seed(edge_client)
    for params in [{}, {"dir": ""}]:
        response = edge_client.get("/userdata", params=params)
        assert response.status_code == 400
        assert response.json() == {"error": "Directory not provided"}
    assert edge_client.get("/userdata", params={"dir": "nope"}).status_code == 404
    for outside in ["..", "../default", "/etc", "%2e%2e"]:
        assert edge_client.get("/userdata", params={"dir": outside}).status_code == 403, outside


def test_v2_listing(edge_client: TestClient) -> None:
    assert edge_client.get("/api/v2/userdata").json() == []
    seed(edge_client)
    entries = edge_client.get("/api/v2/userdata").json()
    assert [(e["type"], e["path"]) for e in entries] == [
        ("directory", "workflows/sub"),
        ("directory", "workflows"),
        ("file", "workflows/.hidden"),
        ("file", "workflows/a.json"),
        ("file", "workflows/sub/b.json"),
        ("file", "top.txt"),
    ]
    top = entries[-1]
    assert top["name"] == "top.txt" and top["size"] == 2 and isinstance(top["modified"], float)
    sub = edge_client.get("/v2/userdata", params={"path": "workflows%2Fsub"}).json()
    assert sub == [
        {
            "name": "b.json",
            "path": "workflows/sub/b.json",
            "type": "file",
            "size": 2,
            "modified": sub[0]["modified"],
        }
    ]
    assert edge_client.get("/v2/userdata", params={"path": "nope"}).status_code == 404
    assert edge_client.get("/v2/userdata", params={"path": "top.txt"}).status_code == 400
    for outside in ["..", "../x", "/etc", "%2e%2e", "a\\b", "a\x00b"]:
        response = edge_client.get("/v2/userdata", params={"path": outside})
        assert response.status_code == 400, outside


# -- settings --------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_settings(edge_client: TestClient, user_store: ContentStore, prefix: str) -> None:
    assert edge_client.get(f"{prefix}/settings").json() == {}
    assert edge_client.get(f"{prefix}/settings/Comfy.A").content == b"null"
    first = edge_client.post(f"{prefix}/settings", json={"Comfy.A": {"x": 1, "y": 2}, "B": 1})
    assert first.status_code == 200 and first.content == b""
    edge_client.post(f"{prefix}/settings", json={"Comfy.A": {"x": 3}})
    assert edge_client.post(f"{prefix}/settings/Comfy.C", json=[1, "two"]).status_code == 200
    edge_client.post(f"{prefix}/settings/Comfy.D", content=b"false")
    expected = {"Comfy.A": {"x": 3}, "B": 1, "Comfy.C": [1, "two"], "Comfy.D": False}
    assert edge_client.get(f"{prefix}/settings").json() == expected
    assert edge_client.get(f"{prefix}/settings/Comfy.C").json() == [1, "two"]
    stored = user_store.read_bytes("default/comfy.settings.json")
    assert stored.decode() == json.dumps(expected, indent=4)


def test_corrupt_settings_read_as_empty_and_bad_bodies_are_400(
    edge_client: TestClient, user_store: ContentStore
) -> None:
    user_store.write_bytes("default/comfy.settings.json", b"{broken")
    assert edge_client.get("/settings").json() == {}
    assert edge_client.get("/settings/x").json() is None
    for body in [b"", b"{", b"[1, 2]", b'"text"']:
        response = edge_client.post("/settings", content=body)
        assert response.status_code == 400 and response.json()["error"], body
    for body in [b"", b"{"]:
        assert edge_client.post("/settings/x", content=body).status_code == 400
    assert user_store.read_bytes("default/comfy.settings.json") == b"{broken"
    assert edge_client.post("/settings", json={"a": 1}).status_code == 200
    assert edge_client.get("/settings").json() == {"a": 1}


def test_settings_are_per_user(multi: tuple[TestClient, EdgeServices]) -> None:
    client, edge = multi
    ann, bob = add_user(client, "ann"), add_user(client, "bob")
    client.post("/settings", json={"theme": "dark"}, headers=ann)
    client.post("/settings/theme", json="light", headers=bob)
    assert client.get("/settings", headers=ann).json() == {"theme": "dark"}
    assert client.get("/settings/theme", headers=bob).json() == "light"
    key = f"{ann['Comfy-User']}/comfy.settings.json"
    assert json.loads(edge.areas.user.read_bytes(key)) == {"theme": "dark"}


# -- isolation -------------------------------------------------------------------------

# Ways a request of one user could try to name another user's file; {b} is that user's id.
ESCAPES = [
    "..%2F{b}%2Fsecret.json",
    "%2e%2e%2F{b}%2Fsecret.json",
    "%2E%2E/{b}/secret.json",
    "%252e%252e%252F{b}%252Fsecret.json",
    "a/..%2F..%2F{b}%2Fsecret.json",
    "%2F{b}%2Fsecret.json",
    "%252F{b}%252Fsecret.json",
    "..%5C{b}%5Csecret.json",
    "%5C{b}%5Csecret.json",
    "{b}%00%2F..%2F..%2F{b}%2Fsecret.json",
    "secret.json%00",
]


def assert_untouched(store: ContentStore, bob: str, ann: str) -> None:
    assert [info.key for info in store.list(bob)] == [f"{bob}/secret.json"]
    assert store.read_bytes(f"{bob}/secret.json") == SECRET
    assert store.list(ann) == []


def test_users_cannot_reach_each_others_files(multi: tuple[TestClient, EdgeServices]) -> None:
    client, edge = multi
    ann, bob_headers = add_user(client, "ann"), add_user(client, "bob")
    ann_id, bob = ann["Comfy-User"], bob_headers["Comfy-User"]
    assert (
        client.post("/userdata/secret.json", content=SECRET, headers=bob_headers).status_code == 200
    )
    # The other user's id as a folder name is just a folder of ann's.
    assert client.get(f"/userdata/{bob}%2Fsecret.json", headers=ann).status_code == 404
    for escape in ESCAPES:
        path = escape.format(b=bob)
        for method, url in [
            ("GET", f"/userdata/{path}"),
            ("POST", f"/userdata/{path}"),
            ("DELETE", f"/userdata/{path}"),
            ("POST", f"/userdata/{path}/move/mine.json"),
            ("POST", f"/userdata/mine.json/move/{path}?overwrite=true"),
        ]:
            if url.endswith("/move/mine.json"):
                client.post("/userdata/mine.json", content=b"m", headers=ann)
            response = client.request(method, f"/api{url}", headers=ann, content=b"evil")
            assert response.status_code in (400, 403, 404), (method, url, response.text)
            assert SECRET not in response.content
            client.request("DELETE", "/userdata/mine.json", headers=ann)
            assert_untouched(edge.areas.user, bob, ann_id)
    for directory in ["..", f"../{bob}", f"/{bob}", f"%2e%2e/{bob}", f"..\\{bob}", "\x00"]:
        listed = client.get("/userdata", params={"dir": directory, "recurse": "true"}, headers=ann)
        assert listed.status_code in (400, 403), directory
        tree = client.get("/v2/userdata", params={"path": directory}, headers=ann)
        assert tree.status_code == 400, directory
    assert client.get("/v2/userdata", headers=ann).json() == []
    assert_untouched(edge.areas.user, bob, ann_id)


def test_links_out_of_the_users_folder_are_refused(
    multi: tuple[TestClient, EdgeServices], tmp_path: Path
) -> None:
    client, edge = multi
    store = edge.areas.user
    ann_root = store.local_path("x")
    if ann_root is None:
        pytest.skip("links exist only on the file backend")
    ann, bob_headers = add_user(client, "ann"), add_user(client, "bob")
    ann_id, bob = ann["Comfy-User"], bob_headers["Comfy-User"]
    client.post("/userdata/secret.json", content=SECRET, headers=bob_headers)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("root")
    ann_dir = store.local_path(ann_id)
    bob_dir = store.local_path(bob)
    assert ann_dir is not None and bob_dir is not None
    ann_dir.mkdir(parents=True)
    os.symlink(bob_dir, ann_dir / "to_bob")
    os.symlink(bob_dir / "secret.json", ann_dir / "secret_link.json")
    os.symlink(outside, ann_dir / "to_outside")
    for path in ["to_bob%2Fsecret.json", "secret_link.json", "to_outside%2Fpasswd"]:
        got = client.get(f"/userdata/{path}", headers=ann)
        assert got.status_code == 403, (path, got.text)
        assert client.post(f"/userdata/{path}", content=b"evil", headers=ann).status_code == 403
        assert client.delete(f"/userdata/{path}", headers=ann).status_code == 403
        move = client.post(f"/userdata/{path}/move/mine.json", headers=ann)
        assert move.status_code == 403
    client.post("/userdata/mine.json", content=b"m", headers=ann)
    assert client.post("/userdata/mine.json/move/to_bob%2Fnew.json", headers=ann).status_code == 403
    for directory in ["to_bob", "to_outside"]:
        assert client.get("/userdata", params={"dir": directory}, headers=ann).status_code == 403
        assert (
            client.get("/v2/userdata", params={"path": directory}, headers=ann).status_code == 400
        )
    assert client.get("/userdata", params={"dir": ".", "recurse": "true"}, headers=ann).json() == [
        "mine.json"
    ]
    tree = client.get("/v2/userdata", headers=ann).json()
    assert [entry["path"] for entry in tree] == ["mine.json"]
    assert (outside / "passwd").read_text() == "root"
    assert sorted(p.name for p in bob_dir.iterdir()) == ["secret.json"]
    assert (bob_dir / "secret.json").read_bytes() == SECRET


def test_concurrent_setting_posts_all_land(edge_client: TestClient) -> None:
    # The web frontend posts one setting per request, several at once.
    ids = [f"Comfy.S{i}" for i in range(12)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(
            pool.map(lambda sid: edge_client.post(f"/settings/{sid}", json=sid).status_code, ids)
        )
    assert statuses == [200] * len(ids)
    assert edge_client.get("/settings").json() == {sid: sid for sid in ids}
