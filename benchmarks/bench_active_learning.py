"""The proof that selections label less data (issue 15): the active-learning loop through Loupe's REST API.

Per dataset, strategy and seed, against a live in-process server (as the tests run one):
start from a small random labelled seed (imported as ground truth over REST), train
scikit-learn's LogisticRegression on the labelled assets' catalog vectors, score a held-out
test set, upload the model's class probabilities as a predictions label set (REST), ask
Loupe for the next batch (POST /selections, excluding what is labelled), reveal the batch's
true labels (REST import into the ground-truth set), repeat up to the budget. `random` is
the baseline: the same loop with the batch drawn uniformly from the unlabelled assets.

Datasets and their vectors (say which, since the vectors decide what diversity means):
* digits: scikit-learn's bundled 8x8 digits, written as 32x32 PNGs and synced through the
  real pipeline (decode, preprocess, upsert) with PixelEncoder below, which embeds each
  decoded image as its own 8x8 grey pixels: the catalog's vectors are the digits' pixel
  features (L2-normalised). loupe-tiny knows shapes, not digits, so its vectors would not
  mean anything here; the colour layout of the tests' FakeEncoder would mean even less.
* shapes: Loupe's synthetic shapes (service.synth), synced with the shipped loupe-tiny
  model; the classifier learns the `shape` attribute from loupe-tiny's vectors.

The share of labels saved: random's mean accuracy at the full budget is the bar; a
strategy's labels needed is the first point (linearly interpolated) where its mean curve
reaches that bar; saved = 1 - needed / budget.

    python -m benchmarks.bench_active_learning [--full] [--datasets digits,shapes]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from benchmarks.common import BENCH_DIR, Profile, Table, loadavg, report
from service.catalog.catalog import Catalog
from service.config import Settings
from service.synth import write_dataset
from tests.conftest import LiveServer

STRATEGIES: dict[str, list[dict[str, Any]] | None] = {
    "random": None,
    "uncertainty (margin)": [{"kind": "uncertainty", "predictions": "PRED", "measure": "margin"}],
    "uncertainty (entropy)": [{"kind": "uncertainty", "predictions": "PRED", "measure": "entropy"}],
    # The exact top N by uncertainty: the default spread of a batch turned off.
    "margin top N": [
        {"kind": "uncertainty", "predictions": "PRED", "measure": "margin"},
        {"kind": "diversity", "strength": 0.0},
    ],
    "entropy top N": [
        {"kind": "uncertainty", "predictions": "PRED", "measure": "entropy"},
        {"kind": "diversity", "strength": 0.0},
    ],
    "diversity": [{"kind": "diversity"}],
    "margin + diversity": [
        {"kind": "uncertainty", "predictions": "PRED", "measure": "margin"},
        {"kind": "diversity", "strength": 1.0},
    ],
    "entropy + diversity": [
        {"kind": "uncertainty", "predictions": "PRED", "measure": "entropy"},
        {"kind": "diversity", "strength": 1.0},
    ],
}


class PixelEncoder:
    """Embeds an image as its own 8x8 grey pixels (0-16, as sklearn's digits features)."""

    model_name = "pixels"
    pretrained = "8x8-grey"
    identity = "pixels/8x8-grey"
    image_size = 32
    dim = 64

    def prepare(self, image: Image.Image) -> np.ndarray:
        small = image.convert("L").resize((8, 8), Image.Resampling.BOX)
        return np.asarray(small, dtype=np.float32).reshape(-1) * (16.0 / 255.0) + 1e-3

    def encode_prepared(self, items: Sequence[np.ndarray]) -> np.ndarray:
        arr = np.stack(list(items)).astype(np.float32)
        return arr / np.linalg.norm(arr, axis=1, keepdims=True)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.encode_prepared([self.prepare(im) for im in images])

    def encode_text(self, text: str) -> np.ndarray:
        raise NotImplementedError("pixel vectors have no text side")


@dataclass
class World:
    """One dataset in a live catalog: pool asset ids, their labels and vectors, and a test set."""

    name: str
    client: httpx.Client
    ids: list[str]
    labels: dict[str, str]
    vectors: dict[str, np.ndarray]
    test_x: np.ndarray
    test_y: np.ndarray
    seed_size: int
    batch: int
    budget: int


def _pool(
    catalog: Catalog, client: httpx.Client, label_of: Callable[[str], str]
) -> tuple[list[str], dict[str, str], dict[str, np.ndarray]]:
    assets, cursor = [], None
    while True:
        page = client.get("/assets", params={"limit": 1000, **({"cursor": cursor} if cursor else {})}).json()
        assets += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    ids = sorted(a["id"] for a in assets)
    labels = {a["id"]: label_of(a["key"]) for a in assets}
    # The classifier trains on the catalog's own vectors (read from the in-process index: the
    # REST API does not serve vectors).
    recs = catalog.index.retrieve(ids, with_vectors=True)
    return ids, labels, {r.id: np.asarray(r.vector, dtype=np.float32) for r in recs}


def wait(client: httpx.Client, path: str, resource: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + 1800
    while resource["state"] in ("queued", "running"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not finish: {resource}")
        time.sleep(0.02)
        resp = client.get(path)
        if resp.status_code >= 500:  # the state store busy (a loaded machine): ask again
            time.sleep(0.5)
            continue
        if resp.status_code != 200:
            raise RuntimeError(f"GET {path}: {resp.status_code} {resp.text}")
        resource = resp.json()
    if resource["state"] != "succeeded":
        raise RuntimeError(f"{path} ended {resource['state']}: {resource}")
    return resource


def post_annotations(client: httpx.Client, name: str, annotations: list[dict[str, Any]]) -> None:
    resp = client.post(f"/labelsets/{name}/annotations", json={"format": "loupe", "annotations": annotations})
    resp.raise_for_status()
    wait(client, f"/jobs/{resp.json()['id']}", resp.json())


def create_set(client: httpx.Client, name: str, role: str) -> None:
    client.delete(f"/labelsets/{name}")
    client.post("/labelsets", json={"name": name, "role": role, "task": "classification"}).raise_for_status()


def run_loop(world: World, strategy: str, seed: int) -> list[tuple[int, float]]:
    """Accuracy on the test set after each round, against the number of labels used."""
    client, rng = world.client, np.random.default_rng(seed)
    tag = f"{world.name}-{seed}-{abs(hash(strategy)) % 10_000}"
    gt, pred = f"gt-{tag}", f"pred-{tag}"
    create_set(client, gt, "ground_truth")
    plan = STRATEGIES[strategy]
    if plan is not None:
        create_set(client, pred, "predictions")
    labelled = [world.ids[int(i)] for i in rng.choice(len(world.ids), world.seed_size, replace=False)]
    post_annotations(client, gt, [{"asset_id": i, "label": world.labels[i]} for i in labelled])
    curve: list[tuple[int, float]] = []
    round_ = 0
    while True:
        x = np.stack([world.vectors[i] for i in labelled])
        y = np.asarray([world.labels[i] for i in labelled])
        model = LogisticRegression(max_iter=2000, C=10.0).fit(x, y)
        curve.append((len(labelled), float((model.predict(world.test_x) == world.test_y).mean())))
        if len(labelled) >= world.budget:
            break
        take = min(world.batch, world.budget - len(labelled))
        done = set(labelled)
        if plan is None:
            rest = [i for i in world.ids if i not in done]
            batch = [rest[int(i)] for i in rng.choice(len(rest), take, replace=False)]
        else:
            rest = [i for i in world.ids if i not in done]
            proba = model.predict_proba(np.stack([world.vectors[i] for i in rest]))
            classes = [str(c) for c in model.classes_]
            post_annotations(
                client,
                pred,
                [
                    {"asset_id": i, "scores": dict(zip(classes, map(float, p), strict=True))}
                    for i, p in zip(rest, proba, strict=True)
                ],
            )
            name = f"{tag}-r{round_}"
            strategies = json.loads(json.dumps(plan).replace('"PRED"', json.dumps(pred)))
            body = {
                "name": name,
                "budget": take,
                "strategies": strategies,
                "exclude_labeled": gt,
                "include_selected": True,
            }
            resp = client.post("/selections", json=body)
            if resp.status_code != 202:
                raise RuntimeError(f"POST /selections: {resp.status_code} {resp.text}")
            batch = wait(client, f"/selections/{name}", resp.json())["ids"]
            client.delete(f"/selections/{name}")
        post_annotations(client, gt, [{"asset_id": i, "label": world.labels[i]} for i in batch])
        labelled += batch
        round_ += 1
    client.delete(f"/labelsets/{gt}")
    if plan is not None:
        client.delete(f"/labelsets/{pred}")
    return curve


def labels_needed(xs: np.ndarray, ys: np.ndarray, bar: float) -> float | None:
    """The first labels count (interpolated) at which the curve reaches `bar`."""
    for k in range(len(xs)):
        if ys[k] >= bar:
            if k == 0:
                return float(xs[0])
            x0, x1, y0, y1 = xs[k - 1], xs[k], ys[k - 1], ys[k]
            return float(x0 + (bar - y0) * (x1 - x0) / (y1 - y0))
    return None


def evaluate(world: World, seeds: int, save: Path | None = None) -> dict[str, Any]:
    """Every strategy's curves over `seeds` seeds (and, with `save`, one JSON file per strategy)."""
    out: dict[str, Any] = {
        "name": world.name,
        "pool": len(world.ids),
        "test": len(world.test_y),
        "seed_size": world.seed_size,
        "batch": world.batch,
        "budget": world.budget,
        "curves": {},
    }
    for strategy in STRATEGIES:
        t0 = time.monotonic()
        runs = [run_loop(world, strategy, seed) for seed in range(seeds)]
        acc = [[a for _, a in run] for run in runs]
        out["curves"][strategy] = {
            "xs": [n for n, _ in runs[0]],
            "acc": acc,
            "s_per_run": (time.monotonic() - t0) / seeds,
        }
        print(f"  {world.name} {strategy}: final {np.mean([a[-1] for a in acc]):.3f}", flush=True)
        if save is not None:
            one = {**out, "curves": {strategy: out["curves"][strategy]}}
            (save / f"{world.name}--{strategy.replace(' ', '_')}.json").write_text(json.dumps(one))
    return out


def merge(saved: Sequence[Path]) -> list[dict[str, Any]]:
    """Per dataset, the curves of every saved strategy (runs split over processes)."""
    worlds: dict[str, dict[str, Any]] = {}
    for path in sorted(saved):
        one = json.loads(path.read_text())
        world = worlds.setdefault(one["name"], {**one, "curves": {}})
        world["curves"].update(one["curves"])
    for world in worlds.values():  # the order of STRATEGIES, random first
        order = [s for s in STRATEGIES if s in world["curves"]]
        world["curves"] = {s: world["curves"][s] for s in order}
    return [worlds[n] for n in ("digits", "shapes") if n in worlds]


def tabulate(result: dict[str, Any], tables: list[Table], plot: dict[str, Any]) -> None:
    name, budget = result["name"], result["budget"]
    curves = {s: np.asarray(c["acc"], dtype=np.float64) for s, c in result["curves"].items()}
    if "random" not in curves:
        raise SystemExit(f"{name}: no random run to compare with")
    xs = np.asarray(result["curves"]["random"]["xs"], dtype=np.float64)
    seeds = len(curves["random"])
    bar = float(curves["random"][:, -1].mean())
    shown = [k for k in range(len(xs)) if k % max(1, len(xs) // 8) == 0 or k == len(xs) - 1]
    curve_table = Table(
        f"{name}: test accuracy (mean ± std over {seeds} seeds) against labels used",
        ["strategy", *[str(int(xs[k])) for k in shown]],
    )
    summary = Table(
        f"{name}: labels needed to reach random's accuracy at the full budget ({budget} labels: {bar:.3f})",
        [
            "strategy",
            "labels needed",
            "labels saved",
            "mean accuracy gap vs random (curve)",
            "seed spread (std of gap)",
            "worse than random beyond seed noise",
            "s per run",
        ],
    )
    for strategy, acc in curves.items():
        mean, std = acc.mean(axis=0), acc.std(axis=0)
        curve_table.add(strategy, *[f"{mean[k]:.3f} ± {std[k]:.3f}" for k in shown])
        needed = labels_needed(xs, mean, bar)
        # Per seed (the same labelled seed for every strategy): the mean gap over the curve.
        gap = (acc - curves["random"]).mean(axis=1)
        worse = gap.mean() + 2 * gap.std(ddof=1) / np.sqrt(len(gap)) < 0 if len(gap) > 1 else False
        summary.add(
            strategy,
            "not reached" if needed is None else round(needed),
            "-" if needed is None else f"{100 * (1 - needed / budget):.0f} %",
            f"{gap.mean():+.3f}",
            f"{gap.std(ddof=1) if len(gap) > 1 else 0.0:.3f}",
            "-" if strategy == "random" else ("yes" if worse else "no"),
            round(result["curves"][strategy]["s_per_run"], 1),
        )
        plot.setdefault(name, {})[strategy] = (xs, mean, std)
    summary.notes.append(
        f"pool {result['pool']} assets, held-out test set {result['test']}; seed {result['seed_size']} "
        "random "
        f"labels, then batches of {result['batch']}; classifier LogisticRegression(C=10) on the catalog's "
        "vectors; 'worse beyond seed noise' = the mean gap plus two standard errors is below 0"
    )
    summary.notes.append(
        "uncertainty (margin / entropy): the API's default for an uncertainty batch, the most uncertain "
        "first and the rest spread within the batch (service.selections.plan.BATCH_SPREAD); "
        "'top N': the exact top N by that measure (diversity strength 0); '+ diversity': k-centre "
        "seeded with what is labelled, times the uncertainty"
    )
    tables += [summary, curve_table]


def draw(plot: dict[str, Any], path: Path) -> str:
    """The curves as a PNG: matplotlib if installed, else drawn with Pillow."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _draw_pillow(plot, path)
    fig, axes = plt.subplots(1, len(plot), figsize=(6 * len(plot), 4.5), squeeze=False)
    for ax, (name, curves) in zip(axes[0], plot.items(), strict=True):
        for strategy, (xs, mean, std) in curves.items():
            ax.plot(
                xs,
                mean,
                label=strategy,
                lw=2 if strategy != "random" else 2.5,
                ls="--" if strategy == "random" else "-",
            )
            ax.fill_between(xs, mean - std, mean + std, alpha=0.15)
        ax.set(title=f"{name}: accuracy against labels used", xlabel="labels used", ylabel="test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return "matplotlib"


def _draw_pillow(plot: dict[str, Any], path: Path) -> str:
    """Axes with ticks, one line per strategy (random dashed), a legend: matplotlib is not a
    dependency, Pillow is."""
    from PIL import ImageDraw

    w, h, left, right, top, bottom = 640, 440, 56, 16, 64, 44
    img = Image.new("RGB", (w * len(plot), h), "white")
    pen = ImageDraw.Draw(img)
    palette = [
        (0, 0, 0),
        (31, 119, 180),
        (214, 39, 40),
        (44, 160, 44),
        (148, 103, 189),
        (255, 127, 14),
        (140, 86, 75),
        (23, 190, 207),
        (227, 119, 194),
    ]
    for n, (name, curves) in enumerate(plot.items()):
        x0 = n * w
        lo = max(0.0, np.floor(10 * min(float(m.min()) for _, m, _ in curves.values())) / 10)
        top_x = max(float(xs.max()) for xs, _, _ in curves.values())

        def at(x: float, y: float, x0: int = x0, lo: float = lo, top_x: float = top_x) -> tuple[float, float]:
            return (
                x0 + left + (w - left - right) * x / top_x,
                h - bottom - (h - top - bottom) * (y - lo) / max(1e-9, 1 - lo),
            )

        (ax, ay), (bx, by) = at(0, 1.0), at(top_x, lo)
        pen.rectangle([ax, ay, bx, by], outline=(160, 160, 160))
        for k in range(11):
            y = lo + (1 - lo) * k / 10
            px, py = at(0, y)
            pen.line([(px - 4, py), (px, py)], fill=(0, 0, 0))
            pen.line([(px + 1, py), (at(top_x, y)[0], py)], fill=(235, 235, 235))
            pen.text((px - 40, py - 6), f"{y:.2f}", fill=(0, 0, 0))
        for k in range(6):
            x = top_x * k / 5
            px, py = at(x, lo)
            pen.line([(px, py), (px, py + 4)], fill=(0, 0, 0))
            pen.text((px - 10, py + 8), f"{x:.0f}", fill=(0, 0, 0))
        pen.text((x0 + left, 8), f"{name}: test accuracy against labels used", fill=(0, 0, 0))
        pen.text((x0 + w // 2 - 30, h - 18), "labels used", fill=(0, 0, 0))
        for c, (strategy, (xs, mean, _)) in enumerate(curves.items()):
            colour = palette[c % len(palette)]
            pts = [at(float(x), float(y)) for x, y in zip(xs, mean, strict=True)]
            if strategy == "random":  # dashed
                for a, b in zip(pts[:-1], pts[1:], strict=True):
                    mid = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
                    pen.line([a, mid], fill=colour, width=2)
            else:
                pen.line(pts, fill=colour, width=2)
            for pt in pts:
                pen.ellipse([pt[0] - 2, pt[1] - 2, pt[0] + 2, pt[1] + 2], fill=colour)
            lx, ly = x0 + left + 262 + (c // 4) * 160, 10 + 12 * (c % 4)
            pen.line([(lx, ly + 6), (lx + 16, ly + 6)], fill=colour, width=3)
            pen.text((lx + 20, ly), strategy, fill=colour)
    img.save(path)
    return "Pillow"


def digits_world(
    tmp: Path, client_for: Callable[[Catalog], httpx.Client], *, budget: int, batch: int
) -> tuple[World, Catalog]:
    data = load_digits()
    order = np.random.default_rng(0).permutation(len(data.target))
    test, pool = order[:500], order[500:]
    root = tmp / "digits"
    root.mkdir()
    for i in pool:
        pixels = (data.images[i] * (255 / 16)).astype(np.uint8)
        Image.fromarray(pixels).resize((32, 32), Image.Resampling.NEAREST).save(root / f"d{i:04d}.png")
    settings = Settings(home=tmp / "home-digits", _env_file=None)  # type: ignore[call-arg]
    catalog = Catalog(settings, encoder=PixelEncoder())
    catalog.add_source("digits", "local", {"path": str(root)})
    assert catalog.sync("digits").state == "succeeded"
    client = client_for(catalog)
    ids, labels, vectors = _pool(catalog, client, lambda key: str(data.target[int(key[1:5])]))
    test_x = PixelEncoder().encode_prepared(list(data.data[test].astype(np.float32) + 1e-3))
    world = World(
        "digits", client, ids, labels, vectors, test_x, data.target[test].astype(str), 20, batch, budget
    )
    return world, catalog


def shapes_world(
    tmp: Path, client_for: Callable[[Catalog], httpx.Client], *, n: int, budget: int, batch: int
) -> tuple[World, Catalog]:
    write_dataset(tmp / "shapes", n, seed=5, size=64, edge_cases=False, extra_metadata=False)
    test_paths = write_dataset(
        tmp / "shapes-test", 600, seed=6, size=64, edge_cases=False, extra_metadata=False
    )
    settings = Settings(home=tmp / "home-shapes", model="loupe-tiny", _env_file=None)  # type: ignore[call-arg]
    catalog = Catalog(settings)
    catalog.add_source("shapes", "local", {"path": str(tmp / "shapes")})
    assert catalog.sync("shapes").state == "succeeded"
    client = client_for(catalog)
    meta = {p.name[: -len(".json")]: shape_label(p) for p in (tmp / "shapes").glob("*.json")}
    ids, labels, vectors = _pool(catalog, client, lambda key: meta[key])
    images = [Image.open(p).convert("RGB") for p in test_paths]
    test_x = catalog.encoder.encode_images(images)
    test_y = np.asarray([shape_label(Path(f"{p}.json")) for p in test_paths])
    return World("shapes", client, ids, labels, vectors, test_x, test_y, 30, batch, budget), catalog


def shape_label(sidecar: Path) -> str:
    """The class to learn: colour and shape together (30 classes; the shape alone is learnt from ten
    labels, so every strategy saturated at once)."""
    attrs = json.loads(sidecar.read_text())
    return f"{attrs['color']} {attrs['shape']}"


def _fast_pickup() -> None:
    # The runner's threads share one wake-up event, so a job queued while a lane's thread is busy
    # waits for its 1 s idle poll; three jobs a round would make the loop measure that poll.
    from service.jobs import runner

    runner.POLL_S = 0.02  # type: ignore[misc]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_active_learning", description=__doc__)
    p.add_argument("--full", action="store_true", help="more seeds and a larger shapes pool")
    p.add_argument("--datasets", default="digits,shapes")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument(
        "--strategies",
        default=",".join(STRATEGIES),
        help="a subset (random is always run, except with --save: runs split over processes)",
    )
    p.add_argument("--dry", action="store_true", help="print the tables without appending to RESULTS.md")
    p.add_argument("--save", metavar="DIR", help="keep each strategy's curves in DIR (no tables)")
    p.add_argument("--from", dest="saved", metavar="DIR", help="tables and plot from the curves in DIR")
    args = p.parse_args(argv)
    profile = Profile("full" if args.full else "quick")
    wanted = {*([] if args.save else ["random"]), *(n.strip() for n in args.strategies.split(","))}
    for name in [n for n in STRATEGIES if n not in wanted]:
        del STRATEGIES[name]
    seeds = args.seeds or profile.pick(3, 5)
    started_load = loadavg()
    tables: list[Table] = []
    plot: dict[str, Any] = {}
    servers: list[LiveServer] = []

    def client_for(catalog: Catalog) -> httpx.Client:
        from service.api.app import create_app

        server = LiveServer(create_app(catalog.settings, catalog=catalog)).__enter__()
        servers.append(server)
        return httpx.Client(base_url=f"{server.url}/api/v1", timeout=120)

    _fast_pickup()
    t0 = time.monotonic()
    results: list[dict[str, Any]] = []
    if args.saved:
        results = merge(list(Path(args.saved).glob("*.json")))
    with tempfile.TemporaryDirectory(prefix="loupe-bench-al-") as tmp:
        for name in [] if args.saved else [n.strip() for n in args.datasets.split(",") if n.strip()]:
            sub = Path(tmp) / name
            sub.mkdir()
            if name == "digits":
                world, catalog = digits_world(sub, client_for, budget=500, batch=profile.pick(50, 25))
            else:
                world, catalog = shapes_world(
                    sub, client_for, n=profile.pick(1500, 3000), budget=450, batch=profile.pick(45, 15)
                )
            try:
                results.append(evaluate(world, seeds, Path(args.save) if args.save else None))
            finally:
                world.client.close()
                servers.pop().__exit__(None, None, None)
                catalog.close()
    if args.save:
        return 0
    for result in results:
        tabulate(result, tables, plot)
    png = BENCH_DIR / "active_learning.png"
    how = draw(plot, png)
    took = "" if args.saved else f"; whole run {time.monotonic() - t0:.0f} s"
    tables[0].notes.append(f"curves plotted in benchmarks/{png.name} ({how}){took}")
    if args.dry:
        print("\n".join(t.markdown() for t in tables))
    else:
        report(
            "Active learning: labels saved by selections (issue 15)",
            profile,
            tables,
            started_load=started_load,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
