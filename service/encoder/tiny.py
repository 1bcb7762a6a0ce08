"""loupe-tiny: the small CLIP that Loupe trains on synthetic shapes and ships for offline use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import open_clip
import torch

OFFLINE_MODEL = "loupe-tiny"
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

# Generator seeds are split in ranges so no evaluation ever sees a training image:
# training streams use TRAIN_SEED_BASE + seed, the held-out set that training logs uses
# VALIDATION_SEED_BASE + seed, and evaluation (tests, benchmarks) must stay below both.
TRAIN_SEED_BASE = 1_000_000
VALIDATION_SEED_BASE = 2_000_000


def register_models() -> None:
    """Make the project's model configs (loupe-tiny) known to open_clip; safe to call often."""
    if OFFLINE_MODEL not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_DIR)


def checkpoint_path() -> Path:
    """The shipped loupe-tiny checkpoint (an fp16 open_clip state dict)."""
    return WEIGHTS_DIR / f"{OFFLINE_MODEL}.pt"


def trim(tokens: torch.Tensor) -> torch.Tensor:
    """Drop the all-padding columns: with a causal mask they cannot change the EOT feature."""
    length = int((tokens != 0).sum(dim=1).max())
    return tokens[:, :length]


def encode_text(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """model.encode_text(..., normalize=True) for token rows of any length up to the context."""
    from service.encoder.clip import _encode_text_trimmed

    return torch.nn.functional.normalize(_encode_text_trimmed(model, tokens), dim=-1)
