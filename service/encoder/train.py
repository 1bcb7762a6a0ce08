"""Train loupe-tiny with the CLIP contrastive loss on synthetic shapes generated on the fly.

    python -m service.encoder.train --out service/encoder/weights/loupe-tiny.pt --minutes 40

Training images come from generator seeds TRAIN_SEED_BASE + seed; the held-out set logged
during training from VALIDATION_SEED_BASE + seed; evaluation uses seeds below both.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from torch.utils.data import DataLoader, IterableDataset

from service.encoder import tiny
from service.encoder.evaluate import Scores, measure
from service.encoder.text import encode_text, trim
from service.synth import generate, random_caption, render

log = logging.getLogger("loupe.train")
# Edge cases are seen more often than in the demo (1-2%) so the model learns them at all.
RARE_RATE = 0.04
OCCLUDED_RATE = 0.06
# Some images are drawn at 128 px and shrunk, like the demo images the model will embed.
LARGE_SHARE = 0.25


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; recorded beside the checkpoint."""

    out: Path
    seed: int = 0
    minutes: float = 40.0  # wall-time budget; the schedule decays over it
    steps: int | None = None  # a fixed step count instead (the schedule then counts steps)
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup: int = 200
    eval_every: int = 250
    eval_images: int = 600
    log_every: int = 25
    workers: int = 1
    threads: int = 0  # 0: pick 1 or 2 by measured speed, again and again


# --smoke: seconds, not minutes; proves the script end to end, not the model.
SMOKE: dict[str, Any] = {
    "steps": 3,
    "batch_size": 16,
    "warmup": 1,
    "eval_every": 3,
    "eval_images": 40,
    "workers": 0,
    "threads": 1,
}


class ShapeBatches(IterableDataset[tuple[torch.Tensor, torch.Tensor]]):
    """An endless, deterministic stream of (images, tokens) batches of one training seed."""

    def __init__(self, seed: int, batch_size: int, preprocess: Any) -> None:
        self.seed = tiny.TRAIN_SEED_BASE + seed
        self.batch_size = batch_size
        self.preprocess = preprocess

    def _example(self, index: int) -> tuple[torch.Tensor, str]:
        rng = np.random.default_rng([self.seed, index, 2])
        size = 128 if rng.random() < LARGE_SHARE else 64
        sample = render(
            self.seed,
            index,
            size=size,
            edge_cases=True,
            rare_rate=RARE_RATE,
            occluded_rate=OCCLUDED_RATE,
        )
        return self.preprocess(sample.image), random_caption(sample.attributes, rng)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if torch.utils.data.get_worker_info() is not None:
            torch.set_num_threads(1)  # the worker shares two cores with the training loop
        tokenizer = open_clip.get_tokenizer(tiny.OFFLINE_MODEL)
        for batch in range(sys.maxsize):
            first = batch * self.batch_size
            pairs = [self._example(i) for i in range(first, first + self.batch_size)]
            images = torch.stack([p[0] for p in pairs])
            yield images, trim(tokenizer([p[1] for p in pairs]))


def _optimizers(model: Any, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
    """AdamW as in open_clip's training, plus SparseAdam for the token table.

    Captions use a few dozen of the table's 49,408 rows: sparse gradients update only
    those instead of 6.3M numbers every step.
    """
    model.token_embedding.sparse = True
    table = model.token_embedding.weight

    def no_decay(name: str, p: torch.nn.Parameter) -> bool:  # gains, biases, temperature
        return p.ndim < 2 or any(s in name for s in ("bn", "ln", "bias", "logit_scale"))

    named = [(n, p) for n, p in model.named_parameters() if p is not table]
    groups = [
        {"params": [p for n, p in named if no_decay(n, p)], "weight_decay": 0.0},
        {"params": [p for n, p in named if not no_decay(n, p)], "weight_decay": cfg.weight_decay},
    ]
    return [
        torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6),
        torch.optim.SparseAdam([table], lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6),
    ]


