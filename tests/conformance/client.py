"""A small ComfyUI client of our own for the black-box suite: HTTP via httpx, WS via websockets.

It speaks only the public API, as any ComfyUI client does. Every wait is bounded: a WS
receive gives up after `RECV_TIMEOUT` seconds of silence and a run after `RUN_TIMEOUT`.

    client = ComfyClient(server.url, server.ws_url)
    run = client.run(g.prompt())          # POST /prompt, WS messages, history entry
    assert run.executing_nodes() == [...]
"""

from __future__ import annotations

import json
import logging
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

logger = logging.getLogger(__name__)

RECV_TIMEOUT = 10.0
RUN_TIMEOUT = 45.0
HTTP_TIMEOUT = 30.0
PREVIEW_METADATA_FLAGS = {"supports_preview_metadata": True}

JSONDict = dict[str, Any]


class WsTimeout(AssertionError):
    """The server sent nothing (or not what was awaited) in time; the test fails, not hangs."""


@dataclass(frozen=True)
class Frame:
    """One WS message: JSON `{"type", "data"}`, or a binary frame (`type == "binary"`)."""

    type: str
    data: Any = None
    raw: bytes | None = None

    @property
    def is_binary(self) -> bool:
        return self.raw is not None

    @property
    def event(self) -> int:
        """The binary frame's leading uint32 BE event code."""
        assert self.raw is not None, "not a binary frame"
        return int(struct.unpack(">I", self.raw[:4])[0])

    @property
    def node(self) -> Any:
        return self.data.get("node") if isinstance(self.data, dict) else None

    @property
    def prompt_id(self) -> Any:
        return self.data.get("prompt_id") if isinstance(self.data, dict) else None

    def label(self) -> str:
        """A short name for order assertions: `executing n4`, `binary 1`, `status 0`."""
        if self.is_binary:
            return f"binary {self.event}"
        if self.type in ("executing", "executed"):
            return f"{self.type} {self.node}"
        if self.type == "status":
            return f"status {self.data['status']['exec_info']['queue_remaining']}"
        return self.type

    def is_end_of(self, prompt_id: str) -> bool:
        return self.type == "executing" and self.node is None and self.prompt_id == prompt_id


def decode(message: str | bytes) -> Frame:
    if isinstance(message, bytes):
        return Frame("binary", None, message)
    parsed = json.loads(message)
    return Frame(str(parsed.get("type")), parsed.get("data"))


@dataclass
class PreviewImage:
    """A decoded preview frame: type 1 (legacy) or type 4 (with metadata)."""

    event: int
    image: bytes
    image_format: int | None = None
    metadata: JSONDict | None = None


def parse_preview(frame: Frame) -> PreviewImage:
    raw = frame.raw
    assert raw is not None, f"not a binary frame: {frame}"
    event = frame.event
    if event == 1:
        (image_format,) = struct.unpack(">I", raw[4:8])
        return PreviewImage(event, raw[8:], image_format=image_format)
    if event == 4:
        (length,) = struct.unpack(">I", raw[4:8])
        metadata = json.loads(raw[8 : 8 + length])
        return PreviewImage(event, raw[8 + length :], metadata=metadata)
    raise AssertionError(f"unexpected binary event {event}")


