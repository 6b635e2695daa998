"""serve_app.ws_hub: frames per feature flags, binary layouts (§4.4), and the hub's routing,
pause/resume and reconnect rules over a fake event source and fake websockets."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable, Coroutine
from typing import Any

from cluster.events import Event
from node_actors.protocol import PreviewFrame
from serve_app.ws_hub import (
    WebSocketHub,
    frames_for,
    legacy_preview_frame,
    metadata_preview_frame,
)

META = {
    "node_id": "3",
    "prompt_id": "p",
    "display_node_id": "3",
    "parent_node_id": None,
    "real_node_id": "3",
    "image_type": "image/png",
}


def bundle(
    *, state: bool = True, progress: bool = True, preview: PreviewFrame | None = None
) -> Event:
    return Event(
        7,
        "progress_bundle",
        {},
        "c1",
        progress_state={"prompt_id": "p", "nodes": {}} if state else None,
        progress={"value": 1, "max": 4, "prompt_id": "p", "node": "3"} if progress else None,
        preview=preview,
    )


def kinds(frames: list[str | bytes]) -> list[str | int]:
    """JSON frames by message type, binary frames by their event number."""
    return [
        struct.unpack(">I", f[:4])[0] if isinstance(f, bytes) else json.loads(f)["type"]
        for f in frames
    ]


# --- binary layouts ------------------------------------------------------------------------------


def test_legacy_preview_frame_layout() -> None:
    frame = legacy_preview_frame("image/jpeg", b"JPEGDATA")
    assert struct.unpack(">II", frame[:8]) == (1, 1)
    assert frame[8:] == b"JPEGDATA"
    assert struct.unpack(">II", legacy_preview_frame("image/png", b"x")[:8]) == (1, 2)


def test_metadata_preview_frame_layout() -> None:
    frame = metadata_preview_frame(META, b"PNGDATA")
    event, length = struct.unpack(">II", frame[:8])
    assert event == 4
    assert json.loads(frame[8 : 8 + length]) == META
    assert frame[8 + length :] == b"PNGDATA"


# --- frames_for ----------------------------------------------------------------------------------


def test_plain_event_is_one_json_frame() -> None:
    event = Event(1, "executing", {"node": "1", "prompt_id": "p"}, "c1")
    assert frames_for(event, False) == [
        json.dumps({"type": "executing", "data": {"node": "1", "prompt_id": "p"}})
    ]
    assert frames_for(event, True) == frames_for(event, False)


def test_bundle_with_preview_for_a_metadata_client() -> None:
    preview = PreviewFrame("image/png", b"IMG", META)
    frames = frames_for(bundle(preview=preview), True)
    assert kinds(frames) == ["progress_state", 4, "progress"]
    assert frames[1] == metadata_preview_frame(META, b"IMG")
    assert json.loads(frames[2])["data"]["value"] == 1


def test_bundle_with_preview_for_a_legacy_client() -> None:
    preview = PreviewFrame("image/jpeg", b"IMG", META)
    frames = frames_for(bundle(preview=preview), False)
    assert kinds(frames) == ["progress_state", "progress", 1]
    assert frames[2] == legacy_preview_frame("image/jpeg", b"IMG")


def test_bundle_without_legacy_progress_sends_no_legacy_preview() -> None:
    preview = PreviewFrame("image/png", b"IMG", META)
    assert kinds(frames_for(bundle(progress=False, preview=preview), False)) == ["progress_state"]
    assert kinds(frames_for(bundle(progress=False, preview=preview), True)) == [
        "progress_state",
        4,
    ]


def test_bundle_without_preview_or_state() -> None:
    assert kinds(frames_for(bundle(), False)) == ["progress_state", "progress"]
    assert kinds(frames_for(bundle(state=False), True)) == ["progress"]


# --- the hub -------------------------------------------------------------------------------------


class FakeSource:
    def __init__(self, last_seq: int = 0) -> None:
        self.events: list[Event] = []
        self._last = last_seq
        self._changed = asyncio.Event()
        self.running: dict[str, str] = {}
        self.remaining = 2

    def emit(self, type_: str, data: dict[str, Any], target: str | None, **parts: Any) -> None:
        self._last += 1
        self.events.append(Event(self._last, type_, data, target, **parts))
        self._changed.set()

    async def events_since(self, seq: int, timeout: float) -> list[Event]:
        while True:
            newer = [e for e in self.events if e.seq > seq]
            if newer:
                return newer
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except TimeoutError:
                return []

    async def last_seq(self) -> int:
        return self._last

    async def queue_remaining(self) -> int:
        return self.remaining

    async def running_node_of_client(self, client_id: str) -> str | None:
        return self.running.get(client_id)


class FakeWebSocket:
    def __init__(self, client_id: str | None = None) -> None:
        self.query_params = {"clientId": client_id} if client_id else {}
        self.accepted = False
        self.closed = False
        self.sent: list[str | bytes] = []
        self._incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def accept(self) -> None:
        self.accepted = True

    async def send_text(self, text: str) -> None:
        self.sent.append(text)

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)

    async def close(self) -> None:
        self.closed = True

    async def receive(self) -> dict[str, Any]:
        return await self._incoming.get()

    def say(self, data: Any) -> None:
        self._incoming.put_nowait({"type": "websocket.receive", "text": json.dumps(data)})

    def hang_up(self) -> None:
        self._incoming.put_nowait({"type": "websocket.disconnect"})

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(m) for m in self.sent if isinstance(m, str)]

    def types(self) -> list[str]:
        return [m["type"] for m in self.messages()]


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


async def settle() -> None:
    """Let the poller and send loops run (nothing should arrive in this time)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def features() -> dict[str, Any]:
    return {"supports_preview_metadata": True, "max_upload_size": 1}


