"""The WebSocket side of one ingress replica: ComfyUI's `/ws` protocol.

The hub long-polls the controller's event log and forwards each event to the sockets it
is addressed to (one client id, or all). Each socket has its own send queue, so a slow
client never holds up the others, and can be paused while the POST that queued a prompt is
still being answered (clients must learn a prompt id from the HTTP reply first).

Besides events, the hub streams the replica's log lines (serve_app/log_buffer.py) as `logs`
messages to the client ids subscribed through `PATCH /internal/logs/subscribe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import struct
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect

from serve_app.log_buffer import LogBuffer, LogEntry

logger = logging.getLogger(__name__)

PREVIEW_IMAGE = 1
PREVIEW_IMAGE_WITH_METADATA = 4
IMAGE_FORMAT_CODES = {"image/jpeg": 1, "image/png": 2}


# Client ids paused by the request being served; released once its reply is sent.
_paused_by_request: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "comfyray_paused_by_request", default=None
)


class EventSource(Protocol):
    async def events_since(self, seq: int, timeout: float) -> list[Any]: ...
    async def last_seq(self) -> int: ...
    async def queue_remaining(self) -> int: ...
    async def running_node_of_client(self, client_id: str) -> str | None: ...


def legacy_preview_frame(image_type: str, data: bytes) -> bytes:
    return struct.pack(">II", PREVIEW_IMAGE, IMAGE_FORMAT_CODES.get(image_type, 1)) + data


def metadata_preview_frame(metadata: dict[str, Any], data: bytes) -> bytes:
    header = json.dumps(metadata).encode()
    return struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(header)) + header + data


def frames_for(event: Any, supports_preview_metadata: bool) -> list[str | bytes]:
    """What one event becomes on one socket, in ComfyUI's order for its feature flags."""
    if event.type != "progress_bundle":
        return [json.dumps({"type": event.type, "data": event.data})]
    frames: list[str | bytes] = []
    if event.progress_state is not None:
        frames.append(json.dumps({"type": "progress_state", "data": event.progress_state}))
    preview = event.preview
    if preview is not None and supports_preview_metadata:
        frames.append(metadata_preview_frame(preview.metadata, preview.data))
    if event.progress is not None:
        frames.append(json.dumps({"type": "progress", "data": event.progress}))
    if preview is not None and not supports_preview_metadata and event.progress is not None:
        frames.append(legacy_preview_frame(preview.image_type, preview.data))
    return frames


@dataclass
class ClientSocket:
    sid: str
    websocket: WebSocket
    supports_preview_metadata: bool = False
    outbox: asyncio.Queue[str | bytes | None] = field(default_factory=asyncio.Queue)
    resumed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.resumed.set()


