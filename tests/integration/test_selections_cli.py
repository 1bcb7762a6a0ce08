"""`loupe select` and `loupe selections` against a running server (RemoteClient) and in process
(LocalClient); `loupe export --selection`; messages, not tracebacks, for bad strategies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

LOUPE = [sys.executable, "-m", "service.cli"]
COLOURS = [(230, 20, 20), (20, 230, 20), (20, 20, 230), (230, 230, 20)]


@pytest.fixture
def pictures(tmp_path: Path) -> Path:
    root = tmp_path / "pics"
    root.mkdir()
    rng = np.random.default_rng(1)
    for c, colour in enumerate(COLOURS):
        for j in range(4):
            pixels = np.clip(np.full((16, 16, 3), colour, float) + rng.normal(0, 6, (16, 16, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / f"c{c}_{j}.png")
    return root


def loupe(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*LOUPE, *args], env=env, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"loupe {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def test_select_show_export_and_remove_through_a_server(
    live_server: Any, pictures: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")}
    env["LOUPE_URL"] = live_server.url
    loupe(env, "source", "add", "pics", "--kind", "local", "--path", str(pictures))
    loupe(env, "sync", "pics")
    sel = json.loads(
        loupe(env, "select", "first", "--budget", "4", "--strategy", "diversity", "--json").stdout
    )
    assert sel["state"] == "succeeded" and sel["count"] == 4
    keys = {
        json.loads(loupe(env, "search", "--like", i, "--limit", "1", "--json").stdout)["hits"][0]["asset"][
            "key"
        ][:2]
        for i in sel["ids"]
    }
    assert keys == {"c0", "c1", "c2", "c3"}  # one per colour
    shown = loupe(env, "selections", "show", "first").stdout
    assert "4 of budget 4" in shown and '{"selections": "first"}' in shown
    assert "first" in loupe(env, "selections", "list").stdout
    out = tmp_path / "first.jsonl"
    loupe(env, "export", "--to", "jsonl", "--selection", "first", "--path", str(out))
    assert sorted(json.loads(line)["id"] for line in out.read_text().splitlines()) == sorted(sel["ids"])
    more = loupe(env, "select", "big", "--budget", "100", "--strategy", "diversity:strength=2").stdout
    assert "12 of budget 100" in more and "all 12 were selected" in more  # exported ones left out

    bad = loupe(env, "select", "x", "--budget", "3", "--strategy", "uncertainty:measure=odd", check=False)
    assert bad.returncode != 0 and "measure" in bad.stderr and "Traceback" not in bad.stderr
    bad = loupe(env, "select", "x", "--budget", "0", "--strategy", "diversity", check=False)
    assert bad.returncode != 0 and "budget" in bad.stderr and "Traceback" not in bad.stderr
    bad = loupe(
        env,
        "select",
        "x",
        "--budget",
        "3",
        "--strategy",
        "diversity",
        "--filter",
        '{"source": "none"}',
        check=False,
    )
    assert bad.returncode != 0 and "matches no asset" in bad.stderr and "Traceback" not in bad.stderr
    assert "removed" in loupe(env, "selections", "remove", "first").stdout
    assert "first" not in loupe(env, "selections", "list").stdout


def test_select_in_process(pictures: Path, tmp_path: Path) -> None:
    from service.client import LocalClient
    from service.config import Settings

    settings = Settings(home=tmp_path / "home", model="loupe-tiny", _env_file=None)  # type: ignore[call-arg]
    client = LocalClient(settings)
    try:
        client.add_source("pics", "local", {"path": str(pictures)})
        client.sync("pics", full=False, prune=False, progress=lambda _: None)
        body = {"name": "local", "budget": 3, "strategies": [{"kind": "diversity"}]}
        sel = client.select(body, progress=lambda _: None)
        assert sel["state"] == "succeeded" and sel["count"] == 3
        assert [s["name"] for s in client.list_selections(limit=10)] == ["local"]
        assert client.get_selection("local")["ids"] == sel["ids"]
        client.remove_selection("local")
        assert client.list_selections(limit=10) == []
    finally:
        client.close()
