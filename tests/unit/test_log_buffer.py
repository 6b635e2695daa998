"""serve_app.log_buffer: the replica's recent log entries and subscribers, and their delivery
as `logs` WebSocket messages by the hub (over a fake event source and fake sockets)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime
from typing import Any

import pytest

from serve_app.log_buffer import (
    CAPTURED_LOGGERS,
    LogBuffer,
    install_log_buffer,
    uninstall_log_buffer,
)
from serve_app.ws_hub import WebSocketHub


def record(message: str, level: int = logging.INFO, name: str = "serve_app.test") -> Any:
    return logging.LogRecord(name, level, __file__, 1, message, (), None)


@pytest.fixture
def restore_logger_levels() -> Iterator[None]:
    levels = {name: logging.getLogger(name).level for name in CAPTURED_LOGGERS}
    try:
        yield
    finally:
        for name, level in levels.items():
            logger = logging.getLogger(name)
            logger.setLevel(level)
            for handler in list(logger.handlers):
                if isinstance(handler, LogBuffer):
                    logger.removeHandler(handler)


# --- the buffer --------------------------------------------------------------------------------


def test_entries_have_iso_time_and_newline_terminated_text() -> None:
    buffer = LogBuffer()
    buffer.handle(record("worker 3 joined"))
    buffer.handle(record("ends with newline\n", logging.WARNING, "cluster.queue"))
    entries = buffer.entries()
    assert [e["m"] for e in entries] == [
        "INFO serve_app.test: worker 3 joined\n",
        "WARNING cluster.queue: ends with newline\n",
    ]
    for entry in entries:
        assert set(entry) == {"t", "m"}
        datetime.fromisoformat(entry["t"])
    assert buffer.text() == "".join(f"{e['t']} - {e['m']}" for e in entries)


def test_entries_are_copies() -> None:
    buffer = LogBuffer()
    buffer.handle(record("one"))
    buffer.entries()[0]["m"] = "changed"
    assert buffer.entries()[0]["m"].endswith("one\n")


def test_buffer_keeps_the_last_capacity_entries_at_its_level() -> None:
    buffer = LogBuffer(capacity=3)
    logger = logging.getLogger("tests.log_buffer.capacity")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(buffer)
    logger.propagate = False
    try:
        for n in range(5):
            logger.info("line %d", n)
        logger.debug("debug detail")
    finally:
        logger.removeHandler(buffer)
        logger.propagate = True
    assert [e["m"].split(": ")[1] for e in buffer.entries()] == ["line 2\n", "line 3\n", "line 4\n"]
    with pytest.raises(ValueError):
        LogBuffer(capacity=0)


def test_exceptions_are_part_of_the_entry() -> None:
    buffer = LogBuffer()
    logger = logging.getLogger("tests.log_buffer.exc")
    logger.addHandler(buffer)
    logger.propagate = False
    try:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("step failed")
    finally:
        logger.removeHandler(buffer)
        logger.propagate = True
    (entry,) = buffer.entries()
    assert "step failed\nTraceback" in entry["m"]
    assert entry["m"].endswith("RuntimeError: boom\n")


def test_size_names_cols_and_rows() -> None:
    size = LogBuffer.size()
    assert set(size) == {"cols", "rows"}
    assert size["cols"] > 0 and size["rows"] > 0


def test_subscribers_and_listeners() -> None:
    buffer = LogBuffer()
    seen: list[str] = []

    def listener(entry: dict[str, str]) -> None:
        seen.append(entry["m"])

    buffer.add_listener(listener)
    buffer.subscribe("a")
    buffer.subscribe("b")
    buffer.subscribe("a")
    buffer.unsubscribe("b")
    buffer.unsubscribe("never")
    assert buffer.subscribers() == {"a"}
    buffer.handle(record("heard"))
    buffer.remove_listener(listener)
    buffer.remove_listener(listener)
    buffer.handle(record("not heard"))
    assert seen == ["INFO serve_app.test: heard\n"]


def test_a_failing_listener_does_not_break_logging(capsys: pytest.CaptureFixture[str]) -> None:
    buffer = LogBuffer()

    def broken(entry: dict[str, str]) -> None:
        raise RuntimeError("listener bug")

    buffer.add_listener(broken)
    buffer.handle(record("still kept"))
    assert len(buffer.entries()) == 1
    assert "listener bug" in capsys.readouterr().err  # reported the way logging reports


def test_logging_from_many_threads() -> None:
    buffer = LogBuffer(capacity=1000)

    def log_some(n: int) -> None:
        for i in range(100):
            buffer.handle(record(f"{n}-{i}"))

    threads = [threading.Thread(target=log_some, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(buffer.entries()) == 800


def test_install_captures_the_project_loggers_once(restore_logger_levels: None) -> None:
    for name in CAPTURED_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    old = install_log_buffer(LogBuffer())
    buffer = install_log_buffer(LogBuffer())
    for name in CAPTURED_LOGGERS:
        logging.getLogger(f"{name}.deep.module").info("from %s", name)
    logging.getLogger("ray.serve").warning("not ours")
    logging.getLogger("serve_app").debug("below INFO")
    assert [e["m"] for e in buffer.entries()] == [
        f"INFO {name}.deep.module: from {name}\n" for name in CAPTURED_LOGGERS
    ]
    assert old.entries() == []  # replaced, so no line is logged twice
    uninstall_log_buffer(buffer)
    logging.getLogger("cluster").info("after uninstall")
    assert len(buffer.entries()) == len(CAPTURED_LOGGERS)


def test_install_keeps_a_more_verbose_level(restore_logger_levels: None) -> None:
    logging.getLogger("storage").setLevel(logging.DEBUG)
    install_log_buffer(LogBuffer())
    assert logging.getLogger("storage").level == logging.DEBUG


# --- delivery through the WebSocket hub --------------------------------------------------------


class QuietSource:
    """An event source with no events: only log lines reach the sockets."""

    async def events_since(self, seq: int, timeout: float) -> list[Any]:
        await asyncio.sleep(timeout)
        return []

    async def last_seq(self) -> int:
        return 0

    async def queue_remaining(self) -> int:
        return 0

    async def running_node_of_client(self, client_id: str) -> str | None:
        return None


class FakeWebSocket:
    def __init__(self, client_id: str) -> None:
        self.query_params = {"clientId": client_id}
        self.sent: list[str | bytes] = []
        self._incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def accept(self) -> None:
        pass

    async def send_text(self, text: str) -> None:
        self.sent.append(text)

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)

    async def close(self) -> None:
        pass

    async def receive(self) -> dict[str, Any]:
        return await self._incoming.get()

    def hang_up(self) -> None:
        self._incoming.put_nowait({"type": "websocket.disconnect"})

    def logs(self) -> list[dict[str, Any]]:
        messages = [json.loads(m) for m in self.sent if isinstance(m, str)]
        return [m["data"] for m in messages if m["type"] == "logs"]

    def lines(self) -> list[str]:
        return [entry["m"] for data in self.logs() for entry in data["entries"]]


async def no_features() -> dict[str, Any]:
    return {}


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


class Scene:
    def __init__(self) -> None:
        self.buffer = LogBuffer()
        self.hub = WebSocketHub(QuietSource(), no_features, logs=self.buffer)
        self.tasks: list[asyncio.Task[None]] = []

    async def connect(self, client_id: str) -> FakeWebSocket:
        ws = FakeWebSocket(client_id)
        self.tasks.append(asyncio.create_task(self.hub.serve(ws)))  # type: ignore[arg-type]
        await until(lambda: len(ws.sent) >= 1)  # the status greeting
        return ws

    def log(self, message: str) -> None:
        self.buffer.handle(record(message))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def scenario(body: Callable[[Scene], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        scene = Scene()
        try:
            await asyncio.wait_for(body(scene), 5)
        finally:
            await scene.close()

    asyncio.run(main())


def test_subscribed_clients_get_new_lines_as_logs_messages() -> None:
    async def body(scene: Scene) -> None:
        watcher = await scene.connect("watcher")
        other = await scene.connect("other")
        scene.log("before subscribing")
        await settle()
        scene.buffer.subscribe("watcher")
        scene.log("first")
        await until(lambda: len(watcher.lines()) == 1)
        scene.log("second")
        await until(lambda: len(watcher.lines()) == 2)
        assert watcher.lines() == ["INFO serve_app.test: first\n", "INFO serve_app.test: second\n"]
        data = watcher.logs()[0]
        assert set(data) == {"entries", "size"}
        assert set(data["size"]) == {"cols", "rows"}
        datetime.fromisoformat(data["entries"][0]["t"])
        assert other.logs() == []
        scene.buffer.unsubscribe("watcher")
        scene.log("third")
        await settle()
        assert len(watcher.lines()) == 2

    scenario(body)


def test_a_burst_of_lines_arrives_in_order() -> None:
    async def body(scene: Scene) -> None:
        ws = await scene.connect("c")
        scene.buffer.subscribe("c")
        for n in range(50):
            scene.log(f"line {n}")
        await until(lambda: len(ws.lines()) == 50)
        assert ws.lines() == [f"INFO serve_app.test: line {n}\n" for n in range(50)]
        # Lines logged before the loop ran again share one message.
        assert len(ws.logs()) < 50

    scenario(body)


def test_lines_logged_on_other_threads_are_delivered() -> None:
    async def body(scene: Scene) -> None:
        ws = await scene.connect("c")
        scene.buffer.subscribe("c")
        await asyncio.to_thread(scene.log, "from a worker thread")
        await until(lambda: ws.lines() == ["INFO serve_app.test: from a worker thread\n"])

    scenario(body)


def test_a_subscriber_without_a_socket_is_dropped() -> None:
    async def body(scene: Scene) -> None:
        gone = await scene.connect("gone")
        stays = await scene.connect("stays")
        scene.buffer.subscribe("gone")
        scene.buffer.subscribe("stays")
        scene.buffer.subscribe("never-connected")
        gone.hang_up()
        await until(lambda: scene.tasks[0].done())
        scene.log("after the hang-up")
        await until(lambda: len(stays.lines()) == 1)
        assert scene.buffer.subscribers() == {"stays"}
        assert gone.logs() == []

    scenario(body)


def test_lines_before_any_connection_are_not_queued() -> None:
    async def body(scene: Scene) -> None:
        scene.buffer.subscribe("late")
        scene.log("nobody is connected")
        ws = await scene.connect("late")
        await settle()
        assert ws.logs() == []
        scene.log("now connected")
        await until(lambda: ws.lines() == ["INFO serve_app.test: now connected\n"])

    scenario(body)
