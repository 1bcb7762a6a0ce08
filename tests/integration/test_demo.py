"""`loupe demo` as a new user runs it (a subprocess, the offline model), on a small set: its
example searches and the active-learning loop, each printed number checked against the catalog
it leaves and, for the evaluation, against scikit-learn."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sklearn.metrics import accuracy_score

from service.catalog.catalog import Catalog
from service.client import LocalClient
from service.config import OFFLINE_MODEL, Settings
from service.demo_loop import GROUND_TRUTH, PREDICTIONS, SELECTION

N = 300


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    home = tmp_path_factory.mktemp("demo") / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")}
    env.update(LOUPE_HOME=str(home), LOUPE_MODEL=OFFLINE_MODEL)
    proc = subprocess.run(
        [sys.executable, "-m", "service.cli", "demo", "--no-serve", "--n", str(N)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    print(proc.stdout)
    return proc.stdout, home


@pytest.fixture(scope="module")
def client(demo: tuple[str, Path]) -> Any:
    settings = Settings(home=demo[1], model=OFFLINE_MODEL, pretrained=None, _env_file=None)  # type: ignore[call-arg]
    c = LocalClient(settings)
    yield c
    c.close()


def _all(catalog: Catalog, flt: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    out, cursor = [], None
    while True:
        page, cursor = catalog.list_assets(filter=flt, limit=1000, cursor=cursor)
        out += page
        if cursor is None:
            return out


def _number(pattern: str, text: str) -> list[str]:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} is not in the demo's output:\n{text}"
    return list(found.groups())


def test_the_demo_prints_searches_then_the_loop(demo: tuple[str, Path]) -> None:
    out = demo[0]
    sections = re.findall(r"^== (.+)$", out, flags=re.M)
    assert sections[0] == "text search" and len(sections) == 4 + 5, sections
    assert sections[4].startswith("the active-learning loop on the shapes")
    assert "sync of demo succeeded: 300 seen, 300 added" in out


def test_the_evaluation_printed_is_the_stored_one_and_scikit_learns(
    demo: tuple[str, Path], client: Any
) -> None:
    out, cat = demo[0], client.catalog
    short, matched, acc, macro = _number(
        r"evaluation (\w{8}) on val/test: (\d+) images, accuracy ([\d.]+), macro F1 ([\d.]+)", out
    )
    (ev,) = [e for e in client.list_evaluations(limit=10) if e["id"].startswith(short)]
    assert ev["predictions"] == PREDICTIONS and ev["ground_truth"] == GROUND_TRUTH
    held_out = _all(cat, {"split": {"in": ["val", "test"]}})
    # The ground truth is the generator's class of each shape, on every val/test image.
    truth = [a["labels"][GROUND_TRUTH]["label"] for a in held_out]
    assert truth == [a["metadata"]["shape"] for a in held_out]
    predicted = [a["labels"][PREDICTIONS]["label"] for a in held_out]
    assert int(matched) == ev["counts"]["matched"] == len(held_out) > 30
    assert ev["metrics"]["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert float(acc) == round(ev["metrics"]["accuracy"], 3) and float(macro) == round(
        ev["metrics"]["macro_f1"], 3
    )
    assert 0.5 < ev["metrics"]["accuracy"] < 1.0  # a real model, wrong on some images
    # Each slice printed is one of the stored ones; a field's slices cover every image.
    for field in ("kind", "size"):
        slices = [s for s in ev["slices"] if s["field"] == field]
        assert sum(s["count"] for s in slices) == len(held_out)
        for s in slices:
            line = _number(rf"{field}=({s['value']})\s+(\d+) images\s+accuracy ([\d.]+)", out)
            assert int(line[1]) == s["count"] and float(line[2]) == round(s["metrics"]["accuracy"], 3)
            members = [a for a in held_out if a["metadata"][field] == s["value"]]
            right = [a["labels"][PREDICTIONS]["label"] == a["metadata"]["shape"] for a in members]
            assert s["metrics"]["accuracy"] == pytest.approx(sum(right) / len(right))


def test_duplicates_printed_are_groups_of_look_alikes(demo: tuple[str, Path], client: Any) -> None:
    groups_n, in_groups, distinct = map(
        int,
        _number(r"duplicates: (\d+) groups hold (\d+) images .*; one kept per group leaves (\d+)", demo[0]),
    )
    groups = client.list_duplicates(filter=None, limit=1000)
    assert groups_n == len(groups) > 0
    assert in_groups == sum(len(g["ids"]) for g in groups)
    assert distinct == N - in_groups + groups_n
    # Copies to the model are one shape of one colour (the generator's attributes, unseen by Loupe).
    same = 0
    for g in groups:
        metas = [client.get_asset(i)["metadata"] for i in g["ids"]]
        same += len({(m["shape"], m["color"]) for m in metas}) == 1
    assert same >= 0.9 * len(groups)


def test_outliers_printed_are_the_top_of_the_signal_and_mostly_edge_cases(
    demo: tuple[str, Path], client: Any
) -> None:
    edge, top_n = map(int, _number(r"outliers: (\d+) of the top (\d+) by signals.outlier", demo[0]))
    top, _ = client.catalog.list_assets(
        filter=None, limit=top_n, cursor=None, order_by="signals.outlier", order="desc"
    )
    assert edge == sum(a["metadata"]["kind"] != "normal" for a in top)
    everyone = _all(client.catalog)
    share = sum(a["metadata"]["kind"] != "normal" for a in everyone) / len(everyone)
    assert edge / top_n >= 5 * share  # rare and occluded shapes rank far above their share
    scores = [a["signals"]["outlier"] for a in everyone]
    assert top[0]["signals"]["outlier"] == max(scores)


def test_the_next_batch_is_unlabelled_uncertain_and_exportable(demo: tuple[str, Path], client: Any) -> None:
    batch = r"next batch: (\d+) of (\d+) unlabelled train images, .*: (\d+) rare or occluded"
    count, candidates, edge, median = _number(batch + r", median margin ([\d.]+)", demo[0])
    sel = client.get_selection(SELECTION)
    assert sel["state"] == "succeeded" and int(count) == sel["count"] == 50 == len(set(sel["ids"]))
    assert int(candidates) == sel["counts"]["candidates"]
    chosen = _all(client.catalog, {"selections": SELECTION})
    assert sorted(a["id"] for a in chosen) == sorted(sel["ids"])
    assert all(a["metadata"]["split"] == "train" and GROUND_TRUTH not in a.get("labels", {}) for a in chosen)
    assert int(edge) == sum(a["metadata"]["kind"] != "normal" for a in chosen)
    margins = [a["labels"][PREDICTIONS]["margin"] for a in chosen]
    assert float(median) == round(statistics.median(margins), 3)
    pool = _all(client.catalog, {"split": "train"})
    pool_margins = [
        a["labels"][PREDICTIONS]["margin"] for a in pool if GROUND_TRUTH not in a.get("labels", {})
    ]
    assert len(pool_margins) == sel["counts"]["candidates"]
    assert statistics.median(margins) < statistics.median(pool_margins)  # the model's doubts first
