"""open_clip models as Loupe's encoder: images and texts to L2-normalised float32 vectors."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from PIL import Image

from service.config import OFFLINE_MODEL, Settings
from service.encoder import options
from service.encoder.text import can_trim, encode_trimmed
from service.errors import EncoderError
from service.processes import background_priority

log = logging.getLogger(__name__)
TEXT_CACHE_SIZE = 256
# torch.set_num_threads() sets the calling thread's count *and* the count every thread not yet
# initialised starts with; so each path sets its own on every call, and the ingest default is
# what torch chose for this machine before anything changed it.
DEFAULT_THREADS = torch.get_num_threads()
_thread = threading.local()


def resolve_device(device: str) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise EncoderError("LOUPE_DEVICE=cuda but no CUDA device is visible; use auto or cpu")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _from_checkpoint(model_name: str, path: Path) -> tuple[Any, Any]:
    """(model, preprocess) with the weights of a local checkpoint file.

    The file goes to open_clip as `pretrained`, so the model is built and loaded in one
    step: built first with pretrained=None, open_clip would log "No pretrained weights
    loaded ... initialized randomly" just before our weights arrive, and a user reads
    that as a broken install.
    """
    if not path.is_file():
        raise EncoderError(
            f"checkpoint {path} does not exist; set LOUPE_PRETRAINED to an existing file "
            f"or to a pretrained tag of {model_name}"
        )
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=str(path))
    except (RuntimeError, KeyError, ValueError, AssertionError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0][:300]
        raise EncoderError(
            f"checkpoint {path} does not fit the {model_name} architecture "
            f"(LOUPE_MODEL={model_name}): {first}"
        ) from None
    except Exception as exc:  # unpickling garbage raises many kinds
        raise EncoderError(f"checkpoint {path} cannot be read: {exc}") from None
    return model, preprocess


def _create(model_name: str, pretrained: str | None) -> tuple[Any, Any]:
    """(model, preprocess) with weights from a tag, a local file, or none (random, and open_clip says so)."""
    if model_name not in open_clip.list_models():
        raise EncoderError(
            f"unknown model {model_name!r} (LOUPE_MODEL); use an open_clip architecture such as "
            f"ViT-B-32, or {OFFLINE_MODEL!r} for the offline model shipped with Loupe"
        )
    if pretrained is not None and (
        "/" in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors"))
    ):
        return _from_checkpoint(model_name, Path(pretrained).expanduser())
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=pretrained)
    except Exception as exc:
        raise EncoderError(
            f"cannot load pretrained weights {pretrained!r} for {model_name} "
            f"(LOUPE_MODEL / LOUPE_PRETRAINED): {str(exc).splitlines()[0][:200]}. Without network "
            "access, point LOUPE_PRETRAINED at a local checkpoint file, or use the offline "
            f"model: LOUPE_MODEL={OFFLINE_MODEL}"
        ) from None
    return model, preprocess


class ClipEncoder:
    """One open_clip model, ready to embed images (batched) and text queries (cached).

    Ingest and query encode in different threads; each sets its own torch
    thread count so a running sync does not starve a search.
    """

    def __init__(
        self,
        model_name: str,
        pretrained: str | None,
        *,
        device: str = "auto",
        query_threads: int | None = None,
        ingest_threads: int | None = None,
        ingest_nice: int = 0,
        backend: options.Backend = "torch",
        quantize: options.Quantize = "none",
        precision: options.Precision = "auto",
        cache_dir: Path | None = None,
    ) -> None:
        from service.encoder import tiny

        tiny.register_models()
        if model_name == OFFLINE_MODEL and (pretrained is None or "/" not in pretrained):
            pretrained = str(tiny.checkpoint_path())
        self.model_name = model_name
        self.pretrained = pretrained
        self.device = resolve_device(device)
        self.dtype = options.resolve_dtype(self.device, precision)
        self.query_threads = query_threads  # None: adaptive (_query_threads)
        self._busy = 0  # ingest batches and queries encoding right now
        self._busy_lock = threading.Lock()
        self.ingest_threads = ingest_threads
        model, self.preprocess = _create(model_name, pretrained)
        self.model = model.to(self.device, dtype=self.dtype).eval()
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.image_size = _image_size(self.model)
        self.dim = int(self._probe_dim())
        self._onnx = self._image_backend(backend, quantize, cache_dir)
        # Ingest batches run on one long-lived thread (and the OpenMP team it starts) at a lower CPU
        # priority, so a search arriving during a sync takes the cores it needs at once.
        self._ingest = ThreadPoolExecutor(
            1, thread_name_prefix="loupe-encode", initializer=_lower_priority, initargs=(ingest_nice,)
        )
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    def _image_backend(
        self, backend: options.Backend, quantize: options.Quantize, cache_dir: Path | None
    ) -> options.OnnxImageTower | None:
        """Swap in the image tower's options: ONNX Runtime and/or int8 (CPU only)."""
        if (backend != "torch" or quantize != "none") and self.device.type != "cpu":
            raise EncoderError("LOUPE_ENCODER_BACKEND=onnx and LOUPE_QUANTIZE=int8 are CPU options")
        if backend == "onnx":
            where = cache_dir or Path.home() / ".cache" / "loupe" / "onnx"
            return options.OnnxImageTower(
                self.model.visual, where, image_size=self.image_size, quantize=quantize
            )
        if quantize == "int8":
            self.model.visual = options.quantize_int8(self.model.visual)
        return None

    @property
    def identity(self) -> str:
        """A stable name for the vectors this encoder makes (model + weights)."""
        weights = (
            Path(self.pretrained).stem
            if self.pretrained and "/" in self.pretrained
            else (self.pretrained or "random")
        )
        return f"{self.model_name}/{weights}"

    def _probe_dim(self) -> int:
        with torch.inference_mode():
            tokens = self.tokenizer(["a"]).to(self.device)
            return int(self.model.encode_text(tokens).shape[-1])

    # -- images ----------------------------------------------------------

    def prepare(self, image: Image.Image) -> torch.Tensor:
        """Preprocess one decoded RGB image (safe to call from decode workers).

        The tensor ops run on this thread alone: a decode worker with its own
        OpenMP team would take cores from the encoder for a few microseconds of work.
        """
        if not getattr(_thread, "single", False):
            torch.set_num_threads(1)
            _thread.single = True
        return self.preprocess(image)  # type: ignore[no-any-return]

    def encode_prepared(self, items: Sequence[torch.Tensor]) -> np.ndarray:
        """Embed a batch of images that went through `prepare` (on the ingest thread)."""
        return self._ingest.submit(self._encode_batch, list(items)).result()

    def _encode_batch(self, items: list[torch.Tensor]) -> np.ndarray:
        threads = self.ingest_threads or DEFAULT_THREADS
        torch.set_num_threads(threads)
        _thread.single = False
        with self._using():
            return _normalise(self._image_features(torch.stack(list(items)), threads))

    @contextlib.contextmanager
    def _using(self) -> Iterator[int]:
        """Count this encode as busy; yield how many threads a query may use now.

        A query's OpenMP team waits at every layer for its slowest thread, so a team
        wider than the idle cores is slower than one thread (measured: 2 threads, 1.4 s,
        against one thread, 0.07 s, for a text query beside a busy core). So unless
        set, a query takes every core while nothing else encodes, and one thread
        beside a sync batch or another query.
        """
        with self._busy_lock:
            busy, self._busy = self._busy, self._busy + 1
        try:
            yield self.query_threads or (DEFAULT_THREADS if busy == 0 else 1)
        finally:
            with self._busy_lock:
                self._busy -= 1

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), np.float32)
        batch = torch.stack([self.prepare(im.convert("RGB")) for im in images])
        with self._using() as threads:
            torch.set_num_threads(threads)
            _thread.single = threads == 1
            return _normalise(self._image_features(batch, threads))

    def _image_features(self, batch: torch.Tensor, threads: int | None) -> torch.Tensor:
        if self._onnx is not None:
            return self._onnx(batch, threads or torch.get_num_threads())
        with torch.inference_mode():
            return self.model.encode_image(batch.to(self.device, dtype=self.dtype))  # type: ignore[no-any-return]

    # -- text ------------------------------------------------------------

    def encode_text(self, text: str) -> np.ndarray:
        """One query's vector; repeated queries come from a small LRU cache."""
        key = text.strip()
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        vec = self.encode_texts([key])[0]
        vec.setflags(write=False)
        with self._cache_lock:
            self._cache[key] = vec
            while len(self._cache) > TEXT_CACHE_SIZE:
                self._cache.popitem(last=False)
        return vec

    def encode_texts(self, texts: Sequence[str], *, trim: bool = True) -> np.ndarray:
        tokens = self.tokenizer(list(texts)).to(self.device)
        with self._using() as threads, torch.inference_mode():
            torch.set_num_threads(threads)
            _thread.single = threads == 1
            if trim and can_trim(self.model):
                feats = encode_trimmed(self.model, tokens)
            else:
                feats = self.model.encode_text(tokens)
        return _normalise(feats)


