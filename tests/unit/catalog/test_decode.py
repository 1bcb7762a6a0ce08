"""Decoding every supported format to bounded RGB, and rejecting bad files alone."""

from __future__ import annotations

import io

import pytest

from service.catalog.decode import decode, load, open_image, thumbnail
from service.errors import AssetError
from tests.images import write_bad, write_zoo

MAX_PIXELS = 50_000_000


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory):
    return write_zoo(tmp_path_factory.mktemp("zoo"))


@pytest.mark.parametrize(
    "name",
    [
        "red.jpg",
        "green.png",
        "blue.webp",
        "anim.gif",
        "grad.bmp",
        "grad.tiff",
        "cmyk.jpg",
        "palette.png",
        "deep16.png",
        "rotated.jpg",
    ],
)
def test_every_format_decodes_to_rgb(zoo, name):
    d = decode(zoo[name].read_bytes(), target=32, max_pixels=MAX_PIXELS)
    assert d.image.mode == "RGB"
    assert d.width > 0 and d.height > 0


def test_colours_survive_conversion(zoo):
    cmyk = decode(zoo["cmyk.jpg"].read_bytes(), target=32, max_pixels=MAX_PIXELS).image
    r, g, b = cmyk.getpixel((10, 10))
    assert g > 150 and b > 150 and r < 80  # cyan stays cyan
    gif = decode(zoo["anim.gif"].read_bytes(), target=32, max_pixels=MAX_PIXELS).image
    assert gif.getpixel((5, 5))[0] > 150  # first frame (yellow), not the black second
    pal = decode(zoo["palette.png"].read_bytes(), target=32, max_pixels=MAX_PIXELS).image
    assert pal.getpixel((5, 5)) == (255, 255, 255)  # transparent -> white background


def test_sixteen_bit_keeps_its_range(zoo):
    img = decode(zoo["deep16.png"].read_bytes(), target=32, max_pixels=MAX_PIXELS).image
    lo, hi = img.convert("L").getextrema()
    assert lo < 10 and hi > 240


def test_exif_orientation_and_metadata(zoo):
    d = decode(zoo["rotated.jpg"].read_bytes(), target=32, max_pixels=MAX_PIXELS)
    assert (d.width, d.height) == (40, 80)
    assert d.image.size[0] < d.image.size[1]
    assert d.metadata["camera_make"] == "LoupeCam"
    assert d.metadata["captured_at"] == "2024-05-06T07:08:09Z"
    assert d.metadata["orientation"] == 6


def test_large_jpeg_is_drafted_down(tmp_path):
    from tests.images import gradient

    path = tmp_path / "big.jpg"
    gradient(5, (4000, 3000)).save(path, "JPEG")
    d = decode(path.read_bytes(), target=64, max_pixels=MAX_PIXELS)
    assert (d.width, d.height) == (4000, 3000)  # the original's size is reported
    assert max(d.image.size) <= 1000  # but decoded at a reduced scale


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("truncated.jpg", "corrupt or truncated"),
        ("notimage.png", "not an image"),
        ("bomb.png", "decompression bomb"),
    ],
)
def test_bad_files_raise_asset_errors(tmp_path, name, reason):
    bad = write_bad(tmp_path)
    with pytest.raises(AssetError, match=reason):
        decode(bad[name].read_bytes(), target=32, max_pixels=MAX_PIXELS)


def test_thumbnail_is_a_small_jpeg(zoo):
    data = thumbnail(zoo["grad.tiff"].read_bytes(), size=16, max_pixels=MAX_PIXELS)
    assert data[:2] == b"\xff\xd8"


def test_the_header_tells_the_pixels_a_decode_will_hold(tmp_path):
    from tests.images import gradient

    big_png, big_jpg = tmp_path / "big.png", tmp_path / "big.jpg"
    gradient(6, (1200, 900)).save(big_png, "PNG")
    gradient(6, (1200, 900)).save(big_jpg, "JPEG")
    png = open_image(big_png.read_bytes(), target=64, max_pixels=MAX_PIXELS)
    assert png.pixels == 1200 * 900
    assert getattr(png.image, "_im", None) is None  # nothing decoded yet (Pillow 13 keeps the core in _im)
    jpg = open_image(big_jpg.read_bytes(), target=64, max_pixels=MAX_PIXELS)
    assert jpg.pixels == 150 * 113  # decoded at 1/8 scale, the draft's size
    assert (jpg.width, jpg.height) == (1200, 900)
    decoded = load(png, target=64)
    assert min(decoded.image.size) >= 64 and decoded.image.size[0] < 1200
    with pytest.raises(ValueError, match="closed"):
        png.image.getpixel((0, 0))  # the full-size pixels were released, not kept beside the small copy
    with pytest.raises(AssetError, match="over the limit"):
        open_image(big_png.read_bytes(), target=64, max_pixels=1000)


def test_alpha_is_reduced_premultiplied_which_equals_flattening_first():
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, size=(800, 1000, 4), dtype=np.uint8)
    rgba[:400, :, 3] = 0  # fully transparent half, with colours that must not bleed in
    # Fine strokes: opaque red beside transparent black, where a reduce that did not premultiply
    # colours would turn the flattened result (255, 128, 128) into (191, 128, 128).
    rgba[400:, ::2] = (255, 0, 0, 255)
    rgba[400:, 1::2] = (0, 0, 0, 0)
    img = Image.fromarray(rgba, "RGBA")
    flat = Image.new("RGBA", img.size, (255, 255, 255, 255))
    flat.alpha_composite(img)
    expected = np.asarray(flat.convert("RGB").reduce(12), dtype=np.int16)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    got = np.asarray(decode(buf.getvalue(), target=64, max_pixels=MAX_PIXELS).image, dtype=np.int16)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 2  # rounding of the premultiplied values
    assert (got[: 400 // 12 - 1] == 255).all()  # the transparent half is white
