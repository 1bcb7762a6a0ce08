"""Encoder options: which runtime runs the image tower (torch or ONNX Runtime), int8, fp16 on CUDA.

Measured on a 2-core CPU (benchmarks/bench_encoder_options.py, RESULTS.md):
ONNX Runtime runs the ViT-B-32 image tower faster than torch at batch 1 (an
uploaded example image) and about level at ingest batch sizes; dynamic int8
changes vectors by a cosine of ~1e-4 but is only kept where its recall@10
against fp32 search stays >= 0.99. fp16 halves memory and time on CUDA only
(on CPU it is several times slower), so `auto` precision means fp16 on CUDA
and fp32 elsewhere.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Any, Literal

import torch

from service.errors import EncoderError

log = logging.getLogger(__name__)
Backend = Literal["torch", "onnx"]
Quantize = Literal["none", "int8"]
Precision = Literal["auto", "fp32", "fp16"]


def resolve_dtype(device: torch.device, precision: Precision) -> torch.dtype:
    """The dtype the model runs in: fp16 only on CUDA (auto or asked), fp32 otherwise."""
    if precision == "fp16" and device.type != "cuda":
        raise EncoderError("LOUPE_PRECISION=fp16 needs a CUDA device (on CPU it is slower); use auto or fp32")
    if precision == "fp16" or (precision == "auto" and device.type == "cuda"):
        return torch.float16
    return torch.float32


def quantize_int8(module: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantization of the Linear layers (weights int8, activations quantized per batch)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        return torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)


def export_onnx(visual: torch.nn.Module, path: Path, *, image_size: int = 224) -> Path:
    """Export an image tower to ONNX with a dynamic batch dimension (needs `onnx` and `onnxscript`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, 3, image_size, image_size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    tmp = path.with_suffix(".tmp.onnx")
    try:
        torch.onnx.export(
            visual,
            (example,),
            str(tmp),
            dynamo=True,
            dynamic_shapes=({0: batch},),
            optimize=True,
            external_data=False,  # one file (a ViT-B tower is ~350 MB, under ONNX's 2 GB limit)
            verbose=False,
        )
    except ImportError as exc:
        raise EncoderError(
            "LOUPE_ENCODER_BACKEND=onnx needs the export tools: "
            f"pip install onnx onnxscript onnxruntime ({exc})"
        ) from None
    tmp.replace(path)
    return path


def weights_digest(module: torch.nn.Module) -> str:
    """A short digest of a module's weights: the ONNX cache key, so new weights never reuse an old export."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        flat = tensor.detach().float().reshape(-1)
        h.update(flat[:: max(1, flat.numel() // 4096)].numpy().tobytes())
    return h.hexdigest()[:16]


class OnnxImageTower:
    """The image tower on ONNX Runtime: one session per thread count, fp32 (or int8) weights."""

    def __init__(
        self, visual: torch.nn.Module, cache_dir: Path, *, image_size: int, quantize: Quantize
    ) -> None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise EncoderError(
                "LOUPE_ENCODER_BACKEND=onnx needs onnxruntime: pip install onnxruntime"
            ) from None
        digest = weights_digest(visual)
        path = cache_dir / f"visual-{digest}-{image_size}.onnx"
        if not path.exists():
            log.info("exporting the image tower to %s (once per model)", path)
            export_onnx(visual, path, image_size=image_size)
        if quantize == "int8":
            path = _quantized(path)
        self.path = path
        self._sessions: dict[int, Any] = {}
        self._lock = threading.Lock()

    def session(self, threads: int) -> Any:
        import onnxruntime as ort

        with self._lock:
            s = self._sessions.get(threads)
            if s is None:
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = threads
                opts.inter_op_num_threads = 1
                s = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
                self._sessions[threads] = s
            return s

    def __call__(self, batch: torch.Tensor, threads: int) -> torch.Tensor:
        s = self.session(threads)
        out = s.run(None, {s.get_inputs()[0].name: batch.float().cpu().numpy()})[0]
        return torch.from_numpy(out)


def _quantized(path: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = path.with_name(path.stem + ".int8.onnx")
    if not out.exists():
        tmp = out.with_suffix(".tmp.onnx")
        quantize_dynamic(str(path), str(tmp), weight_type=QuantType.QInt8)
        tmp.replace(out)
    return out
