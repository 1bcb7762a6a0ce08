"""A real Label Studio for tests: its own venv and a migrated data directory, both cached.

Cache layout (LOUPE_TEST_CACHE, default ~/.cache/loupe):

    label-studio-venv-<version>/          python3 -m venv + pip install label-studio==<version>
        .loupe-complete                   written last: a venv without it is rebuilt
    label-studio-data-<version>/          a data dir after the first start (migrations run,
        .loupe-migrated                   admin user and legacy token created), copied per session
    label-studio-<version>.lock           serialises building both across processes

Label Studio pins old dependencies, so it never goes into Loupe's venv. The first build
takes a few minutes (pip) plus ~1 minute of migrations; later sessions copy the data dir
and start in seconds.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

VERSION = "1.23.2"
USERNAME = "admin@example.com"
PASSWORD = "loupe-test-password"
TOKEN = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"  # 40 characters, as Label Studio's legacy tokens
CACHE = Path(os.environ.get("LOUPE_TEST_CACHE", Path.home() / ".cache" / "loupe"))
START_TIMEOUT_S = 240.0
PAGE_SIZE_MAX = 7


class Unavailable(Exception):
    """Label Studio's venv cannot be built here (no package index): the tests skip with this reason."""


@dataclass
class LabelStudio:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, token: str | None = None) -> httpx.Client:
        auth = {"Authorization": f"Token {token or self.token}"}
        return httpx.Client(base_url=self.url, headers=auth, timeout=30)


@contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / name, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def venv() -> Path:
    """The cached venv with label-studio installed (built on first use)."""
    env = CACHE / f"label-studio-venv-{VERSION}"
    if (env / ".loupe-complete").exists():
        return env
    with _locked(f"label-studio-{VERSION}.lock"):
        if (env / ".loupe-complete").exists():
            return env
        shutil.rmtree(env, ignore_errors=True)
        log = CACHE / f"label-studio-venv-{VERSION}.log"
        with open(log, "wb") as out:
            steps = [
                [sys.executable, "-m", "venv", str(env)],
                [str(env / "bin" / "pip"), "install", "--quiet", f"label-studio=={VERSION}"],
            ]
            for cmd in steps:
                if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                    tail = log.read_text(errors="replace")[-600:]
                    raise Unavailable(f"cannot build Label Studio's venv ({' '.join(cmd[:3])} ...): {tail}")
        (env / ".loupe-complete").write_text(VERSION + "\n")
    return env


def _environment(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOUPE_", "LABEL_STUDIO_", "DJANGO_"))}
    env.update(
        HOME=str(data),
        LABEL_STUDIO_BASE_DATA_DIR=str(data),
        DJANGO_DB="sqlite",
        LABEL_STUDIO_USERNAME=USERNAME,
        LABEL_STUDIO_PASSWORD=PASSWORD,
        LABEL_STUDIO_USER_TOKEN=TOKEN,
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
        LABEL_STUDIO_COLLECT_ANALYTICS="false",
        LABEL_STUDIO_LATEST_VERSION_CHECK="false",
        SENTRY_DSN="",
        FRONTEND_SENTRY_DSN="",
        # Small pages, so that every listing of a project's tasks has to follow its pages.
        TASK_API_PAGE_SIZE_MAX=str(PAGE_SIZE_MAX),
    )
    return env


def start(data: Path, port: int, *, log: Path) -> LabelStudio:
    """Start Label Studio on 127.0.0.1:`port` with `data` as its data dir; wait until healthy."""
    cmd = [str(venv() / "bin" / "label-studio"), "start", "--no-browser", "--internal-host", "127.0.0.1"]
    cmd += ["-p", str(port)]
    out = open(log, "ab")
    proc = subprocess.Popen(
        cmd, env=_environment(data), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    out.close()
    server = LabelStudio(url=f"http://127.0.0.1:{port}", token=TOKEN, process=proc, log=log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Label Studio exited with {proc.returncode}: {_tail(log)}")
        try:
            if httpx.get(f"{server.url}/health/", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop(server)
    # It moves to port+1 when the port is taken, so a silent port means exactly that or a hang.
    raise RuntimeError(f"Label Studio did not answer on port {port} in {START_TIMEOUT_S:.0f} s: {_tail(log)}")


def stop(server: LabelStudio) -> None:
    """Stop the process group started for this server (and nothing else)."""
    if server.process.poll() is not None:
        return
    os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=15)


def migrated_data(port: int) -> Path:
    """The cached, migrated data dir (built by one first start on `port`)."""
    data = CACHE / f"label-studio-data-{VERSION}"
    if (data / ".loupe-migrated").exists():
        return data
    with _locked(f"label-studio-{VERSION}.lock"):
        if (data / ".loupe-migrated").exists():
            return data
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        server = start(data, port, log=CACHE / f"label-studio-data-{VERSION}.log")
        stop(server)
        (data / ".loupe-migrated").write_text(VERSION + "\n")
    return data


def session_server(workdir: Path, port: int) -> LabelStudio:
    """A fresh Label Studio for one test session, from a copy of the migrated data dir."""
    template = migrated_data(port)
    data = workdir / "label-studio-data"
    shutil.copytree(template, data, ignore=shutil.ignore_patterns(".loupe-migrated"))
    return start(data, port, log=workdir / "label-studio.log")


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-1500:]
    except OSError:
        return "(no log)"
