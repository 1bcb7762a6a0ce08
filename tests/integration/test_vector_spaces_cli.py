"""`loupe spaces` and `loupe search --space` as a user runs them, without a server (LocalClient).

The commands run through `service.cli.main` in this process (each call opens and closes the
catalog as a separate `loupe` run does): eleven subprocesses would spend most of a minute importing
torch. test_cli.py covers the entry point itself.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from service.cli import main
from tests.images import gradient


@dataclass
class Run:
    stdout: str
    stderr: str


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> object:
    for name in [k for k in os.environ if k.startswith("LOUPE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("LOUPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LOUPE_MODEL", "loupe-tiny")
    return capsys


def loupe(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> Run:
    capsys.readouterr()
    try:
        got = main(list(args))
    except SystemExit as exit:  # how the CLI ends on an error, as `loupe` would
        got = exit.code
    out = capsys.readouterr()
    assert got == code, f"loupe {' '.join(args)}: {got}\n{out.out}\n{out.err}"
    return Run(out.out, out.err)


def test_spaces_from_the_command_line(env: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        gradient(50 + i).save(photos / f"g{i}.png")
    loupe(env, "source", "add", "photos", "--kind", "local", "--path", str(photos))
    loupe(env, "sync", "photos")
    assert "added mine" in loupe(env, "spaces", "add", "mine", "--dim", "3", "--distance", "euclid").stdout
    rows = [{"source": "photos", "key": f"g{i}.png", "vector": [float(i), 0.0, 0.0]} for i in range(4)]
    rows.append({"source": "photos", "key": "nope.png", "vector": [0.0, 0.0, 0.0]})
    (tmp_path / "v.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    out = loupe(env, "spaces", "import", "mine", str(tmp_path / "v.jsonl")).stdout
    assert "5 received, 4 imported, 1 unknown asset(s)" in out and "line 5: no asset" in out
    listed = json.loads(loupe(env, "spaces", "list", "--json").stdout)
    assert [(s["name"], s["count"]) for s in listed][1:] == [("mine", 4)] and listed[0]["encoder"]
    hits = json.loads(loupe(env, "search", "--vector", "[2.2, 0, 0]", "--space", "mine", "--json").stdout)[
        "hits"
    ]
    assert [h["asset"]["key"] for h in hits] == ["g2.png", "g3.png", "g1.png", "g0.png"]
    # Bad input is a message, not a traceback.
    (tmp_path / "bad.jsonl").write_text(json.dumps({"source": "photos", "key": "g0.png", "vector": [1.0]}))
    err = loupe(env, "spaces", "import", "mine", str(tmp_path / "bad.jsonl"), code=1).stderr
    assert err.startswith("loupe: error: line 1: vector: has 1 components") and "Traceback" not in err
    err = loupe(env, "search", "red", "--space", "mine", code=1).stderr
    assert "encoder's space" in err and "Traceback" not in err
    encoder = listed[0]["name"]
    assert "encoder's space" in loupe(env, "spaces", "remove", encoder, code=1).stderr
    loupe(env, "spaces", "remove", "mine")
    assert len(json.loads(loupe(env, "spaces", "list", "--json").stdout)) == 1
