"""Bytes to a bounded RGB image plus what the pixels tell (size, EXIF), safely."""

from __future__ import annotations

import contextlib
import ctypes
import io
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from service.errors import AssetError
from service.timestamps import rfc3339

ImageFile.LOAD_TRUNCATED_IMAGES = False
# open_image enforces LOUPE_INGEST__MAX_PIXELS before any pixel is decoded, so Pillow's own
# warning (at 89 MP, below that limit's default) is noise. It is silenced once here rather than
# raised per call: warnings.catch_warnings() swaps process-wide state, unsafe in decode threads.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
EXIF_DATETIME_ORIGINAL = 0x9003
EXIF_IFD = 0x8769
EXIF_MAKE = 0x010F
EXIF_MODEL = 0x0110
EXIF_ORIENTATION = 0x0112
# Decodes at least this large give their freed memory back to the OS (_return_freed_memory).
TRIM_ABOVE_PIXELS = 8_000_000


@dataclass(slots=True)
class Decoded:
    image: Image.Image  # RGB, oriented, reduced to about the encoder's size
    width: int  # of the original, after orientation
    height: int
    format: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Opened:
    """An image whose header is read and checked, its pixels not yet decoded."""

    image: Image.Image  # JPEGs already set to decode at a reduced scale (draft)
    width: int  # of the original, before orientation
    height: int
    format: str | None

    @property
    def pixels(self) -> int:
        """How many pixels loading will decode (after a JPEG's draft scaling)."""
        w, h = self.image.size
        return w * h