class Scene:
    def __init__(self, last_seq: int = 0) -> None:
        self.source = FakeSource(last_seq)
        self.hub = WebSocketHub(self.source, features)
        self.tasks: list[asyncio.Task[None]] = []

    async def connect(self, client_id: str | None) -> FakeWebSocket:
        ws = FakeWebSocket(client_id)
        self.tasks.append(asyncio.create_task(self.hub.serve(ws)))  # type: ignore[arg-type]
        await until(lambda: "status" in ws.types())
        return ws

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def scenario(body: Callable[[Scene], Coroutine[Any, Any, None]], last_seq: int = 0) -> None:
    async def main() -> None:
        scene = Scene(last_seq)
        try:
            await asyncio.wait_for(body(scene), 5)
        finally:
            await scene.close()

    asyncio.run(main())


def test_connect_sends_status_with_sid_and_the_running_node() -> None:
    async def body(scene: Scene) -> None:
        scene.source.running["c1"] = "5"
        ws = await scene.connect("c1")
        await until(lambda: len(ws.sent) == 2)
        assert ws.accepted
        assert ws.messages() == [
            {
                "type": "status",
                "data": {"status": {"exec_info": {"queue_remaining": 2}}, "sid": "c1"},
            },
            {"type": "executing", "data": {"node": "5"}},
        ]
        anonymous = await scene.connect(None)
        sid = anonymous.messages()[0]["data"]["sid"]
        assert len(sid) == 32 and sid != "c1"

    scenario(body)


def test_events_go_to_their_client_and_broadcasts_to_all() -> None:
    async def body(scene: Scene) -> None:
        a = await scene.connect("a")
        b = await scene.connect("b")
        scene.source.emit("executing", {"node": "1"}, "a")
        scene.source.emit("status", {"n": 1}, None)
        scene.source.emit("executing", {"node": "9"}, "nobody")
        await until(lambda: a.types()[-1:] == ["status"] and b.types()[-1:] == ["status"])
        await settle()
        assert [m for m in a.messages()[1:]] == [
            {"type": "executing", "data": {"node": "1"}},
            {"type": "status", "data": {"n": 1}},
        ]
        assert b.messages()[1:] == [{"type": "status", "data": {"n": 1}}]

    scenario(body)