class Schedule:
    """Linear warm-up over `warmup` steps, then a cosine decay to zero.

    With a fixed step count progress is counted in steps (an exact rerun); otherwise in wall
    time, so a time-boxed run on a busy shared machine still finishes its decay in time.
    """

    def __init__(self, warmup: int, *, steps: int | None, seconds: float) -> None:
        self.warmup, self.steps, self.seconds = warmup, steps, seconds
        self.warm_at: float | None = None  # elapsed seconds when warm-up ended

    def progress(self, step: int, elapsed: float) -> float:
        if self.steps is not None:
            return min(1.0, max(0, step - self.warmup) / max(1, self.steps - self.warmup))
        if step < self.warmup:
            return 0.0
        if self.warm_at is None:
            self.warm_at = elapsed
        return min(1.0, (elapsed - self.warm_at) / max(1.0, self.seconds - self.warm_at))

    def factor(self, step: int, elapsed: float) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        return 0.5 * (1.0 + math.cos(math.pi * self.progress(step, elapsed)))

    def done(self, step: int, elapsed: float) -> bool:
        if self.steps is not None:
            return step >= self.steps
        return step >= self.warmup and self.progress(step, elapsed) >= 1.0


class ThreadTuner:
    """Keep whichever torch thread count trains fastest now, re-measured as the load changes.

    On this 2-core machine shared with other work, two threads ran 8-9 s per step against
    1.8 s for one thread while other processes held the cores; on an idle machine two win.
    A trial of the other count stops at its first clearly slower step, so probing is cheap.
    """

    def __init__(self, options: Sequence[int], *, window: int = 5, every: float = 300.0) -> None:
        self.options = sorted(set(options), reverse=True)
        self.current = self.options[0]
        self.window, self.every = window, every
        self.recent: deque[float] = deque(maxlen=window)  # step times of the current count
        self.trial: list[float] | None = None  # step times of the other count, while on trial
        self.reference = math.inf  # median step time when the count was last chosen
        self.next_probe = 0.0
        torch.set_num_threads(self.current)

    def observe(self, seconds: float) -> None:
        """Record one step's duration; may change the thread count for the next steps."""
        if len(self.options) < 2:
            return
        if self.trial is None:
            self.recent.append(seconds)
            slower = seconds > 3 * self.reference  # the machine got busier: ask again now
            if len(self.recent) == self.window and (slower or time.monotonic() >= self.next_probe):
                self.trial = []
                torch.set_num_threads(self._other())
            return
        self.trial.append(seconds)
        if seconds > 1.5 * statistics.median(self.recent) or len(self.trial) >= self.window:
            self._decide(self.trial)

    def _other(self) -> int:
        return next(n for n in self.options if n != self.current)

    def _decide(self, trial: list[float]) -> None:
        base, tried = statistics.median(self.recent), statistics.median(trial)
        previous, other = self.current, self._other()
        if len(trial) >= self.window and tried < base:
            self.current, self.recent = other, deque(trial, maxlen=self.window)
        torch.set_num_threads(self.current)
        self.trial, self.reference = None, statistics.median(self.recent)
        self.next_probe = time.monotonic() + self.every
        log.info(
            "ms per step: %d threads %.0f, %d threads %.0f; using %d",
            *(other, tried * 1000, previous, base * 1000, self.current),
        )


