"""The guide's backup of the one-machine shape, run as deploy/README.md writes it.

A real embedded index and SQLite state store are written, archived with the
guide's own shell lines, unpacked into a fresh home after the original is
deleted, and read back: same points, same nearest neighbour, same sources.
The server shapes (Qdrant snapshots, pg_dump) need servers this test does not
start.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.deploy.deployfiles import README

DIM = 16
POINTS = 200
ASSIGNMENT = re.compile(r"^[A-Z_]+=")


def _guide_script() -> tuple[str, str]:
    """The embedded section's shell block, split into its backup and restore halves.

    Variable assignments are left to the caller's environment, and the final
    `loupe serve` is not run.
    """
    section = README.read_text().split("### One machine (embedded)", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    backup, restore = block.split("# restore into a fresh home\n")
    keep = lambda part: "\n".join(  # noqa: E731
        line for line in part.splitlines() if not ASSIGNMENT.match(line) and "loupe serve" not in line
    )
    return keep(backup), keep(restore)


def _settings(home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from service.config import Settings

    for name in [n for n in os.environ if n.startswith("LOUPE_")]:
        monkeypatch.delenv(name)
    return Settings(_env_file=None, home=home)  # type: ignore[call-arg]


def _sh(script: str, *, cwd: Path, **env: Path) -> None:
    assert script.strip(), "the guide's block lost its commands"
    variables = {"PATH": os.environ["PATH"], **{k: str(v) for k, v in env.items()}}
    # The guide names its archive relative to the working directory: keep it in tmp.
    subprocess.run(["sh", "-euc", script], check=True, env=variables, timeout=60, cwd=cwd)


def test_embedded_home_restores_into_a_fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("tar") is None:
        pytest.skip("no tar on this machine")
    from service.index import open_index
    from service.index.base import Point
    from service.state import StateStore

    home = tmp_path / "home"
    home.mkdir()
    settings = _settings(home, monkeypatch)
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((POINTS, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"backup/{n}")) for n in range(POINTS)]
    index = open_index(settings, vector_name="backup-test", dim=DIM)
    index.upsert(
        [
            Point(id=i, vector=v, payload={"source": "photos", "key": f"k{n}"})
            for n, (i, v) in enumerate(zip(ids, vectors, strict=True))
        ]
    )
    index.flush()
    index.close()
    state = StateStore(settings.state_url)
    state.add_source("photos", "local", {"path": "/srv/photos"})
    state.close()

    backup, restore = _guide_script()
    archive = tmp_path / "loupe-home.tar.gz"
    fresh = tmp_path / "restored"
    _sh(backup, cwd=tmp_path, LOUPE_HOME=home, BACKUP=archive)
    shutil.rmtree(home)  # only the archive is left
    _sh(restore, cwd=tmp_path, NEW_HOME=fresh, BACKUP=archive)

    restored = _settings(fresh, monkeypatch)
    index = open_index(restored, vector_name="backup-test", dim=DIM)
    try:
        assert index.count() == POINTS
        hit = index.query(positive=[vectors[42]], limit=1)[0]
        assert hit.id == ids[42] and hit.payload["key"] == "k42"
    finally:
        index.close()
    state = StateStore(restored.state_url)
    try:
        assert state.get_source("photos").config == {"path": "/srv/photos"}
    finally:
        state.close()