def test_events_from_before_the_first_connection_are_not_replayed() -> None:
    async def body(scene: Scene) -> None:
        ws = await scene.connect("a")
        scene.source.emit("executing", {"node": "new"}, "a")
        await until(lambda: len(ws.sent) == 2)
        assert ws.messages()[1]["data"] == {"node": "new"}

    scenario(body, last_seq=41)


def test_feature_flags_reply_and_preview_format_per_socket() -> None:
    async def body(scene: Scene) -> None:
        modern = await scene.connect("m")
        legacy = await scene.connect("l")
        modern.say({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
        legacy.say({"type": "hello"})  # a first message that is not feature flags
        await until(lambda: "feature_flags" in modern.types())
        assert modern.messages()[-1] == {
            "type": "feature_flags",
            "data": {"supports_preview_metadata": True, "max_upload_size": 1},
        }
        # Only the first message counts.
        legacy.say({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
        await settle()
        preview = PreviewFrame("image/png", b"IMG", META)
        for target in ("m", "l"):
            scene.source.emit(
                "progress_bundle",
                {},
                target,
                progress_state={"prompt_id": "p", "nodes": {}},
                progress={"value": 1, "max": 2},
                preview=preview,
            )
        await until(lambda: len(modern.sent) == 5 and len(legacy.sent) == 4)
        assert kinds(modern.sent[2:]) == ["progress_state", 4, "progress"]
        assert kinds(legacy.sent[1:]) == ["progress_state", "progress", 1]
        assert "feature_flags" not in legacy.types()

    scenario(body)


def test_paused_client_gets_nothing_until_resumed_then_everything_in_order() -> None:
    async def body(scene: Scene) -> None:
        ws = await scene.connect("c")
        other = await scene.connect("d")
        scene.hub.pause("c")
        scene.hub.pause("c")  # two POSTs in flight
        scene.source.emit("executing", {"node": "1"}, "c")
        scene.source.emit("status", {"n": 1}, None)
        await until(lambda: len(other.sent) == 2)
        await settle()
        assert ws.types() == ["status"]
        scene.hub.resume("c")
        await settle()
        assert ws.types() == ["status"]
        scene.hub.resume("c")
        await until(lambda: len(ws.sent) == 3)
        assert ws.messages()[1:] == [
            {"type": "executing", "data": {"node": "1"}},
            {"type": "status", "data": {"n": 1}},
        ]
        scene.hub.resume("c")  # more resumes than pauses are harmless
        scene.hub.pause(None)
        scene.hub.resume(None)

    scenario(body)


def test_pause_before_connecting_holds_the_new_socket() -> None:
    async def body(scene: Scene) -> None:
        scene.hub.pause("late")
        ws = await scene.connect("late")
        scene.source.emit("executing", {"node": "1"}, "late")
        await settle()
        assert ws.types() == ["status"]  # the greeting is not held, queued events are
        scene.hub.resume("late")
        await until(lambda: len(ws.sent) == 2)

    scenario(body)


def test_reconnect_under_the_same_id_replaces_the_old_socket() -> None:
    async def body(scene: Scene) -> None:
        old = await scene.connect("c")
        new = await scene.connect("c")
        await until(lambda: old.closed)
        old.hang_up()  # the old connection's receive loop ends after the close
        await settle()
        scene.source.emit("executing", {"node": "1"}, "c")
        await until(lambda: len(new.sent) == 2)
        assert old.types() == ["status"]

    scenario(body)


def test_a_disconnected_client_is_dropped() -> None:
    async def body(scene: Scene) -> None:
        gone = await scene.connect("gone")
        stays = await scene.connect("stays")
        gone.hang_up()
        await until(lambda: scene.tasks[0].done())
        scene.source.emit("status", {"n": 1}, None)
        await until(lambda: len(stays.sent) == 2)
        await settle()
        assert gone.types() == ["status"]

    scenario(body)
