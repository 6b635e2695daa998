"""A trivial ingress: Ray and Serve with only the two routes a startup check needs.

GET /history -> {} and a /ws socket that sends one status message. `bench/startup.py
--ingress tests.integration.serve_stub:deploy` uses it to measure the floor (Ray + Serve
without our app); any server can be pointed at it with
`COMFYRAY_INGRESS_FACTORY=tests.integration.serve_stub:deploy` to tell a lifecycle problem
from an app problem.
"""

from __future__ import annotations

import logging
import uuid

# Module level, not inside deploy(): FastAPI resolves the string annotations of the route
# functions (postponed by `from __future__ import annotations`) in this module's globals.
from fastapi import FastAPI, WebSocket

from serve_app.settings import ServeSettings

logger = logging.getLogger(__name__)


def deploy(settings: ServeSettings) -> None:
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
