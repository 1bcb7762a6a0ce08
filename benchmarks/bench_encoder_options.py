"""Encoder options for CPU users (issue 8 part 4): torch vs ONNX Runtime, fp32 vs int8, threads, batch.

The image tower of ViT-B-32 (random weights: the real compute) on photo-like
images prepared as the pipeline prepares them. Speed: images/s for every
backend at 1 and 2 threads, batch 1 and 16 (medians of repeats). Accuracy of
each option against torch fp32: the cosine of every vector to its fp32 twin,
and recall@10 of a search (example images against a corpus) against the same
search in fp32, both with every vector from the option and with option
queries against an fp32 index (what a user who switches on an existing
catalog gets). Accept only >= 0.99 recall.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import Profile, Table, loadavg, median, report
from benchmarks.datasets import files_of, image_set

MODEL = "ViT-B-32"
RECALL_FLOOR = 0.99
Encode = Callable[[Any, int], np.ndarray]  # (NCHW float tensor, threads) -> vectors


def visual_tower() -> tuple[Any, Any]:
    import open_clip
    import torch

    model, _, preprocess = open_clip.create_model_and_transforms(MODEL, pretrained=None)
    torch.manual_seed(0)
    return model.visual.eval(), preprocess


def torch_backend(visual: Any) -> Encode:
    import torch

    def run(x: Any, threads: int) -> np.ndarray:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            return visual(x).float().numpy()  # type: ignore[no-any-return]

    return run


def onnx_backend(path: Path) -> Encode:
    import onnxruntime as ort

    sessions: dict[int, Any] = {}

    def run(x: Any, threads: int) -> np.ndarray:
        if threads not in sessions:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            sessions[threads] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        s = sessions[threads]
        return s.run(None, {s.get_inputs()[0].name: x.numpy()})[0]  # type: ignore[no-any-return]

    return run


def backends(visual: Any, work: Path) -> tuple[dict[str, Encode], dict[str, float]]:
    """Every option, and the seconds each took to prepare (quantize, export)."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from service.encoder.options import export_onnx

    prep: dict[str, float] = {}
    t0 = time.perf_counter()
    q = torch.ao.quantization.quantize_dynamic(visual, {torch.nn.Linear}, dtype=torch.qint8)
    prep["torch int8 (dynamic, Linear)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fp32 = export_onnx(visual, work / "visual.onnx")
    prep["onnx fp32"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    int8 = work / "visual.int8.onnx"
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    prep["onnx int8 (dynamic, MatMul)"] = time.perf_counter() - t0
    return {
        "torch fp32": torch_backend(visual),
        "torch int8 (dynamic, Linear)": torch_backend(q),
        "onnx fp32": onnx_backend(fp32),
        "onnx int8 (dynamic, MatMul)": onnx_backend(int8),
    }, prep


def speed(encode: Encode, tensors: Any, *, threads: int, batch: int, repeats: int) -> float:
    """Median images/s over `repeats` passes of the tensors in batches (after one warm-up batch)."""
    encode(tensors[:batch], threads)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for start in range(0, len(tensors), batch):
            encode(tensors[start : start + batch], threads)
        rates.append(len(tensors) / (time.perf_counter() - t0))
    return median(rates)


def normalise(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def embed(encode: Encode, tensors: Any) -> np.ndarray:
    return normalise(np.concatenate([encode(tensors[s : s + 16], 2) for s in range(0, len(tensors), 16)]))


def top10(queries: np.ndarray, corpus: np.ndarray, q: int) -> list[set[int]]:
    scores = queries @ corpus.T
    scores[np.arange(q), np.arange(q)] = -np.inf  # the example itself
    return [set(np.argsort(-row)[:10].tolist()) for row in scores]


def accuracy(ref: np.ndarray, vec: np.ndarray, q: int) -> dict[str, float]:
    """Cosine to fp32 (min, mean) and recall@10 against the fp32 search, all-option and mixed."""
    cos = (ref * vec).sum(axis=1)
    truth = top10(ref[:q], ref, q)
    own = top10(vec[:q], vec, q)
    mixed = top10(vec[:q], ref, q)
    return {
        "cos_min": float(cos.min()),
        "cos_mean": float(cos.mean()),
        "recall": float(np.mean([len(a & b) / 10 for a, b in zip(truth, own, strict=True)])),
        "recall_mixed": float(np.mean([len(a & b) / 10 for a, b in zip(truth, mixed, strict=True)])),
    }


def prepared(preprocess: Any, n: int) -> Any:
    import torch
    from PIL import Image

    files = files_of(image_set("jpeg-small", n, seed=16))
    return torch.stack([preprocess(Image.open(f).convert("RGB")) for f in files])


def speed_table(options: dict[str, Encode], tensors: Any, repeats: int) -> Table:
    t = Table(
        f"{MODEL} image tower, images/s (medians of {repeats}), {len(tensors)} images per pass",
        [
            "option",
            "1 thread, batch 1",
            "1 thread, batch 16",
            "2 threads, batch 1",
            "2 threads, batch 16",
            "batch-1 latency ms (2 threads)",
            "vs torch fp32 at batch 1 / 16 (2 threads)",
        ],
    )
    base: dict[int, float] = {}
    for name, encode in options.items():
        grid = {
            (th, b): speed(encode, tensors, threads=th, batch=b, repeats=repeats)
            for th in (1, 2)
            for b in (1, 16)
        }
        if not base:
            base = {1: grid[(2, 1)], 16: grid[(2, 16)]}
        t.add(
            name,
            grid[(1, 1)],
            grid[(1, 16)],
            grid[(2, 1)],
            grid[(2, 16)],
            1000 / grid[(2, 1)],
            f"{grid[(2, 1)] / base[1]:.2f}x / {grid[(2, 16)] / base[16]:.2f}x",
        )
    return t


def accuracy_table(options: dict[str, Encode], corpus: Any, q: int, prep: dict[str, float]) -> Table:
    t = Table(
        f"accuracy against torch fp32: {len(corpus)} images, {q} example queries, top-10",
        [
            "option",
            "cosine to fp32 min",
            "cosine mean",
            "recall@10 (all vectors from the option)",
            "recall@10 (option queries, fp32 index)",
            f"accept (>= {RECALL_FLOOR})",
            "prepare s",
        ],
    )
    ref = embed(options["torch fp32"], corpus)
    for name, encode in options.items():
        if name == "torch fp32":
            continue
        a = accuracy(ref, embed(encode, corpus), q)
        ok = min(a["recall"], a["recall_mixed"]) >= RECALL_FLOOR
        t.add(
            name,
            a["cos_min"],
            a["cos_mean"],
            a["recall"],
            a["recall_mixed"],
            "yes" if ok else "no",
            prep.get(name, 0.0),
        )
    pair = ref[:q] @ ref.T
    t.notes.append(
        f"random weights: fp32 vectors of different images have a mean cosine of "
        f"{float(pair[pair < 0.9999].mean()):.2f}, so neighbours are closer together than with trained "
        "weights and recall is a stricter test here."
    )
    return t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--full", action="store_true")
    p.add_argument("--no-report", action="store_true")
    args = p.parse_args(argv)
    profile = Profile("full" if args.full else "quick")
    started = loadavg()
    warnings.filterwarnings("ignore")
    visual, preprocess = visual_tower()
    speed_n, corpus_n, repeats = profile.pick(32, 64), profile.pick(160, 640), profile.pick(3, 5)
    corpus = prepared(preprocess, corpus_n)
    with tempfile.TemporaryDirectory(prefix="loupe-bench-enc-") as tmp:
        options, prep = backends(visual, Path(tmp))
        tables = [speed_table(options, corpus[:speed_n], repeats), accuracy_table(options, corpus, 32, prep)]
    if args.no_report:
        print("\n".join(t.markdown() for t in tables))
    else:
        report("encoder options", profile, tables, started_load=started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
