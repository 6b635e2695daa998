"""The server process: composition root of `comfyray serve`.

`run(settings)` starts (or joins) Ray, starts Serve's HTTP proxy on the configured address, has
the ingress factory deploy the app, then blocks until SIGINT/SIGTERM and shuts down in order.
The CLI never calls it in its own process: it runs `python -m serve_app.main` under the watchdog
of `serve_app.lifecycle`, which is what guarantees cleanup after a hard kill.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType

from serve_app.lifecycle import configure_logging
from serve_app.settings import ServeSettings

logger = logging.getLogger(__name__)

IngressFactory = Callable[[ServeSettings], object]


class StartupError(RuntimeError):
    """The server cannot start with these settings (port taken, no ingress factory...)."""


def resolve_ingress_factory(path: str) -> IngressFactory:
    """The function named by `module:function`."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the named module missing is a settings problem; a missing import inside it is a bug.
        if exc.name is not None and module_name.startswith(exc.name):
            raise StartupError(f"ingress factory {path!r}: module {exc.name!r} not found") from exc
        raise
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise StartupError(f"ingress factory {path!r}: {module_name} has no function {attr!r}")
    return factory


def ensure_port_free(host: str, port: int) -> None:
    """Fail fast with a clear message instead of letting Serve's proxy retry a taken port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # The same option uvicorn sets, so leftover TIME_WAIT connections do not count as taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(f"port {port} on {host} is already in use") from exc
            raise StartupError(f"cannot bind {host}:{port}: {exc.strerror}") from exc


def prepare_directories(settings: ServeSettings) -> None:
    """Create the local directories the server writes to, as ComfyUI does at start."""
    for path in (
        settings.output_directory,
        settings.input_directory,
        settings.temp_directory,
        settings.user_directory,
        settings.state_dir,
    ):
        if path is None:
            continue
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"cannot create directory {path}: {exc.strerror}") from exc


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_ray(settings: ServeSettings) -> None:
    import ray

    if settings.ray_address:
        logger.info("joining Ray cluster at %s", settings.ray_address)
        ray.init(address=settings.ray_address)
        return
    if settings.http_proxy == "haproxy":
        # Read by Serve when it starts its proxies; they inherit the local Ray's environment.
        os.environ.setdefault("RAY_SERVE_ENABLE_HA_PROXY", "1")
        # HAProxy's stats and metrics listeners have fixed default ports: pick free ones so
        # two servers on one machine do not collide.
        os.environ.setdefault("RAY_SERVE_HAPROXY_STATS_PORT", str(free_port()))
        os.environ.setdefault("RAY_SERVE_HAPROXY_METRICS_PORT", str(free_port()))
    num_cpus = settings.num_cpus or None
    logger.info(
        "starting local Ray (object store %d MiB, cpus %s)",
        settings.object_store_memory // (1024 * 1024),
        num_cpus or "all",
    )
    ray.init(
        address="local",
        include_dashboard=False,
        object_store_memory=settings.object_store_memory,
        num_cpus=num_cpus,
        # --cpu: hide GPUs from Ray so no worker is ever placed on one.
        num_gpus=0 if settings.cpu else None,
        # A cluster of one machine talks over loopback only: Ray would otherwise bind every
        # interface and advertise the machine's private address.
        _node_ip_address="127.0.0.1",
    )


def start_serve(settings: ServeSettings) -> None:
    from ray import serve

    serve.start(http_options={"host": settings.host, "port": settings.port})
    resolve_ingress_factory(settings.ingress_factory)(settings)


def shutdown() -> None:
    """Stop Serve, then Ray; each step is attempted even if the one before failed."""
    import ray
    from ray import serve

    if not ray.is_initialized():
        return
    started = time.monotonic()
    try:
        serve.shutdown()
    except Exception:
        logger.exception("serve.shutdown failed")
    try:
        ray.shutdown()
    except Exception:
        logger.exception("ray.shutdown failed")
    logger.info("shut down in %.1fs", time.monotonic() - started)


def run(settings: ServeSettings) -> int:
    """Serve until SIGINT/SIGTERM; 0 after a clean stop, 1 when startup failed."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    started = time.monotonic()
    try:
        if not settings.ray_address:
            ensure_port_free(settings.host, settings.port)
        prepare_directories(settings)
        start_ray(settings)
        # ray.init installs its own SIGTERM handler that exits at once; we stop in order instead.
        signal.signal(signal.SIGTERM, request_stop)
        if not stop.is_set():
            start_serve(settings)
            logger.info("ready in %.1fs", time.monotonic() - started)
            logger.info("To see the GUI go to: %s", settings.display_url())
        # A bounded wait keeps the main thread returning to the interpreter for signal handlers.
        while not stop.wait(0.5):
            pass
    except StartupError as exc:
        logger.error("cannot start: %s", exc)
        return 1
    except Exception:
        logger.exception("server failed")
        return 1
    finally:
        shutdown()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve_app.main")
    parser.add_argument("--settings-json", required=True, help="ServeSettings as JSON")
    args = parser.parse_args(argv)
    configure_logging()
    # Already resolved by the CLI: validate the data only, without re-reading env or profiles.
    settings = ServeSettings.model_validate_json(args.settings_json)
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
