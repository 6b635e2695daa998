"""`server`: a minimal PromptServer so that packs doing `from server import PromptServer`
at import time load.

Custom HTTP routes are accepted and ignored (they are not served yet); WebSocket sends are
only logged. `PromptServer.instance` is a module-level object because that is the name
packs reach for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["PromptServer"]

logger = logging.getLogger(__name__)

Handler = Callable[..., Any]


class _IgnoredRoutes:
    """Looks like aiohttp's RouteTableDef; decorators hand the handler back untouched."""

    def _decorator(self, method: str, path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            logger.info(
                "custom route %s %s (%s) is not served by comfyray yet",
                method,
                path,
                getattr(handler, "__qualname__", handler),
            )
            return handler

        return register

    def get(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self._decorator("GET", path)

    def post(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self._decorator("POST", path)

    def put(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self._decorator("PUT", path)

    def patch(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self._decorator("PATCH", path)

    def delete(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self._decorator("DELETE", path)

    def head(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self._decorator("HEAD", path)

    def view(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self._decorator("VIEW", path)

    def route(self, method: str, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self._decorator(method, path)

    def static(self, prefix: str, path: Any, **kwargs: Any) -> None:
        logger.info("custom static route %s -> %s is not served by comfyray yet", prefix, path)

    def __iter__(self) -> Any:
        return iter(())

    def __len__(self) -> int:
        return 0


class _IgnoredApp:
    """Stands in for the aiohttp application: every method call is logged and ignored."""

    def __init__(self, name: str = "app") -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        if attr == "router":
            return _IgnoredApp(f"{self._name}.router")

        def ignored(*args: Any, **kwargs: Any) -> None:
            logger.info("PromptServer.instance.%s.%s(...) is ignored by comfyray", self._name, attr)

        return ignored


class PromptServer:
    instance: PromptServer

    def __init__(self) -> None:
        self.routes = _IgnoredRoutes()
        self.app = _IgnoredApp()
        self.on_prompt_handlers: list[Callable[[dict[str, Any]], dict[str, Any]]] = []
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.supports: list[str] = []

    def add_on_prompt_handler(self, handler: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        # Kept but not called yet: prompts are validated in the control plane.
        logger.info("on_prompt handler %s registered (not run by comfyray yet)", handler)
        self.on_prompt_handlers.append(handler)

    def send_sync(self, event: str, data: Any, sid: str | None = None) -> None:
        logger.info(
            "PromptServer.send_sync(%r, sid=%r) dropped: custom WS events not forwarded yet",
            event,
            sid,
        )

    async def send(self, event: str, data: Any, sid: str | None = None) -> None:
        self.send_sync(event, data, sid)

    async def send_json(self, event: str, data: Any, sid: str | None = None) -> None:
        self.send_sync(event, data, sid)

    def send_progress_text(self, text: str, node_id: str, sid: str | None = None) -> None:
        logger.info("progress text for node_id=%s dropped (not forwarded yet)", node_id)


PromptServer.instance = PromptServer()
