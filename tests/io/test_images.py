"""Safe image loading: hostile and unusual files give one clear ImageError; odd modes become RGB."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from convsight.errors import ImageError
from convsight.io.images import image_size, list_images, load_image, load_image_tensor, save_image


def _jpeg_bytes(size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def huge_png(tmp_path_factory):
    """A real, valid 30000x30000 PNG (1-bit, ~100 kB on disk, 900 megapixels decoded)."""
    path = tmp_path_factory.mktemp("bomb") / "huge.png"
    Image.new("1", (30000, 30000)).save(path)
    return path


def test_truncated_jpeg(tmp_path):
    p = tmp_path / "cut.jpg"
    p.write_bytes(_jpeg_bytes()[:400])
    with pytest.raises(ImageError, match="truncated or corrupt") as e:
        load_image(p)
    assert str(p) in str(e.value)


def test_text_file_named_png(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("hello, I am not a picture\n")
    with pytest.raises(ImageError, match="not an image"):
        load_image(p)


def test_decompression_bomb_is_refused_before_decoding(huge_png):
    with pytest.raises(ImageError, match="too large"):
        load_image(huge_png)


def test_our_pixel_limit_applies_below_pils(tmp_path):
    p = tmp_path / "big.png"
    Image.new("RGB", (300, 200)).save(p)
    with pytest.raises(ImageError, match="exceeds the limit"):
        load_image(p, max_pixels=50_000)
    assert load_image(p, max_pixels=60_000).shape == (200, 300, 3)


@pytest.mark.parametrize("kind", ["missing", "empty", "folder"])
def test_not_a_file(tmp_path, kind):
    p = tmp_path / "x.jpg"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "folder":
        p.mkdir()
    with pytest.raises(ImageError, match={"missing": "not found", "empty": "empty file", "folder": "is a folder"}[kind]):
        load_image(p)


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # left half white
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    p = tmp_path / "rot.jpg"
    im.save(p, exif=exif.tobytes(), quality=100)
    out = load_image(p)
    assert out.shape == (40, 20, 3)
    assert image_size(p) == (20, 40)
    assert out[:15].mean() > 200 and out[25:].mean() < 50  # the white half is now on top


@pytest.mark.parametrize(
    "mode, make",
    [
        ("L", lambda: Image.fromarray(np.full((8, 8), 128, np.uint8))),
        ("I;16", lambda: Image.fromarray(np.full((8, 8), 65535 // 2, np.uint16))),
        ("RGBA", lambda: Image.fromarray(np.dstack([np.full((8, 8, 3), 128, np.uint8), np.full((8, 8), 255, np.uint8)]))),
        ("P", lambda: Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).convert("P")),
        ("CMYK", lambda: Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).convert("CMYK")),
    ],
)
def test_every_mode_becomes_8bit_rgb(tmp_path, mode, make):
    im = make()
    ext = "jpg" if mode == "CMYK" else "png"
    p = tmp_path / f"x.{ext}"
    im.save(p)
    out = load_image(p)
    assert out.dtype == np.uint8 and out.shape == (8, 8, 3)
    assert abs(int(out.mean()) - 128) <= 3, (mode, out.mean())  # 16-bit data is scaled, not clipped


def test_transparent_pixels_become_white(tmp_path):
    p = tmp_path / "a.png"
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(p)
    assert load_image(p).min() == 255


def test_tensor_and_save_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)
    save_image(arr, tmp_path / "a.png")
    t = load_image_tensor(tmp_path / "a.png")
    assert t.shape == (3, 10, 12) and t.dtype.is_floating_point and 0 <= t.min() and t.max() <= 1
    assert np.array_equal((t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), arr)
    with pytest.raises(ImageError, match="unknown image extension"):
        save_image(arr, tmp_path / "a.xyz")
    assert not list(tmp_path.glob(".*"))  # no temp file left behind


def test_list_images(tmp_path):
    with pytest.raises(ImageError, match="no images found"):
        list_images(tmp_path)
    (tmp_path / "sub").mkdir()
    save_image(np.zeros((2, 2, 3), np.uint8), tmp_path / "sub" / "b.png")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_images(tmp_path)] == ["b.png"]
