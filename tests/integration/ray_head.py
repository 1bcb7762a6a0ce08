"""A real local Ray cluster for tests and benchmarks: `ray start --head` on 127.0.0.1, stopped by pid.

`ray start --head --block` runs in a session of its own, so every process it starts
(GCS, raylet, workers, actors) carries that session id: stopping the cluster kills
exactly those, never another engineer's Ray (no `ray stop`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NUM_CPUS = 2  # the machine's cores: the cluster never asks for more


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_range(width: int) -> int:
    """The start of `width` consecutive ports nobody listens on (Ray's worker ports)."""
    for start in range(24_000, 60_000, width):
        if all(_port_free(p) for p in (start, start + width // 2, start + width - 1)):
            return start
    raise RuntimeError("no free port range for Ray workers")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class RayHead:
    """A one-node Ray cluster (`ray start --head`) with a bounded CPU count."""

    def __init__(self, *, num_cpus: int = NUM_CPUS) -> None:
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.num_cpus = num_cpus
        # Ray's socket paths must stay under 107 bytes: a short temp dir, not pytest's tmp_path.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="loupe-ray-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> RayHead:
        ray = Path(sys.executable).with_name("ray")
        workers = _free_range(200)
        cmd = [
            str(ray), "start", "--head", "--block",
            "--node-ip-address=127.0.0.1", f"--port={self.port}",
            f"--num-cpus={self.num_cpus}", "--num-gpus=0",
            "--include-dashboard=false", "--disable-usage-stats",
            f"--ray-client-server-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}",
            f"--node-manager-port={_free_port()}", f"--object-manager-port={_free_port()}",
            f"--min-worker-port={workers}", f"--max-worker-port={workers + 199}",
            f"--temp-dir={self.temp_dir}",
        ]  # fmt: skip
        env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
        log = open(self.temp_dir / "head.log", "wb")  # noqa: SIM115 - the head outlives this call
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"ray start --head exited: {(self.temp_dir / 'head.log').read_text()[-2000:]}"
                )
            if self._raylet_up():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("ray start --head did not come up in time")

    def _raylet_up(self) -> bool:
        # The GCS answers first; a driver can only join once the head's raylet has registered.
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
        except OSError:
            return False
        return any(self.temp_dir.glob("session_*/sockets/raylet"))

    def pids(self) -> list[int]:
        """Every live process of this cluster (its session)."""
        if self.proc is None:
            return []
        out = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.getsid(int(entry.name)) == self.proc.pid:
                    out.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
        return out

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        for pid in self.pids():  # what a graceful stop left (ray start --block waits on its children)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)
        self.proc = None
        shutil.rmtree(self.temp_dir, ignore_errors=True)