class WebSocketHub:
    def __init__(
        self,
        source: EventSource,
        server_features: Callable[[], Awaitable[dict]],
        logs: LogBuffer | None = None,
    ):
        self._source = source
        self._server_features = server_features
        self._sockets: dict[str, ClientSocket] = {}
        self._paused: dict[str, int] = {}
        self._poller: asyncio.Task[None] | None = None
        self._seq: int | None = None
        # Log lines arrive on whatever thread logged them; they are batched here and sent
        # from the event loop, the only thread that may touch the sockets' queues.
        self._logs = logs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._log_lock = threading.Lock()
        self._log_batch: list[LogEntry] = []
        self._log_flush_scheduled = False
        if logs is not None:
            logs.add_listener(self._on_log_entry)

    # --- pausing around POST /prompt ---------------------------------------------------------

    def pause(self, client_id: str | None) -> None:
        if client_id is None:
            return
        self._paused[client_id] = self._paused.get(client_id, 0) + 1
        client = self._sockets.get(client_id)
        if client is not None:
            client.resumed.clear()

    def pause_until_reply(self, client_id: str | None) -> None:
        """Hold the client's messages until the current HTTP reply has been sent
        (`ReleaseAfterReply` does it), or for a short while outside a request."""
        if client_id is None:
            return
        self.pause(client_id)
        held = _paused_by_request.get()
        if held is not None:
            held.append(client_id)
        else:
            asyncio.get_running_loop().call_later(0.01, self.resume, client_id)

    def resume(self, client_id: str | None) -> None:
        if client_id is None or client_id not in self._paused:
            return
        self._paused[client_id] -= 1
        if self._paused[client_id] <= 0:
            del self._paused[client_id]
            client = self._sockets.get(client_id)
            if client is not None:
                client.resumed.set()

    # --- the poller --------------------------------------------------------------------------

    async def ensure_polling(self) -> None:
        # Created without an await in between: two sockets connecting at once must not
        # start two pollers (each event would then be sent twice).
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            try:
                if self._seq is None:
                    self._seq = await self._source.last_seq()
                events = await self._source.events_since(self._seq, 10.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("event poll failed: %s; retrying", exc)
                await asyncio.sleep(0.5)
                continue
            for event in events:
                # Not max(): after a controller restart the log counts from 1 again.
                self._seq = event.seq
                try:
                    self._dispatch(event)
                except Exception:  # one bad event must not stop every socket's feed
                    logger.exception("event %d (%s) could not be sent", event.seq, event.type)

    def _dispatch(self, event: Any) -> None:
        if event.target is None:
            targets = list(self._sockets.values())
        else:
            client = self._sockets.get(event.target)
            targets = [client] if client is not None else []
        for client in targets:
            for frame in frames_for(event, client.supports_preview_metadata):
                client.outbox.put_nowait(frame)

    # --- log lines ---------------------------------------------------------------------------

    def _on_log_entry(self, entry: LogEntry) -> None:
        """LogBuffer listener: any thread, with the buffer's handler lock held; never logs."""
        loop = self._loop
        if loop is None or self._logs is None or not self._logs.subscribers():
            return
        with self._log_lock:
            self._log_batch.append(entry)
            if self._log_flush_scheduled:
                return
            self._log_flush_scheduled = True
        try:
            loop.call_soon_threadsafe(self._flush_logs)
        except RuntimeError:  # the loop is closed: the replica is shutting down
            with self._log_lock:
                self._log_batch.clear()
                self._log_flush_scheduled = False

    def _flush_logs(self) -> None:
        with self._log_lock:
            batch, self._log_batch = self._log_batch, []
            self._log_flush_scheduled = False
        if not batch or self._logs is None:
            return
        frame = json.dumps({"type": "logs", "data": {"entries": batch, "size": self._logs.size()}})
        for sid in self._logs.subscribers():
            client = self._sockets.get(sid)
            if client is None:
                # As ComfyUI does: a subscriber whose socket is gone is dropped; the frontend
                # subscribes again after it reconnects.
                self._logs.unsubscribe(sid)
                continue
            client.outbox.put_nowait(frame)

    # --- one connection ----------------------------------------------------------------------

    async def serve(self, websocket: WebSocket) -> None:
        self._loop = asyncio.get_running_loop()
        await websocket.accept()
        await self.ensure_polling()
        sid = websocket.query_params.get("clientId") or uuid.uuid4().hex
        client = ClientSocket(sid, websocket)
        if sid in self._paused:
            client.resumed.clear()
        previous = self._sockets.get(sid)
        self._sockets[sid] = client
        if previous is not None:
            previous.outbox.put_nowait(None)
        remaining = await self._source.queue_remaining()
        await websocket.send_text(
            json.dumps(
                {
                    "type": "status",
                    "data": {"status": {"exec_info": {"queue_remaining": remaining}}, "sid": sid},
                }
            )
        )
        running = await self._source.running_node_of_client(sid)
        if running is not None:
            await websocket.send_text(json.dumps({"type": "executing", "data": {"node": running}}))
        sender = asyncio.get_running_loop().create_task(self._send_loop(client))
        try:
            await self._receive_loop(client)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
            # A newer socket under the same sid stays registered.
            if self._sockets.get(sid) is client:
                del self._sockets[sid]
            logger.info("websocket %s closed", sid)

    async def _send_loop(self, client: ClientSocket) -> None:
        while True:
            frame = await client.outbox.get()
            if frame is None:
                with contextlib.suppress(Exception):
                    await client.websocket.close()
                return
            await client.resumed.wait()
            try:
                if isinstance(frame, bytes):
                    await client.websocket.send_bytes(frame)
                else:
                    await client.websocket.send_text(frame)
            except Exception:
                return

    async def _receive_loop(self, client: ClientSocket) -> None:
        first = True
        while True:
            try:
                message = await client.websocket.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message.get("type") == "websocket.disconnect":
                return
            text = message.get("text")
            if not first or text is None:
                continue
            first = False
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                logger.info("websocket %s: first message is not JSON", client.sid)
                continue
            if isinstance(data, dict) and data.get("type") == "feature_flags":
                flags = data.get("data") if isinstance(data.get("data"), dict) else {}
                client.supports_preview_metadata = bool(flags.get("supports_preview_metadata"))
                features = await self._server_features()
                client.outbox.put_nowait(json.dumps({"type": "feature_flags", "data": features}))


class ReleaseAfterReply:
    """ASGI middleware: resumes the sockets a request paused once its reply is written, so a
    client learns a prompt id from POST /prompt before any message about it (ComfyUI's order)."""

    def __init__(self, app: Any, hub: WebSocketHub) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        held: list[str] = []
        token = _paused_by_request.set(held)

        def release() -> None:
            while held:
                self.hub.resume(held.pop())

        async def send_then_release(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                release()

        try:
            await self.app(scope, receive, send_then_release)
        finally:
            _paused_by_request.reset(token)
            release()
