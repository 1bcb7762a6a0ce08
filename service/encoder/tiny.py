"""loupe-tiny: the small CLIP that Loupe trains on synthetic shapes and ships for offline use."""

from __future__ import annotations

from pathlib import Path

import open_clip

from service.config import OFFLINE_MODEL

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

# Generator seeds are split in ranges so no evaluation ever sees a training image:
# training streams use TRAIN_SEED_BASE + seed, the held-out set that training logs uses
# VALIDATION_SEED_BASE + seed, and evaluation (tests, benchmarks) must stay below both.
TRAIN_SEED_BASE = 1_000_000
VALIDATION_SEED_BASE = 2_000_000

__all__ = ["OFFLINE_MODEL", "TRAIN_SEED_BASE", "VALIDATION_SEED_BASE", "checkpoint_path", "register_models"]


def register_models() -> None:
    """Make the project's model configs (loupe-tiny) known to open_clip; safe to call often."""
    if OFFLINE_MODEL not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_DIR)


def checkpoint_path() -> Path:
    """The shipped loupe-tiny checkpoint (an fp16 open_clip state dict)."""
    return WEIGHTS_DIR / f"{OFFLINE_MODEL}.pt"
