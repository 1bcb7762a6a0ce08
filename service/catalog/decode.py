"""Bytes to a bounded RGB image plus what the pixels tell (size, EXIF), safely."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from service.errors import AssetError

ImageFile.LOAD_TRUNCATED_IMAGES = False
EXIF_DATETIME_ORIGINAL = 0x9003
EXIF_IFD = 0x8769
EXIF_MAKE = 0x010F
EXIF_MODEL = 0x0110
EXIF_ORIENTATION = 0x0112


@dataclass(slots=True)
class Decoded:
    image: Image.Image  # RGB, oriented, reduced to about the encoder's size
    width: int  # of the original, after orientation
    height: int
    format: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


def decode(data: bytes, *, target: int, max_pixels: int) -> Decoded:
    """Decode an image for encoding.

    JPEGs are decoded at a reduced scale in the DCT domain (draft mode) when the
    encoder needs far fewer pixels; EXIF orientation is applied; anything that
    is not a readable image, or has more than `max_pixels`, raises AssetError.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise AssetError(
                    f"image is {w}x{h} = {w * h:,} pixels, over the limit of {max_pixels:,} "
                    "(LOUPE_INGEST__MAX_PIXELS); a decompression bomb guard"
                )
            meta = _exif_metadata(img)
            orientation = meta.get("orientation", 1)
            fmt = img.format
            if img.format == "JPEG":
                # draft() scales by 1/2..1/8 in the DCT domain, keeping both sides >= target: the
                # encoder resizes the short side to `target` anyway, and decoding a 640x480 photo at
                # 320x240 costs a third of the CPU (vectors unchanged to a cosine of 0.99994).
                img.draft("RGB", (target, target))
            img.seek(0)  # first frame of animations
            img.load()
    except AssetError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise AssetError(f"image rejected as a decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise AssetError("not an image, or a format Loupe cannot read") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise AssetError(f"image is corrupt or truncated: {exc}") from None
    out: Image.Image = ImageOps.exif_transpose(img) if orientation != 1 else img
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    return Decoded(image=_shrink(_to_rgb(out), target), width=w, height=h, format=fmt, metadata=meta)


def _shrink(img: Image.Image, target: int) -> Image.Image:
    """Box-reduce by an integer factor while the short side stays >= target (what draft does for JPEG).

    The encoder's bicubic resize costs in proportion to the input's pixels; a
    reduce first cuts a PNG's preprocessing several times over.
    """
    factor = min(img.size) // max(target, 1)
    return img.reduce(factor) if factor >= 2 else img


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB for every mode: palette/alpha composited on white, 16-bit scaled, CMYK converted."""
    if img.mode == "RGB":
        return img
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.point(lambda v: v * (1 / 256)).convert("L")
    if img.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        background.alpha_composite(img.convert("RGBA"))
        return background.convert("RGB")
    return img.convert("RGB")


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
            out["captured_at"] = when.isoformat() + "Z"
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
