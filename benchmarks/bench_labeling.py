"""Labeling functions (issue 16): propagation's precision against its target, and speed at scale.

Accuracy: on scikit-learn's `digits` (1,797 real labelled 8x8 images; their 64 pixel values,
L2-normalised, are the catalog's vectors through a model-free encoder, no network) and on the
synthetic shapes (synced through the real pipeline with loupe-tiny, the offline CLIP the demo
uses; the label is the shape), 20 % of the assets carry ground truth;
propagation at each target precision labels the other 80 %, whose hidden truth measures it.
Speed: propagation over N assets (20 % labelled) and one rule (2 examples) over N assets, on
clustered random vectors, timed through the same job code the API runs (`run_now`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import Profile, Table, loadavg, report, warm_job_kinds

TARGETS = (0.8, 0.9, 0.95)
LABELLED = 0.2
SEEDS = (7, 11, 23)  # draws of the labelled 20 %: a precision over ~1,400 assets moves by ~0.01


class VectorEncoder:
    """A model-free encoder: the catalog's vectors are given, never computed from images."""

    model_name = "given"
    pretrained = "vectors"
    identity = "given/vectors"
    image_size = 32

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def encode_text(self, text: str) -> np.ndarray:
        raise NotImplementedError("the vectors are given; a text has none")


def catalog_of(home: Path, vectors: np.ndarray, labels: list[str] | None) -> tuple[Any, list[str]]:
    from service.catalog.catalog import Catalog
    from service.config import Settings
    from service.index.base import Point

    catalog = Catalog(Settings(home=home, _env_file=None), encoder=VectorEncoder(vectors.shape[1]))  # type: ignore[call-arg]
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"lf-{i}")) for i in range(len(vectors))]
    for start in range(0, len(ids), 2000):
        stop = min(len(ids), start + 2000)
        catalog.index.upsert(
            [
                Point(
                    ids[i], vectors[i].astype(np.float32), {"source": "bench", "key": f"{i}", "status": "ok"}
                )
                for i in range(start, stop)
            ]
        )
    catalog.index.flush()
    catalog.index.optimize()
    return catalog, ids


def ground_truth(catalog: Any, ids: list[str], labels: list[str], *, share: float, seed: int) -> set[int]:
    """Give a random `share` of the assets their label in set `gt`; returns their positions."""
    from service.labels import payload, scores
    from service.labels.schemas import LabelSetCreate
    from service.labels.store import LabelSetStore

    rng = np.random.default_rng(seed)
    picked = rng.permutation(len(ids))[: int(share * len(ids))]
    LabelSetStore(catalog.state).create(LabelSetCreate(name="gt", role="ground_truth", task="classification"))
    payload.ensure_indexes(catalog.index, "gt")
    items = [
        (ids[i], {"label": labels[i], "score": None, "imported_at": "2026-01-01T00:00:00Z"}) for i in picked
    ]
    scores.write(catalog.state, catalog.index, "gt", items)
    catalog.index.flush()
    return {int(i) for i in picked}