class WsSession:
    """One open `/ws` socket; `hello` is the first message the server sent."""

    def __init__(self, ws: ClientConnection, hello: Frame) -> None:
        self._ws = ws
        self.hello = hello
        self.sid: str = hello.data.get("sid") if isinstance(hello.data, dict) else ""
        self.server_flags: JSONDict | None = None

    def recv(self, timeout: float = RECV_TIMEOUT) -> Frame:
        try:
            return decode(self._ws.recv(timeout=timeout))
        except TimeoutError:
            raise WsTimeout(f"no WS message within {timeout:.0f}s") from None

    def send_json(self, message: Any) -> None:
        self._ws.send(json.dumps(message))

    def until(
        self,
        predicate: Callable[[Frame], bool],
        timeout: float = RUN_TIMEOUT,
        what: str = "the awaited message",
    ) -> list[Frame]:
        """Frames up to and including the first one matching `predicate`."""
        deadline = time.monotonic() + timeout
        frames: list[Frame] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WsTimeout(f"{what} did not arrive within {timeout:.0f}s: {labels(frames)}")
            try:
                frame = self.recv(min(RECV_TIMEOUT, left))
            except WsTimeout as exc:
                raise WsTimeout(f"{what}: {exc}; got {labels(frames)}") from None
            frames.append(frame)
            if predicate(frame):
                return frames

    def until_end_of(self, prompt_id: str, timeout: float = RUN_TIMEOUT) -> list[Frame]:
        """Frames up to and including `executing {node: null, prompt_id}`."""
        return self.until(lambda f: f.is_end_of(prompt_id), timeout, f"end of {prompt_id}")

    def quiet(self, silence: float = 0.5, limit: float = RECV_TIMEOUT) -> list[Frame]:
        """Everything that arrives until the socket has been silent for `silence` seconds."""
        deadline = time.monotonic() + limit
        frames: list[Frame] = []
        while time.monotonic() < deadline:
            try:
                frames.append(decode(self._ws.recv(timeout=silence)))
            except TimeoutError:
                return frames
        raise WsTimeout(f"socket never went quiet within {limit:.0f}s")

    def close(self) -> None:
        try:
            self._ws.close()
        except ConnectionClosed:
            pass


def labels(frames: list[Frame]) -> list[str]:
    return [f.label() for f in frames]


@dataclass
class Run:
    """One prompt run as its client saw it."""

    prompt_id: str
    number: float
    node_errors: JSONDict
    messages: list[Frame]
    history: JSONDict = field(default_factory=dict)

    def json_messages(self) -> list[Frame]:
        return [m for m in self.messages if not m.is_binary]

    def labels(self, *, progress: bool = True) -> list[str]:
        """Labels of all frames; without progress_state/progress when `progress=False`."""
        skipped = () if progress else ("progress_state", "progress")
        return [m.label() for m in self.messages if m.type not in skipped]

    def of_type(self, type_: str) -> list[JSONDict]:
        return [m.data for m in self.messages if m.type == type_]

    def one(self, type_: str) -> JSONDict:
        found = self.of_type(type_)
        assert len(found) == 1, f"expected one {type_}, got {len(found)}: {self.labels()}"
        return found[0]

    def executing_nodes(self) -> list[Any]:
        """Nodes of the `executing` messages, without the final null."""
        return [d["node"] for d in self.of_type("executing") if d["node"] is not None]

    def executed(self) -> dict[str, JSONDict]:
        return {d["node"]: d["output"] for d in self.of_type("executed")}

    def binary(self) -> list[Frame]:
        return [m for m in self.messages if m.is_binary]

    @property
    def status(self) -> JSONDict:
        return self.history.get("status", {})

    @property
    def outputs(self) -> JSONDict:
        return self.history.get("outputs", {})

    def status_message_types(self) -> list[str]:
        return [m[0] for m in self.status.get("messages", [])]


