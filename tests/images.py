"""Real image files of every kind the catalog must read (or must reject), made with PIL."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def solid(color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> Image.Image:
    return Image.new("RGB", size, color)


def gradient(seed: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=3)
    x = np.linspace(0, 1, size[0])[None, :, None]
    arr = (base[None, None, :] * x + rng.integers(0, 40, (size[1], size[0], 3))).clip(0, 255)
    return Image.fromarray(arr.astype(np.uint8), "RGB")


def exif_rotated_jpeg(path: Path) -> None:
    """A 80x40 landscape stored with orientation 6: it displays as 40x80 portrait."""
    img = gradient(7, (80, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "LoupeCam"
    exif[0x0110] = "Model 1"
    exif.get_ifd(0x8769)[0x9003] = "2024:05:06 07:08:09"
    img.save(path, "JPEG", exif=exif.tobytes())


def write_zoo(root: Path) -> dict[str, Path]:
    """Readable images of every supported format and mode; returns name -> path."""
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}

    def put(name: str, img: Image.Image, fmt: str, **kw: object) -> None:
        path = root / name
        img.save(path, fmt, **kw)
        out[name] = path

    put("red.jpg", solid((220, 20, 20)), "JPEG")
    put("green.png", solid((20, 200, 20)), "PNG")
    put("blue.webp", solid((20, 20, 220)), "WEBP")
    frames = [solid((200, 200, 0)), solid((0, 0, 0))]
    path = root / "anim.gif"
    frames[0].save(path, "GIF", save_all=True, append_images=frames[1:], duration=100)
    out["anim.gif"] = path
    put("grad.bmp", gradient(1), "BMP")
    put("grad.tiff", gradient(2), "TIFF")
    put("cmyk.jpg", solid((10, 200, 200)).convert("CMYK"), "JPEG")
    pal = solid((255, 0, 255)).convert("P")
    put("palette.png", pal, "PNG", transparency=pal.getpixel((0, 0)))  # fully transparent
    arr16 = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    put("deep16.png", Image.fromarray(arr16).convert("I;16"), "PNG")
    exif_rotated_jpeg(root / "rotated.jpg")
    out["rotated.jpg"] = root / "rotated.jpg"
    return out


def write_bad(root: Path) -> dict[str, Path]:
    """Files that look like images but must fail alone: truncated, not an image, a pixel bomb."""
    root.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    gradient(3, (256, 256)).save(buf, "JPEG")
    (root / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    (root / "notimage.png").write_bytes(b"this is text, not a PNG\n" * 10)
    # 1-bit 12000x12000 PNG: a few KB on disk, 144 Mpx when decoded.
    Image.new("1", (12000, 12000)).save(root / "bomb.png", "PNG")
    return {p.name: p for p in root.iterdir()}
