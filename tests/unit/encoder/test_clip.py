"""ClipEncoder: local checkpoints of any architecture, clear errors and logs, exact trimmed text."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from service.encoder.clip import ClipEncoder
from service.encoder.text import encode_trimmed
from service.errors import EncoderError


def _save_random(name: str, path: Path, seed: int) -> None:
    torch.manual_seed(seed)
    model = open_clip.create_model(name, pretrained=None)
    torch.save(model.state_dict(), path)


@pytest.mark.parametrize("name", ["loupe-tiny", "ViT-S-32"])
def test_a_local_checkpoint_of_any_architecture_loads(tmp_path: Path, name: str) -> None:
    from service.encoder import tiny

    tiny.register_models()
    ckpt = tmp_path / f"{name}.pt"
    _save_random(name, ckpt, seed=3)
    enc = ClipEncoder(name, str(ckpt), device="cpu")
    expected = torch.load(ckpt, weights_only=True)
    loaded = enc.model.state_dict()
    key = next(k for k in expected if k.endswith("proj") or "projection" in k)
    torch.testing.assert_close(loaded[key].float(), expected[key].float())
    vec = enc.encode_images([Image.new("RGB", (80, 60), (200, 10, 10))])
    assert vec.shape == (1, enc.dim) and vec.dtype == np.float32
    assert np.allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-5)


def test_missing_checkpoint_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match="does not exist") as err:
        ClipEncoder("ViT-S-32", str(tmp_path / "nope.pt"), device="cpu")
    assert "nope.pt" in err.value.detail


def test_mismatched_checkpoint_names_file_and_architecture(tmp_path: Path) -> None:
    from service.encoder import tiny

    tiny.register_models()
    ckpt = tmp_path / "tiny.pt"
    _save_random("loupe-tiny", ckpt, seed=1)
    with pytest.raises(EncoderError, match="does not fit the ViT-S-32 architecture") as err:
        ClipEncoder("ViT-S-32", str(ckpt), device="cpu")
    assert "tiny.pt" in err.value.detail


def test_unknown_model_and_unavailable_tag_say_what_to_set() -> None:
    with pytest.raises(EncoderError, match="LOUPE_MODEL"):
        ClipEncoder("ViT-Nope-99", None, device="cpu")
    with pytest.raises(EncoderError, match="LOUPE_PRETRAINED") as err:
        ClipEncoder("ViT-S-32", "no-such-tag", device="cpu")
    assert "loupe-tiny" in err.value.detail


def test_trimmed_text_tower_equals_the_padded_one_and_queries_are_cached() -> None:
    enc = ClipEncoder("loupe-tiny", None, device="cpu")  # the shipped checkpoint
    texts = ["a red triangle", "a large green star on a white background", "x"]
    tokens = enc.tokenizer(texts)
    with torch.inference_mode():
        padded = torch.nn.functional.normalize(enc.model.encode_text(tokens).float(), dim=-1)
        trimmed = torch.nn.functional.normalize(encode_trimmed(enc.model, tokens).float(), dim=-1)
    torch.testing.assert_close(trimmed, padded, atol=1e-5, rtol=0)
    first = enc.encode_text("a red triangle")
    assert enc.encode_text(" a red triangle ") is first  # the LRU cache answered
    assert np.allclose(first, enc.encode_texts(["a red triangle"], trim=False)[0], atol=1e-5)


RANDOM_INIT = "initialized randomly"


def test_loading_the_shipped_model_does_not_log_a_random_init(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        enc = ClipEncoder("loupe-tiny", None, device="cpu")
    assert enc.identity == "loupe-tiny/loupe-tiny"
    assert caplog.records, "open_clip logged nothing at all: the capture is not listening"
    assert not [r for r in caplog.records if RANDOM_INIT in r.getMessage()]


def test_a_genuinely_random_model_still_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        enc = ClipEncoder("ViT-S-32", None, device="cpu")
    assert enc.identity == "ViT-S-32/random"
    assert [r for r in caplog.records if RANDOM_INIT in r.getMessage() and r.levelno == logging.WARNING]