def _lower_priority(nice: int) -> None:
    """Run this thread (and the OpenMP team it starts) at niceness `nice` (Linux: per thread)."""
    if nice > 0 and not background_priority(nice):
        log.warning("cannot lower the ingest thread's priority; searches may slow during syncs")


def _normalise(feats: torch.Tensor) -> np.ndarray:
    feats = torch.nn.functional.normalize(feats.float(), dim=-1)
    return feats.cpu().numpy().astype(np.float32, copy=False)


def _image_size(model: Any) -> int:
    size = getattr(model.visual, "image_size", 224)
    return int(size[0] if isinstance(size, tuple | list) else size)


_ENCODERS: dict[tuple[str | None, ...], ClipEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def load_encoder(settings: Settings) -> ClipEncoder:
    """The process-wide encoder for these settings (models are large: load once)."""
    key = (
        settings.model,
        settings.pretrained,
        settings.device,
        settings.encoder_backend,
        settings.quantize,
        settings.precision,
    )
    with _ENCODERS_LOCK:
        enc = _ENCODERS.get(key)
        if enc is None:
            log.info("loading encoder %s (%s)", settings.model, settings.pretrained)
            enc = ClipEncoder(
                settings.model,
                settings.pretrained,
                device=settings.device,
                query_threads=settings.query_threads,
                ingest_threads=settings.ingest_threads,
                ingest_nice=settings.ingest_nice,
                backend=settings.encoder_backend,
                quantize=settings.quantize,
                precision=settings.precision,
                cache_dir=settings.home / "onnx",
            )
            _ENCODERS[key] = enc
        return enc
