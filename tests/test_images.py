"""Safe image reading and atomic writing."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from styleforge.errors import StyleforgeError
from styleforge.images.io import find_images, read_image, to_rgb, write_image


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A small valid PNG whose IHDR is rewritten to claim ``width x height`` (CRC fixed)."""
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("fmt,suffix", [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("BMP", "bmp")])
def test_reads_every_supported_format_as_rgb(tmp_path: Path, fmt: str, suffix: str) -> None:
    path = tmp_path / f"img.{suffix}"
    Image.new("RGB", (40, 30), (200, 100, 50)).save(path, format=fmt)
    img = read_image(path)
    assert img.mode == "RGB" and img.size == (40, 30)
    assert np.abs(np.asarray(img, dtype=int) - (200, 100, 50)).max() <= 3  # lossy formats


def test_grayscale_palette_and_16_bit_become_rgb(tmp_path: Path) -> None:
    Image.new("L", (5, 4), 77).save(tmp_path / "gray.png")
    assert np.asarray(read_image(tmp_path / "gray.png"))[0, 0].tolist() == [77, 77, 77]
    Image.new("RGB", (5, 4), (0, 128, 255)).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "pal.png")
    assert np.asarray(read_image(tmp_path / "pal.png"))[0, 0].tolist() == [0, 128, 255]
    Image.fromarray(np.full((4, 5), 65535, dtype=np.uint16)).save(tmp_path / "deep.png")
    assert np.asarray(read_image(tmp_path / "deep.png"))[0, 0].tolist() == [255, 255, 255]


def test_transparency_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (0, 0, 0, 0)  # fully transparent black -> white
    rgba[1, 0] = (0, 0, 255, 128)  # half blue over white
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    out = np.asarray(read_image(tmp_path / "a.png")).astype(int)
    assert out[0, 0].tolist() == [255, 0, 0]
    assert out[0, 1].tolist() == [255, 255, 255]
    assert np.abs(out[1, 0] - (127, 127, 255)).max() <= 1


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)  # landscape, stored; left half red
    pixels[:, :20] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    img = read_image(tmp_path / "phone.jpg")
    assert img.size == (20, 40)  # displayed upright: portrait
    arr = np.asarray(img).astype(int)
    assert arr[5, 10, 0] > 200 and arr[35, 10, 0] < 60  # red moved to the top half


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(StyleforgeError, match=r"cannot read image '.*nope.jpg': no such file"):
        read_image(tmp_path / "nope.jpg")
    with pytest.raises(StyleforgeError, match="folder"):
        read_image(tmp_path)


def test_text_file_named_jpg_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("hello, I am not a picture\n")
    with pytest.raises(StyleforgeError, match="not a JPEG, PNG, WebP or BMP image"):
        read_image(tmp_path / "notes.jpg")


def test_unsupported_format_is_refused(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "x.gif")
    with pytest.raises(StyleforgeError, match="not a JPEG, PNG, WebP or BMP"):
        read_image(tmp_path / "x.gif")


def test_truncated_jpeg_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(StyleforgeError, match="truncated"):
        read_image(tmp_path / "cut.jpg")


@pytest.mark.parametrize("size", [(100_000, 100_000), (9_000, 9_000)])  # past Pillow's own limit, and only past ours
def test_decompression_bomb_png_is_refused_before_decoding(tmp_path: Path, size: tuple[int, int]) -> None:
    path = png_declaring(tmp_path / "bomb.png", *size)
    with pytest.raises(StyleforgeError, match="pixels"):
        read_image(path)


def test_pixel_limit_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.new("RGB", (100, 100)).save(tmp_path / "img.png")
    with pytest.raises(StyleforgeError, match="over the limit of 5,000"):
        read_image(tmp_path / "img.png", max_pixels=5_000)
    monkeypatch.setenv("STYLEFORGE_MAX_PIXELS", "9999")
    with pytest.raises(StyleforgeError, match="STYLEFORGE_MAX_PIXELS"):
        read_image(tmp_path / "img.png")
    monkeypatch.setenv("STYLEFORGE_MAX_PIXELS", "lots")
    with pytest.raises(StyleforgeError, match="not a positive integer"):
        read_image(tmp_path / "img.png")


def test_write_is_atomic_and_format_follows_suffix(tmp_path: Path) -> None:
    img = Image.new("RGB", (16, 8), (1, 2, 3))
    out = write_image(img, tmp_path / "sub" / "out.png")
    assert Image.open(out).format == "PNG"
    assert np.asarray(read_image(out))[0, 0].tolist() == [1, 2, 3]
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["out.png"]  # no temp file left
    with pytest.raises(StyleforgeError, match="unknown suffix"):
        write_image(img, tmp_path / "out.tiff")


def test_failed_write_leaves_previous_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = write_image(Image.new("RGB", (4, 4), (9, 9, 9)), tmp_path / "keep.png")
    before = target.read_bytes()

    def explode(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", explode)
    with pytest.raises(KeyboardInterrupt):
        write_image(Image.new("RGB", (4, 4)), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]


def test_to_rgb_cmyk(tmp_path: Path) -> None:
    assert to_rgb(Image.new("CMYK", (2, 2), (0, 0, 0, 0))).getpixel((0, 0)) == (255, 255, 255)


def test_find_images_is_recursive_and_sorted(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/b/z.jpg", "a/y.PNG", "x.webp", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)] == ["a/b/z.jpg", "a/y.PNG", "x.webp"]
