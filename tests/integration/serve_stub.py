"""A trivial ingress for process-lifecycle tests and the startup benchmark.

It stands in for `serve_app.ingress.deploy` while that is not written, with the two routes the
lifecycle checks need: GET /history -> {} and a /ws socket that sends one status message.
Point a server at it with `COMFYRAY_INGRESS_FACTORY=tests.integration.serve_stub:deploy`.
"""

from __future__ import annotations

import logging
import uuid

from serve_app.settings import ServeSettings

logger = logging.getLogger(__name__)

FACTORY = "tests.integration.serve_stub:deploy"


def deploy(settings: ServeSettings) -> None:
    from fastapi import FastAPI, WebSocket
    from ray import serve

    app = FastAPI()

    @app.get("/history")
    @app.get("/api/history")
    async def history() -> dict[str, object]:
        return {}

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        await socket.accept()
        sid = socket.query_params.get("clientId") or uuid.uuid4().hex
        await socket.send_json(
            {
                "type": "status",
                "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": sid},
            }
        )
        # Hold the socket open until the client leaves, as the real server does.
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                return

    # num_cpus=0: a long-lived replica must not hold a CPU that worker tasks need.
    @serve.deployment(ray_actor_options={"num_cpus": 0})
    @serve.ingress(app)
    class StubIngress:
        pass

    serve.run(StubIngress.bind(), name="comfyray", route_prefix="/")
    logger.info("stub ingress deployed on port %d", settings.port)
