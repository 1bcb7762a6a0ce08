"""Synthetic captioned shape images with ground-truth attributes (PIL + numpy only)."""

from service.synth.captions import describe, query, random_caption
from service.synth.dataset import write_dataset
from service.synth.shapes import (
    BACKGROUNDS,
    COLORS,
    KINDS,
    RARE_SHAPES,
    SHAPES,
    SIZES,
    Sample,
    generate,
    render,
)

__all__ = [
    "BACKGROUNDS",
    "COLORS",
    "KINDS",
    "RARE_SHAPES",
    "SHAPES",
    "SIZES",
    "Sample",
    "describe",
    "generate",
    "query",
    "random_caption",
    "render",
    "write_dataset",
]