@contextlib.contextmanager
def _pillow_errors() -> Iterator[None]:
    """Pillow's many failure modes as one AssetError naming what is wrong."""
    try:
        yield
    except AssetError:
        raise
    except Image.DecompressionBombError as exc:
        raise AssetError(f"image rejected as a decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise AssetError("not an image, or a format Loupe cannot read") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise AssetError(f"image is corrupt or truncated: {exc}") from None


def open_image(data: bytes, *, target: int, max_pixels: int) -> Opened:
    """Read and check an image's header: cheap, so a sync can budget the decode before it runs.

    Anything that is not a readable image, or has more than `max_pixels`, raises
    AssetError. JPEGs are set to decode at a reduced scale in the DCT domain
    (draft mode) when the encoder needs far fewer pixels.
    """
    with _pillow_errors():
        img = Image.open(io.BytesIO(data))
        w, h = img.size
        if w * h > max_pixels:
            raise AssetError(
                f"image is {w}x{h} = {w * h:,} pixels, over the limit of {max_pixels:,} "
                "(LOUPE_INGEST__MAX_PIXELS); a decompression bomb guard"
            )
        # No EXIF here: a PNG's getexif() decodes every pixel to find a chunk after the image data.
        fmt = img.format
        if img.format == "JPEG":
            # draft() scales by 1/2..1/8 in the DCT domain, keeping both sides >= target: the
            # encoder resizes the short side to `target` anyway, and decoding a 640x480 photo at
            # 320x240 costs a third of the CPU (vectors unchanged to a cosine of 0.99994).
            img.draft("RGB", (target, target))
        return Opened(image=img, width=w, height=h, format=fmt)


def load(opened: Opened, *, target: int) -> Decoded:
    """Decode an opened image to RGB, oriented and reduced to about `target` on its short side."""
    img, w, h = opened.image, opened.width, opened.height
    with _pillow_errors():
        img.seek(0)  # first frame of animations
        img.load()
    meta = _exif_metadata(img)
    orientation = meta.get("orientation", 1)
    out: Image.Image = ImageOps.exif_transpose(img) if orientation != 1 else img
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    small = _small_rgb(out, target)
    if small is not img:
        img.close()  # the full-size pixels go now, not whenever the caller drops `opened`
    return Decoded(image=small, width=w, height=h, format=opened.format, metadata=meta)


class PixelBudget:
    """A bound on the pixels being decoded, or held decoded, at once by a sync's decode workers.

    A worker holds its image's pixel count (read from the header) from before the decode
    until the image is reduced to the encoder's size: a count of decodes alone lets eight
    workers hold eight 90 MP images (2-3 GB). Waiters are served first come, first
    served, so a large image is never starved by a stream of small ones; an image larger
    than the whole budget waits until it can decode alone. `limit=None` bounds nothing.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.held = 0  # pixels held right now
        self.peak = 0  # the most ever held at once
        self._cond = threading.Condition()
        self._next = 0  # the ticket the next arrival takes
        self._serving = 0  # the ticket allowed to take pixels next

    @contextlib.contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        want = pixels if self.limit is None else min(pixels, self.limit)
        with self._cond:
            ticket, self._next = self._next, self._next + 1
            while ticket != self._serving or (self.limit is not None and self.held + want > self.limit):
                self._cond.wait()
            self._serving += 1
            self.held += want
            self.peak = max(self.peak, self.held)
            self._cond.notify_all()  # the next in line may fit as well
        try:
            yield
        finally:
            with self._cond:
                self.held -= want
                self._cond.notify_all()
            if pixels >= TRIM_ABOVE_PIXELS:
                _return_freed_memory()


def _malloc_trim() -> Callable[[int], object] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc: its allocator returns (or keeps) memory its own way
        return None


_TRIM = _malloc_trim()


def _return_freed_memory() -> None:
    """Give the heap's free pages back to the OS after a large decode (glibc only).

    glibc keeps freed memory in per-thread arenas: after eight decode threads
    each held a 90 MP image once, the process kept GBs it no longer used, so a
    pixel budget alone bounded live pixels but not RSS (measured: 2.7 GB -> 0.8 GB
    for 40 PNGs of 20-89 MP, about 80 ms a call; benchmarks/RESULTS.md).
    """
    if _TRIM is not None:
        _TRIM(0)


def decode(data: bytes, *, target: int, max_pixels: int) -> Decoded:
    """Decode an image for encoding: `open_image` then `load`."""
    return load(open_image(data, target=target, max_pixels=max_pixels), target=target)


def _shrink(img: Image.Image, target: int) -> Image.Image:
    """Box-reduce by an integer factor while the short side stays >= target (what draft does for JPEG).

    The encoder's bicubic resize costs in proportion to the input's pixels; a
    reduce first cuts a PNG's preprocessing several times over.
    """
    factor = min(img.size) // max(target, 1)
    return img.reduce(factor) if factor >= 2 else img


def _small_rgb(img: Image.Image, target: int) -> Image.Image:
    """RGB for every mode, reduced as `_shrink` does: alpha flattened on white, 16-bit scaled.

    Alpha images are reduced first and flattened afterwards: Pillow reduces RGBA
    premultiplied, and compositing over an opaque colour is linear in premultiplied
    values, so the result equals flattening first, while no full-size copy is made
    (flattening first made four: a 90 MP RGBA image held 1.8 GB).
    """
    if img.mode == "RGB":
        return _shrink(img, target)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.point(lambda v: v * (1 / 256)).convert("L")
    if img.mode in ("P", "LA", "PA"):
        img = img.convert("RGBA")
    if img.mode != "RGBA":
        return _shrink(img.convert("RGB"), target)
    small = _shrink(img, target)
    background = Image.new("RGBA", small.size, (255, 255, 255, 255))
    background.alpha_composite(small)
    return background.convert("RGB")


def _exif_metadata(img: Image.Image) -> dict[str, Any]:
    try:
        exif = img.getexif()
    except Exception:  # malformed EXIF must not lose the image
        return {}
    out: dict[str, Any] = {}
    orientation = exif.get(EXIF_ORIENTATION)
    if isinstance(orientation, int) and 1 <= orientation <= 8:
        out["orientation"] = orientation
    for tag, name in ((EXIF_MAKE, "camera_make"), (EXIF_MODEL, "camera_model")):
        value = exif.get(tag)
        if isinstance(value, str) and value.strip("\x00 "):
            out[name] = value.strip("\x00 ")
    try:
        raw = exif.get_ifd(EXIF_IFD).get(EXIF_DATETIME_ORIGINAL)
    except Exception:
        raw = None
    if isinstance(raw, str):
        try:
            when = datetime.strptime(raw.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
            out["captured_at"] = rfc3339(when)  # EXIF has no zone: read as UTC, as before
        except ValueError:
            pass
    return out


def thumbnail(data: bytes, *, size: int, max_pixels: int) -> bytes:
    """A JPEG thumbnail whose longer side is at most `size`."""
    decoded = decode(data, target=size, max_pixels=max_pixels)
    img = decoded.image
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()
