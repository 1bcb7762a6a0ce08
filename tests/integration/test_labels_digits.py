"""A real labelled set: scikit-learn's bundled digits as PNG files, labelled by file name through
the `loupe labels` command (against a running server, so through RemoteClient), predictions of a
scikit-learn model with its probability vectors; and the in-process client (LocalClient)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from scipy.stats import entropy as scipy_entropy
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

N = 150
LOUPE = [sys.executable, "-m", "service.cli"]


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    root = tmp_path_factory.mktemp("digits")
    (root / "images").mkdir()
    data = load_digits()
    for i in range(N):
        pixels = (data.images[i] * (255 / 16)).astype(np.uint8)
        Image.fromarray(pixels).resize((32, 32), Image.Resampling.NEAREST).save(
            root / "images" / f"d{i:04d}.png"
        )
    return root, data


def loupe(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*LOUPE, *args], env=env, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"loupe {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@pytest.fixture
def env(live_server: Any) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")}
    out["LOUPE_URL"] = live_server.url  # the CLI talks to the server: no model to load per command
    return out


def test_digits_labelled_by_file_name_through_the_cli(
    env: dict[str, str], digits: tuple[Path, Any], tmp_path: Path
) -> None:
    root, data = digits
    loupe(env, "source", "add", "digits", "--kind", "local", "--path", str(root))
    assert json.loads(loupe(env, "sync", "digits", "--json").stdout)["counts"]["added"] == N
    truth = tmp_path / "truth.csv"
    truth.write_text("file,label\n" + "".join(f"images/d{i:04d}.png,{data.target[i]}\n" for i in range(N)))
    job = json.loads(
        loupe(
            env,
            "labels",
            "import",
            "gt",
            str(truth),
            "--role",
            "ground_truth",
            "--task",
            "classification",
            "--source",
            "digits",
            "--json",
        ).stdout
    )
    assert job["state"] == "succeeded" and job["counts"]["imported"] == N
    shown = json.loads(loupe(env, "labels", "show", "gt", "--json").stdout)
    assert shown["classes"] == sorted(str(d) for d in set(data.target[:N])) and shown["assets"] == N
    assert "gt" in loupe(env, "labels", "list").stdout

    # A model's probabilities, written as Loupe JSONL by key; the uncertainty fields must be the
    # ones computed from predict_proba directly.
    model = LogisticRegression(max_iter=2000).fit(data.data[N:], data.target[N:])
    proba = model.predict_proba(data.data[:N])
    preds = tmp_path / "preds.jsonl"
    with preds.open("w") as fh:
        for i in range(N):
            scores = {str(c): float(p) for c, p in zip(model.classes_, proba[i], strict=True)}
            fh.write(json.dumps({"source": "digits", "key": f"images/d{i:04d}.png", "scores": scores}) + "\n")
    job = json.loads(
        loupe(
            env,
            "labels",
            "import",
            "pred",
            str(preds),
            "--role",
            "predictions",
            "--task",
            "classification",
            "--model",
            "logreg",
            "--json",
        ).stdout
    )
    assert job["counts"]["imported"] == N
    flt = '{"labels.pred.entropy": {"gte": 0}}'
    found = json.loads(loupe(env, "search", "a digit", "--filter", flt, "--limit", "200", "--json").stdout)[
        "hits"
    ]
    by_key = {h["asset"]["key"]: h["asset"]["labels"] for h in found}
    assert len(by_key) == N
    for key, labels in by_key.items():
        i = int(key[len("images/d") : -len(".png")])
        p = np.sort(proba[i])[::-1]
        pred = labels["pred"]
        assert pred["label"] == str(model.classes_[int(np.argmax(proba[i]))])
        assert pred["least_confidence"] == pytest.approx(1 - p[0], abs=1e-9)
        assert pred["margin"] == pytest.approx(p[0] - p[1], abs=1e-9)
        assert pred["entropy"] == pytest.approx(
            scipy_entropy(proba[i]) / math.log(len(model.classes_)), abs=1e-9
        )
        assert labels["gt"]["label"] == str(data.target[i])

    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\nimages/d0000.png,0\nimages/d0001.png\n")
    proc = loupe(env, "labels", "import", "gt", str(bad), "--source", "digits", check=False)
    assert proc.returncode == 1 and "line 3" in proc.stderr and "Traceback" not in proc.stderr
    proc = loupe(env, "labels", "import", "new", str(bad), check=False)
    assert proc.returncode == 2 and "--role and --task" in proc.stderr
    assert "removed" in loupe(env, "labels", "remove", "pred").stdout
    assert "pred" not in loupe(env, "labels", "list").stdout


def test_the_in_process_client_creates_imports_and_removes(digits: tuple[Path, Any], tmp_path: Path) -> None:
    from service.client import LocalClient
    from service.config import Settings

    root, data = digits
    settings = Settings(home=tmp_path / "home", model="loupe-tiny", _env_file=None)  # type: ignore[call-arg]
    client = LocalClient(settings)
    try:
        client.add_source("digits", "local", {"path": str(root)})
        client.sync("digits", full=False, prune=False, progress=lambda _: None)
        client.create_labelset({"name": "gt", "role": "ground_truth", "task": "classification"})
        truth = tmp_path / "truth.csv"
        truth.write_text(
            "file,label\n" + "".join(f"images/d{i:04d}.png,{data.target[i]}\n" for i in range(N))
        )
        job = client.import_labels("gt", file=truth, fmt="csv", source="digits", body=None)
        assert job["state"] == "succeeded" and job["counts"]["imported"] == N
        assert [s["assets"] for s in client.list_labelsets()] == [N]
        job = client.import_labels("gt", file=None, fmt=None, source=None, body={"from_field": "nothing"})
        assert job["state"] == "succeeded" and job["counts"]["imported"] == 0
        client.remove_labelset("gt")
        assert client.list_labelsets() == []
    finally:
        client.close()