def apply(catalog: Any, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    from service.labelfns.runner import run_now
    from service.labelfns.schemas import LabelingFunctionCreate
    from service.labelfns.store import run_public

    t0 = time.perf_counter()
    row = run_now(catalog, LabelingFunctionCreate.model_validate(body))
    seconds = time.perf_counter() - t0
    run = run_public(row)
    assert run.state == "succeeded", run
    return seconds, run.model_dump()


def written(catalog: Any, name: str) -> dict[str, str]:
    from service.index.base import Condition, Filter

    out: dict[str, str] = {}
    cursor = None
    flt = Filter(must=[Condition(key=f"labels.{name}.label", exists=True)])
    while True:
        recs, cursor = catalog.index.scroll(filter=flt, limit=2048, cursor=cursor, fields=["labels"])
        out.update({r.id: r.payload["labels"][name]["label"] for r in recs})
        if cursor is None:
            return out


def digits_data() -> tuple[np.ndarray, list[str]]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data.astype(np.float32), [str(t) for t in d.target]


def shapes_data(root: Path, n: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The synthetic shapes synced through the real pipeline with loupe-tiny (the offline CLIP the
    demo uses, trained on other shapes of the same generator); their vectors and shapes.

    The stub encoder's 4x4 colour layout says nothing about a shape: no threshold reached even
    0.8 on it, so these are the vectors a user of the demo gets. Returns each asset's sidecar."""
    from service.catalog.catalog import Catalog
    from service.config import OFFLINE_MODEL, Settings
    from service.synth import write_dataset

    write_dataset(root / "shapes", n, seed=16, size=64, edge_cases=False, extra_metadata=False)
    settings = Settings(home=root / "shapes-home", model=OFFLINE_MODEL, pretrained=None, _env_file=None)  # type: ignore[call-arg]
    catalog = Catalog(settings)
    try:
        catalog.add_source("shapes", "local", {"path": str(root / "shapes")})
        assert catalog.sync("shapes").state == "succeeded"
        vectors, labels, cursor = [], [], None
        while True:
            recs, cursor = catalog.index.scroll(limit=1024, cursor=cursor, with_vectors=True)
            for r in recs:
                vectors.append(r.vector)
                labels.append(r.payload["meta"])
            if cursor is None:
                break
    finally:
        catalog.close()
    return np.stack(vectors), labels


def one_draw(
    home: Path, vectors: np.ndarray, labels: list[str], *, target: float, seed: int
) -> dict[str, Any]:
    """Propagation from a random 20 % at `target`, measured on the hidden truth of the other 80 %."""
    catalog, ids = catalog_of(home, vectors, labels)
    try:
        known = ground_truth(catalog, ids, labels, share=LABELLED, seed=seed)
        seconds, run = apply(
            catalog, {"name": "spread", "into": "auto", "propagate_from": "gt", "target_precision": target}
        )
        got = written(catalog, "auto")
    finally:
        catalog.close()
    held = [i for i in range(len(ids)) if i not in known]
    labelled = [i for i in held if ids[i] in got]
    right = sum(got[ids[i]] == labels[i] for i in labelled)
    return {
        "threshold": run["threshold"],
        "estimated": run["estimated_precision"],
        "estimated_coverage": run["estimated_coverage"],
        "measured": right / len(labelled) if labelled else float("nan"),
        "coverage": len(labelled) / len(held),
        "seconds": seconds,
    }


def accuracy(root: Path, name: str, vectors: np.ndarray, labels: list[str], table: Table) -> None:
    """One row per target: the mean over `SEEDS` draws of the labelled 20 %, and the worst draw."""
    for target in TARGETS:
        home = root / name.replace(": ", "-")
        draws = [
            one_draw(home / f"{target}-{seed}", vectors, labels, target=target, seed=seed) for seed in SEEDS
        ]
        mean = {k: float(np.nanmean([np.nan if d[k] is None else d[k] for d in draws])) for k in draws[0]}
        measured = [d["measured"] for d in draws]
        table.add(
            name,
            len(vectors),
            target,
            mean["threshold"],
            mean["estimated"],
            mean["measured"],
            f"{min(measured):.3f} - {max(measured):.3f}",
            mean["measured"] - target,
            mean["estimated_coverage"],
            mean["coverage"],
            f"{mean['seconds']:.1f} s",
        )


def clustered(n: int, dim: int, *, classes: int, seed: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    which = rng.integers(0, classes, n)
    return (centres[which] + rng.normal(scale=0.8, size=(n, dim))).astype(np.float32), [
        f"c{c}" for c in which
    ]


def speed(
    root: Path, profile: Profile, table: Table, *, n_prop: int | None = None, n_rule: int | None = None
) -> None:
    warm_job_kinds()  # as a running server has them: the first job would time the imports
    dim = 64
    n_prop = n_prop or profile.pick(20_000, 100_000)
    vectors, labels = clustered(n_prop, dim, classes=10, seed=1)
    catalog, ids = catalog_of(root / "speed-prop", vectors, labels)
    try:
        ground_truth(catalog, ids, labels, share=LABELLED, seed=2)
        seconds, run = apply(
            catalog, {"name": "p", "into": "p_auto", "propagate_from": "gt", "target_precision": 0.95}
        )
        table.add(
            "propagation (k=10, 20 % labelled)",
            n_prop,
            f"{seconds:.1f} s",
            f"{seconds * 100_000 / n_prop:.0f} s",
            "<= 120 s",
            run["labeled"],
        )
    finally:
        catalog.close()
    n_rule = n_rule or profile.pick(100_000, 1_000_000)
    vectors, labels = clustered(n_rule, dim, classes=10, seed=3)
    catalog, ids = catalog_of(root / "speed-rule", vectors, labels)
    try:
        like = [ids[i] for i in range(n_rule) if labels[i] == "c0"][:2]
        seconds, run = apply(
            catalog,
            {"name": "r", "into": "r_auto", "rules": [{"label": "c0", "like": like}], "threshold": 0.3},
        )
        table.add(
            "one rule (2 examples)",
            n_rule,
            f"{seconds:.1f} s",
            f"{seconds * 1_000_000 / n_rule:.0f} s (1M)",
            "<= 300 s (1M)",
            run["labeled"],
        )
    finally:
        catalog.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--full", action="store_true")
    p.add_argument("--part", choices=("all", "accuracy", "speed"), default="all")
    p.add_argument("--prop-assets", type=int, help="assets of the propagation timing (quick 20k, full 100k)")
    p.add_argument("--rule-assets", type=int, help="assets of the rule timing (quick 100k, full 1M)")
    args = p.parse_args(argv)
    profile = Profile("full" if args.full else "quick")
    started = loadavg()
    tables = []
    with tempfile.TemporaryDirectory(prefix="bench-labeling-") as tmp:
        root = Path(tmp)
        if args.part in ("all", "accuracy"):
            acc = Table(
                "propagation: target precision vs precision measured on the held-out 80 %",
                [
                    "data",
                    "assets",
                    "target",
                    "threshold",
                    "estimated precision",
                    "measured precision",
                    "measured (range)",
                    "measured - target",
                    "estimated coverage",
                    "measured coverage",
                    "time",
                ],
            )
            acc.notes.append(
                "digits: the 64 pixel values as vectors (a model-free encoder); shapes: loupe-tiny's "
                "vectors, labelled by the generator's shape, or its size (small, medium, large)"
            )
            acc.notes.append(
                "20 % of the assets carry ground truth; the threshold is chosen by 5-fold CV on them; "
                f"means over {len(SEEDS)} random draws of that 20 % (range: the draws' measured precision)"
            )
            acc.notes.append(
                "a target below the precision of labelling everything gets the lowest threshold (every "
                "asset labelled): its measured precision is above the target, not a miss"
            )
            vectors, labels = digits_data()
            accuracy(root, "digits", vectors, labels, acc)
            vectors, meta = shapes_data(root, profile.pick(1000, 3000))
            # The shape is easy for loupe-tiny (labelling everything is ~98 % right); the size is
            # not (~88 %), so there the threshold has to bind to reach a target.
            for attribute in ("shape", "size"):
                labels = [str(m[attribute]) for m in meta]
                accuracy(root, f"shapes: {attribute}", vectors, labels, acc)
            tables.append(acc)
        if args.part in ("all", "speed"):
            sp = Table(
                "labeling functions: time on 2 cores",
                ["run", "assets", "time", "projected", "target", "labelled"],
            )
            speed(root, profile, sp, n_prop=args.prop_assets, n_rule=args.rule_assets)
            tables.append(sp)
    report("bench_labeling", profile, tables, started_load=started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
