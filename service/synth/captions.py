"""Captions for synthetic shapes: one canonical sentence, and varied phrasings for training."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

# (weight, template). Fields: size, color, shape, bg ("a grey background"), pos ("top left").
# Short forms are frequent because users type short queries ("red triangle", "a triangle",
# "something blue"); full forms teach size, background and position.
TEMPLATES: tuple[tuple[float, str], ...] = (
    (14, "a {size} {color} {shape} on {bg}"),
    (10, "a {color} {shape}"),
    (6, "{color} {shape}"),
    (3, "a photo of a {color} {shape}"),
    (2, "a picture of a {color} {shape}"),
    (2, "an image of a {color} {shape}"),
    (6, "a {size} {color} {shape}"),
    (6, "a {color} {shape} on {bg}"),
    (2, "a {color} {shape} on {bgname}"),
    (3, "a {color} {shape} in the {pos}"),
    (3, "a {size} {color} {shape} on {bg}, {pos}"),
    (3, "a {shape}"),
    (2, "{shape}"),
    (2, "a {size} {shape}"),
    (2, "a {shape} on {bg}"),
    (2, "something {color}"),
    (2, "a {color} shape"),
    (1, "{color}"),
    (1, "a {color} object on {bg}"),
    (2, "a {shape} that is {color}"),
    (2, "a {size} {shape} in {color} on {bg}"),
)
_WEIGHTS = np.array([w for w, _ in TEMPLATES], dtype=np.float64) / sum(w for w, _ in TEMPLATES)
_AN = re.compile(r"\ba (?=[aeiou])")


def with_articles(text: str) -> str:
    """Fix "a orange" to "an orange"."""
    return _AN.sub("an ", text)


def query(color: str, shape: str) -> str:
    """The plain colour+shape query used in evaluation ("a red triangle", "an orange star")."""
    return with_articles(f"a {color} {shape}")


def _fields(attrs: dict[str, Any]) -> dict[str, str]:
    shape = attrs["shape"]
    if attrs.get("kind") == "occluded":
        shape = f"{shape} partly covered by a bar"
    return {
        "size": attrs["size"],
        "color": attrs["color"],
        "shape": shape,
        "bg": f"a {attrs['background']} background",
        "bgname": attrs["background"],
        "pos": attrs.get("position", "center"),
    }


def describe(attrs: dict[str, Any]) -> str:
    """The canonical caption: "a small red triangle on a grey background"."""
    return with_articles(TEMPLATES[0][1].format(**_fields(attrs)))


def random_caption(attrs: dict[str, Any], rng: np.random.Generator) -> str:
    """One of many phrasings of `attrs`, drawn by template weight; for contrastive training."""
    template = TEMPLATES[int(rng.choice(len(TEMPLATES), p=_WEIGHTS))][1]
    text = template.format(**_fields(attrs))
    # Mostly proper English, sometimes the "a orange" users actually type.
    text = with_articles(text) if rng.random() < 0.85 else text
    return text + "." if rng.random() < 0.1 else text
