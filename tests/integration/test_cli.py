"""The `loupe` command as a user runs it: a subprocess, real image files, the offline model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.images import solid, write_bad, write_zoo

LOUPE = [sys.executable, "-m", "service.cli"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")}
    out.update(LOUPE_HOME=str(tmp_path / "home"), LOUPE_MODEL="loupe-tiny")
    return out


def loupe(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*LOUPE, *args], env=env, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"loupe {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    write_zoo(root)
    write_bad(root / "bad")
    (root / "red.jpg.json").write_text(json.dumps({"label": "bike"}))
    return root


def test_add_sync_search_in_process(env, photos):
    out = loupe(
        env, "source", "add", "photos", "--kind", "local", "--path", str(photos), "--exclude", "bad/bomb*"
    )
    assert "added source photos" in out.stdout
    listed = loupe(env, "source", "list").stdout
    assert "photos\tlocal" in listed
    sync = loupe(env, "sync", "photos", "--json", check=False)
    assert sync.returncode == 0, sync.stderr
    job = json.loads(sync.stdout)
    assert job["state"] == "succeeded"
    assert job["counts"]["added"] == 10 and job["counts"]["failed"] == 2
    found = json.loads(loupe(env, "search", "a red square", "--json", "--filter", '{"label": "bike"}').stdout)
    assert [h["asset"]["key"] for h in found["hits"]] == ["red.jpg"]
    like = found["hits"][0]["id"]
    similar = json.loads(loupe(env, "search", "--like", like, "--json", "--limit", "3").stdout)
    assert len(similar["hits"]) == 3 and like not in {h["id"] for h in similar["hits"]}
    by_image = json.loads(
        loupe(env, "search", "--image", str(photos / "grad.bmp"), "--json", "--limit", "1").stdout
    )
    assert by_image["hits"][0]["asset"]["key"] == "grad.bmp"
    again = json.loads(loupe(env, "sync", "photos", "--json").stdout)
    assert again["counts"]["unchanged"] == 10 and again["counts"]["added"] == 0
    readable = loupe(env, "search", "--like", like).stdout
    assert "score" in readable and "red.jpg" not in readable


def test_errors_are_one_line_without_traceback(env, photos, tmp_path):
    cases = [
        (["sync", "nope"], "no source named 'nope'"),
        (["source", "add", "x", "--kind", "local", "--path", str(tmp_path / "absent")], "does not exist"),
        (
            ["source", "add", "x", "--kind", "local", "--path", str(photos), "--bucket", "b"],
            "not a local source option",
        ),
        (["source", "add", "x", "--kind", "ftp"], "valid kinds"),
        (["search", "x", "--filter", "{bad"], "not valid JSON"),
        (["search", "x", "--filter", '{"width": {"between": 1}}'], "width"),
        (["search", "--like", "00000000-0000-0000-0000-000000000000"], "no asset with id"),
        (["search", "--image", str(tmp_path / "none.jpg")], "cannot read"),
    ]
    for args, message in cases:
        proc = loupe(env, *args, check=False)
        assert proc.returncode != 0, args
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") <= 2, proc.stderr


def test_sync_exit_code_when_the_source_fails(env, photos, tmp_path):
    moved = tmp_path / "moved"
    loupe(env, "source", "add", "p", "--kind", "local", "--path", str(photos))
    photos.rename(moved)
    proc = loupe(env, "sync", "p", check=False)
    assert proc.returncode == 1
    assert "failed" in proc.stdout and "does not exist" in proc.stdout


def test_cli_goes_through_a_running_server(env, photos, tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [*LOUPE, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline
            time.sleep(0.2)
        loupe(env, "source", "add", "photos", "--kind", "local", "--path", str(photos), "--exclude", "bad/*")
        job = json.loads(loupe(env, "sync", "photos", "--json").stdout)
        assert job["state"] == "succeeded" and job["counts"]["added"] == 10
        assert httpx.get(f"{url}/api/v1/sources/photos").json()["kind"] == "local"
        hits = json.loads(loupe(env, "search", "a red square", "--json").stdout)["hits"]
        assert len(hits) == 10
        # A second process opening the same data directly gets a clear error, not a broken index.
        (Path(env["LOUPE_HOME"]) / "server.json").rename(tmp_path / "hidden.json")
        proc = loupe(env, "source", "list", check=False)
        assert proc.returncode != 0 and "another process" in proc.stderr, proc.stderr
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _added_so_far(state: Path, source: str) -> int:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=1) as db:
            rows = db.execute("SELECT counts FROM jobs WHERE source = ?", (source,)).fetchall()
    except sqlite3.Error:
        return 0
    return max((json.loads(r[0] or "{}").get("added", 0) for r in rows), default=0)


def test_sync_killed_midway_then_rerun_completes(env, tmp_path):
    root = tmp_path / "many"
    root.mkdir()
    for i in range(400):
        solid((i % 256, (i * 7) % 256, (i * 13) % 256), (96, 96)).save(root / f"img{i:04d}.png")
    loupe(env, "source", "add", "many", "--kind", "local", "--path", str(root))
    env_slow = env | {"LOUPE_INGEST__BATCH_SIZE": "8"}
    proc = subprocess.Popen(
        [*LOUPE, "sync", "many"],
        env=env_slow,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill it once it has committed some batches (not after a fixed delay: start-up time varies).
    state = Path(env["LOUPE_HOME"]) / "state.db"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if _added_so_far(state, "many") >= 16:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    job = json.loads(loupe(env, "sync", "many", "--json").stdout)
    assert job["state"] == "succeeded", job
    assert job["counts"]["added"] + job["counts"]["updated"] + job["counts"]["unchanged"] == 400
    assert job["counts"]["unchanged"] > 0, "the killed sync wrote nothing before it died"
    final = json.loads(loupe(env, "sync", "many", "--json").stdout)
    assert final["counts"]["unchanged"] == 400