class ComfyClient:
    def __init__(self, base_url: str, ws_url: str) -> None:
        self.base_url = base_url
        self.ws_url = ws_url
        self.http = httpx.Client(base_url=base_url, timeout=HTTP_TIMEOUT)

    def close(self) -> None:
        self.http.close()

    # --- HTTP -----------------------------------------------------------------------------

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params or None)

    def post(self, path: str, body: Any = None) -> httpx.Response:
        if body is None:
            return self.http.post(path)
        return self.http.post(path, json=body)

    def get_json(self, path: str, **params: Any) -> Any:
        response = self.get(path, **params)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def post_prompt(
        self, prompt: JSONDict, *, client_id: str | None = None, path: str = "/prompt", **body: Any
    ) -> httpx.Response:
        """POST a prompt; `body` adds fields such as prompt_id, number, front, extra_data."""
        payload: JSONDict = {"prompt": prompt, **body}
        if client_id is not None:
            payload["client_id"] = client_id
        return self.post(path, payload)

    def queue_prompt(
        self, prompt: JSONDict, *, client_id: str | None = None, **body: Any
    ) -> JSONDict:
        """POST a prompt that must be accepted; returns {prompt_id, number, node_errors}."""
        response = self.post_prompt(prompt, client_id=client_id, **body)
        assert response.status_code == 200, f"prompt rejected: {response.text}"
        return response.json()

    def history_entry(self, prompt_id: str) -> JSONDict:
        """The history entry of a prompt, or {} when there is none yet."""
        return self.get_json(f"/history/{prompt_id}").get(prompt_id, {})

    def wait_history(self, prompt_id: str, timeout: float = RUN_TIMEOUT) -> JSONDict:
        return self.wait_for(
            lambda: self.history_entry(prompt_id), timeout, f"history of {prompt_id}"
        )

    def queue(self) -> JSONDict:
        return self.get_json("/queue")

    def queue_ids(self) -> tuple[list[str], list[str]]:
        """(running ids, pending ids) from GET /queue."""
        queue = self.queue()
        return (
            [row[1] for row in queue["queue_running"]],
            [row[1] for row in queue["queue_pending"]],
        )

    def interrupt(self, prompt_id: str | None = None) -> None:
        response = self.post("/interrupt", {"prompt_id": prompt_id} if prompt_id else {})
        assert response.status_code == 200, response.text

    def drain_queue(self, timeout: float = RUN_TIMEOUT) -> None:
        """Clear pending prompts and interrupt running ones, until the queue is empty."""
        self.post("/queue", {"clear": True})
        self.interrupt()

        def empty() -> bool:
            running, pending = self.queue_ids()
            if pending:
                self.post("/queue", {"clear": True})
            if running:
                self.interrupt()
            return not running and not pending

        self.wait_for(empty, timeout, "an empty queue", interval=0.2)

    @staticmethod
    def wait_for(
        check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(interval)

    # --- WebSocket ------------------------------------------------------------------------

    def connect(
        self, client_id: str | None = None, *, feature_flags: JSONDict | None = None
    ) -> WsSession:
        """Open `/ws` (with `?clientId=` when given), read the hello `status`, and announce
        feature flags as the first client message, waiting for the server's reply."""
        url = self.ws_url if client_id is None else f"{self.ws_url}?clientId={client_id}"
        ws = connect(url, open_timeout=RECV_TIMEOUT, max_size=None)
        try:
            hello = decode(ws.recv(timeout=RECV_TIMEOUT))
        except TimeoutError:
            ws.close()
            raise WsTimeout("no hello status from /ws") from None
        session = WsSession(ws, hello)
        if feature_flags is not None:
            session.send_json({"type": "feature_flags", "data": feature_flags})
            reply = session.until(lambda f: f.type == "feature_flags", RECV_TIMEOUT, "flags reply")
            session.server_flags = reply[-1].data
        return session

    @contextmanager
    def session(
        self, client_id: str | None = None, *, feature_flags: JSONDict | None = None
    ) -> Iterator[WsSession]:
        ws = self.connect(client_id, feature_flags=feature_flags)
        try:
            yield ws
        finally:
            ws.close()

    # --- whole runs -----------------------------------------------------------------------

    def run(
        self,
        prompt: JSONDict,
        *,
        client_id: str | None = None,
        ws: WsSession | None = None,
        feature_flags: JSONDict | None = None,
        timeout: float = RUN_TIMEOUT,
        **body: Any,
    ) -> Run:
        """Submit `prompt` as `client_id` (a fresh one by default) and collect its WS
        messages up to `executing null`; the history entry is read right after that."""
        if ws is None:
            client_id = client_id or uuid.uuid4().hex
            with self.session(client_id, feature_flags=feature_flags) as own:
                return self.run(prompt, client_id=client_id, ws=own, timeout=timeout, **body)
        queued = self.queue_prompt(prompt, client_id=client_id or ws.sid, **body)
        prompt_id = queued["prompt_id"]
        logger.debug("prompt %s queued as number %s", prompt_id, queued["number"])
        messages = ws.until_end_of(prompt_id, timeout)
        return Run(
            prompt_id,
            queued["number"],
            queued["node_errors"],
            messages,
            self.history_entry(prompt_id),
        )
