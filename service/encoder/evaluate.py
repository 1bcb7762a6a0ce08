"""Whether a CLIP checkpoint understands the synthetic shapes: precision@10 by text and image."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import open_clip
import torch
from PIL import Image

from service.encoder import tiny
from service.encoder.text import encode_text
from service.synth import COLORS, SHAPES, Sample, generate, query

log = logging.getLogger(__name__)
DEFAULT_SEED = 7
K = 10


@dataclass(frozen=True)
class Scores:
    """Retrieval quality on one generated set; hits need the same colour AND shape."""

    text_p10: float  # mean over every colour+shape pair of the query "a {color} {shape}"
    image_p10: float  # mean over query images of their 10 nearest other images
    image_top1: float  # share of query images whose nearest other image matches
    images: int
    per_pair: dict[str, float]


@torch.no_grad()
def embed_images(
    model: Any, images: Sequence[Image.Image], preprocess: Callable[..., Any], *, batch: int = 128
) -> torch.Tensor:
    """L2-normalised image embeddings, one row per image."""
    rows = []
    for start in range(0, len(images), batch):
        pixels = torch.stack([preprocess(im) for im in images[start : start + batch]])
        rows.append(model.encode_image(pixels, normalize=True).float())
    return torch.cat(rows)


@torch.no_grad()
def embed_texts(model: Any, tokenizer: Callable[..., Any], texts: Sequence[str]) -> torch.Tensor:
    """L2-normalised text embeddings, one row per text."""
    return encode_text(model, tokenizer(list(texts))).float()


def _labels(samples: Sequence[Sample]) -> list[tuple[str, str]]:
    return [(s.attributes["color"], s.attributes["shape"]) for s in samples]


def _text_precision(
    model: Any, tokenizer: Callable[..., Any], images: torch.Tensor, labels: list[tuple[str, str]]
) -> dict[str, float]:
    pairs = [(c, s) for c in COLORS for s in SHAPES]
    texts = embed_texts(model, tokenizer, [query(c, s) for c, s in pairs])
    top = (texts @ images.T).topk(K, dim=1).indices.tolist()
    return {
        query(c, s): sum(labels[i] == (c, s) for i in hits) / K
        for (c, s), hits in zip(pairs, top, strict=True)
    }


def _image_precision(images: torch.Tensor, labels: list[tuple[str, str]]) -> tuple[float, float]:
    sims = images @ images.T
    sims.fill_diagonal_(-2.0)  # a query image is not its own neighbour
    top = sims.topk(K, dim=1).indices.tolist()
    p10 = [sum(labels[j] == labels[i] for j in hits) / K for i, hits in enumerate(top)]
    top1 = [labels[hits[0]] == labels[i] for i, hits in enumerate(top)]
    return sum(p10) / len(p10), sum(top1) / len(top1)


def measure(
    model: Any,
    samples: Sequence[Sample],
    *,
    preprocess: Callable[..., Any],
    tokenizer: Callable[..., Any],
) -> Scores:
    """Scores of `model` on `samples` (put the model in eval mode first)."""
    images = embed_images(model, [s.image for s in samples], preprocess)
    labels = _labels(samples)
    per_pair = _text_precision(model, tokenizer, images, labels)
    image_p10, image_top1 = _image_precision(images, labels)
    return Scores(
        text_p10=sum(per_pair.values()) / len(per_pair),
        image_p10=image_p10,
        image_top1=image_top1,
        images=len(samples),
        per_pair=per_pair,
    )


def load(checkpoint: str | Path, model_name: str = tiny.OFFLINE_MODEL) -> tuple[Any, Any, Any]:
    """(model in eval mode, preprocess, tokenizer), loaded the way any open_clip user would."""
    tiny.register_models()
    pretrained = str(checkpoint)
    model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=pretrained)
    return model.eval(), preprocess, open_clip.get_tokenizer(model_name)


def evaluation_set(seed: int, n: int) -> list[Sample]:
    """A held-out set: demo-like images (edge cases included) from a seed training never used."""
    if seed >= tiny.TRAIN_SEED_BASE:
        raise ValueError(
            f"evaluation seeds must be below {tiny.TRAIN_SEED_BASE}; "
            "seeds from there up are training and validation streams"
        )
    return list(generate(seed, n, size=128, edge_cases=True))


def evaluate_checkpoint(path: str | Path, *, seed: int = DEFAULT_SEED, n: int = 1000) -> Scores:
    """Scores of a loupe-tiny checkpoint on `n` new images of stream `seed`."""
    model, preprocess, tokenizer = load(path)
    return measure(model, evaluation_set(seed, n), preprocess=preprocess, tokenizer=tokenizer)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", type=Path, default=tiny.checkpoint_path())
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print all scores as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    scores = evaluate_checkpoint(args.checkpoint, seed=args.seed, n=args.n)
    if args.json:
        print(json.dumps(asdict(scores), indent=1))
    else:
        print(
            f"{args.checkpoint}: seed {args.seed}, {scores.images} images: "
            f"text p@10 {scores.text_p10:.3f}, image p@10 {scores.image_p10:.3f}, "
            f"image top-1 {scores.image_top1:.3f}"
        )
        worst = sorted(scores.per_pair.items(), key=lambda kv: kv[1])[:5]
        print("weakest pairs: " + ", ".join(f"{q} {p:.1f}" for q, p in worst))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
