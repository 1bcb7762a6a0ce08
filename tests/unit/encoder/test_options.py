"""Encoder options: fp16 dtype handling (the CUDA path), int8 image tower, ONNX Runtime backend, settings."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from service.config import Settings
from service.encoder import clip, options
from service.encoder.clip import ClipEncoder
from service.errors import EncoderError

TINY = "test-tiny-vit"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="module", autouse=True)
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A tiny ViT CLIP config, so the options run on a real open_clip model in milliseconds."""
    d = tmp_path_factory.mktemp("configs")
    (d / f"{TINY}.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(d)


def images(n: int = 6) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)) for _ in range(n)]


def encoder(**kw) -> ClipEncoder:
    torch.manual_seed(0)
    return ClipEncoder(TINY, None, device="cpu", **kw)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


@pytest.mark.parametrize(
    ("device", "precision", "dtype"),
    [("cpu", "auto", torch.float32), ("cuda", "auto", torch.float16), ("cuda", "fp32", torch.float32),
     ("cuda", "fp16", torch.float16), ("cpu", "fp32", torch.float32)],
)  # fmt: skip
def test_precision_resolves_to_fp16_only_on_cuda(device, precision, dtype):
    assert options.resolve_dtype(torch.device(device), precision) is dtype


def test_fp16_on_cpu_is_refused_with_the_setting_named():
    with pytest.raises(EncoderError, match="LOUPE_PRECISION=fp16"):
        options.resolve_dtype(torch.device("cpu"), "fp16")


def test_fp16_path_casts_inputs_and_returns_float32_unit_vectors(monkeypatch):
    # The CUDA path without a GPU: force fp16 on CPU, where half matmuls run (slowly) too.
    monkeypatch.setattr(options, "resolve_dtype", lambda device, precision: torch.float16)
    enc = encoder(precision="fp16")
    assert next(enc.model.parameters()).dtype is torch.float16
    for vecs in (enc.encode_images(images()), enc.encode_prepared([enc.prepare(im) for im in images()])):
        assert vecs.dtype == np.float32 and vecs.shape == (6, 32)
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-3)
    text = enc.encode_text("a red circle")
    assert text.dtype == np.float32 and abs(float(np.linalg.norm(text)) - 1.0) < 1e-3
    ref = encoder().encode_images(images())
    assert cosines(ref, enc.encode_images(images())).min() > 0.99  # same weights, half precision


def test_int8_quantizes_the_image_tower_and_keeps_vectors_close():
    fp32, int8 = encoder(), encoder(quantize="int8")
    kinds = {type(m).__module__ for m in int8.model.visual.modules()}
    assert any("quantized" in k for k in kinds), kinds
    a, b = fp32.encode_images(images()), int8.encode_images(images())
    assert cosines(a, b).min() > 0.98
    assert not np.array_equal(a, b)  # it really ran the int8 tower
    # the text tower is left in fp32
    np.testing.assert_allclose(fp32.encode_text("a cat"), int8.encode_text("a cat"), atol=1e-6)


needs_onnx = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("onnxruntime", "onnx", "onnxscript")),
    reason="the ONNX option needs onnxruntime, onnx and onnxscript (pip install onnxruntime onnx onnxscript)",
)


@needs_onnx
def test_onnx_backend_matches_torch_and_exports_once(tmp_path, monkeypatch):
    ref = encoder()
    enc = encoder(backend="onnx", cache_dir=tmp_path)
    exported = list(tmp_path.glob("visual-*.onnx"))
    assert len(exported) == 1
    prepared = [enc.prepare(im) for im in images()]
    for vecs in (enc.encode_images(images()), enc.encode_prepared(prepared)):
        assert cosines(ref.encode_images(images()), vecs).min() > 0.9999
    monkeypatch.setattr(options, "export_onnx", lambda *a, **k: pytest.fail("exported again"))
    again = encoder(backend="onnx", cache_dir=tmp_path)
    assert again._onnx is not None and again._onnx.path == exported[0]


@needs_onnx
def test_onnx_int8_is_a_separate_cached_model(tmp_path):
    enc = encoder(backend="onnx", quantize="int8", cache_dir=tmp_path)
    assert enc._onnx is not None and enc._onnx.path.name.endswith(".int8.onnx")
    assert cosines(encoder().encode_images(images()), enc.encode_images(images())).min() > 0.98


def test_settings_reach_the_encoder(monkeypatch, tmp_path: Path):
    seen: dict[str, object] = {}

    class Capture:
        def __init__(self, *args: object, **kwargs: object) -> None:
            seen.update(kwargs)

    monkeypatch.setattr(clip, "ClipEncoder", Capture)
    monkeypatch.setattr(clip, "_ENCODERS", {})
    monkeypatch.setenv("LOUPE_ENCODER_BACKEND", "onnx")
    monkeypatch.setenv("LOUPE_QUANTIZE", "int8")
    monkeypatch.setenv("LOUPE_PRECISION", "fp32")
    clip.load_encoder(Settings(home=tmp_path, _env_file=None))  # type: ignore[call-arg]
    assert (seen["backend"], seen["quantize"], seen["precision"]) == ("onnx", "int8", "fp32")
    assert seen["cache_dir"] == tmp_path.resolve() / "onnx"