def save(model: torch.nn.Module, path: Path) -> None:
    """An fp16 state dict (half the bytes; loads into an fp32 model unchanged)."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    partial.replace(path)  # never leave a half-written checkpoint where a loader looks


class Trainer:
    """One training run: model, data, optimiser, schedule, held-out checks."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        tiny.register_models()
        model, _, self.preprocess = open_clip.create_model_and_transforms(tiny.OFFLINE_MODEL)
        self.model: Any = model.train()
        self.tokenizer = open_clip.get_tokenizer(tiny.OFFLINE_MODEL)
        self.tools = {"preprocess": self.preprocess, "tokenizer": self.tokenizer}
        self.loss = open_clip.ClipLoss()
        self.optimizers = _optimizers(self.model, cfg)
        self.schedule = Schedule(cfg.warmup, steps=cfg.steps, seconds=cfg.minutes * 60)
        seed = tiny.VALIDATION_SEED_BASE + cfg.seed
        self.held_out = list(generate(seed, cfg.eval_images, size=128, edge_cases=True))
        self.history: list[dict[str, float]] = []

    def _step(self, images: torch.Tensor, tokens: torch.Tensor, lr: float) -> float:
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr
        image_features = self.model.encode_image(images, normalize=True)
        text_features = encode_text(self.model, tokens)
        loss = self.loss(image_features, text_features, self.model.logit_scale.exp())
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for optimizer in self.optimizers:
            optimizer.step()
        with torch.no_grad():  # CLIP clamps the temperature at 100
            self.model.logit_scale.clamp_(0, math.log(100))
        return float(loss.detach())

    def check(self, step: int, elapsed: float) -> Scores:
        """Held-out precision now; the checkpoint is saved with it, so a cut run keeps a model."""
        self.model.eval()
        scores = measure(self.model, self.held_out, **self.tools)
        self.model.train()
        save(self.model, self.cfg.out)
        point = {"step": step, "minutes": round(elapsed / 60, 2)}
        self.history.append(point | {"text_p10": scores.text_p10, "image_p10": scores.image_p10})
        log.info(
            "step %d  held-out text p@10 %.3f  image p@10 %.3f  image top-1 %.3f",
            *(step, scores.text_p10, scores.image_p10, scores.image_top1),
        )
        return scores

    def _log(self, step: int, loss: float, lr: float, rate: float, elapsed: float) -> None:
        scale = float(self.model.logit_scale.detach().exp())
        log.info(
            "step %d  loss %.3f  lr %.2e  scale %.1f  %.0f img/s  %.1f min",
            *(step, loss, lr, scale, rate, elapsed / 60),
        )

    def _loader(self) -> DataLoader[tuple[torch.Tensor, torch.Tensor]]:
        return DataLoader(
            ShapeBatches(self.cfg.seed, self.cfg.batch_size, self.preprocess),
            batch_size=None,
            num_workers=self.cfg.workers,
            prefetch_factor=4 if self.cfg.workers else None,
        )

    def run(self) -> Scores:
        cores = min(2, os.cpu_count() or 1)
        tuner = ThreadTuner([self.cfg.threads] if self.cfg.threads else [cores, 1])
        start = window = time.perf_counter()
        for step, (images, tokens) in enumerate(self._loader()):
            began = time.perf_counter()
            lr = self.cfg.lr * self.schedule.factor(step, began - start)
            loss = self._step(images, tokens, lr)
            now = time.perf_counter()
            tuner.observe(now - began)
            if (step + 1) % self.cfg.log_every == 0:
                rate = self.cfg.log_every * self.cfg.batch_size / (now - window)
                self._log(step + 1, loss, lr, rate, now - start)
                window = now
            done = self.schedule.done(step + 1, now - start)
            if (step + 1) % self.cfg.eval_every == 0 or done:
                scores = self.check(step + 1, now - start)
            if done:
                self._record(step + 1, time.perf_counter() - start, scores)
                return scores
        raise AssertionError("the batch stream is endless")

    def _record(self, steps: int, seconds: float, scores: Scores) -> None:
        config = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self.cfg).items()}
        info = {
            "model": tiny.OFFLINE_MODEL,
            "config": config,
            "steps": steps,
            "minutes": round(seconds / 60, 2),
            "held_out_seed": tiny.VALIDATION_SEED_BASE + self.cfg.seed,
            "held_out": {"text_p10": scores.text_p10, "image_p10": scores.image_p10},
            "history": self.history,
        }
        Path(f"{self.cfg.out}.json").write_text(json.dumps(info, indent=1) + "\n")
        log.info("saved %s after %d steps in %.1f min", self.cfg.out, steps, seconds / 60)


def parse_args(argv: Sequence[str] | None) -> TrainConfig:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="checkpoint file to write")
    parser.add_argument("--minutes", type=float, default=40.0, help="wall-time budget")
    parser.add_argument("--steps", type=int, default=None, help="fixed step count instead")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=200, help="warm-up steps")
    parser.add_argument("--workers", type=int, default=1, help="data processes (0: inline)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: auto, 1-2)")
    parser.add_argument("--smoke", action="store_true", help="a few tiny steps, for tests")
    args = parser.parse_args(argv)
    cfg = TrainConfig(
        out=args.out,
        seed=args.seed,
        minutes=args.minutes,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup=args.warmup,
        workers=args.workers,
        threads=args.threads,
    )
    return replace(cfg, **SMOKE) if args.smoke else cfg


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(format="%(asctime)s %(message)s", stream=sys.stdout)
    log.setLevel(logging.INFO)  # our progress, without open_clip's chatter
    cfg = parse_args(argv)
    scores = Trainer(cfg).run()
    print(f"text p@10 {scores.text_p10:.3f}  image p@10 {scores.image_p10:.3f}  -> {cfg.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
