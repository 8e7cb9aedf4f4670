"""Image input and output: the one place every command reads and writes pictures.

Reading is defensive because images come from users and from the web service:

* only JPEG, PNG, WebP and BMP decoders are allowed (Pillow is told so, so a file is
  never handed to a decoder for some exotic format);
* the pixel count is checked from the header *before* decoding, against a limit
  (default 64 megapixels, ``STYLEFORGE_MAX_PIXELS`` or ``max_pixels=`` to change it),
  which stops decompression bombs such as a tiny PNG declaring 100000x100000 pixels;
* truncated and corrupt files are refused (Pillow's ``LOAD_TRUNCATED_IMAGES`` stays off);
* the EXIF orientation is applied, so a phone photo is the right way up;
* every mode becomes 8-bit RGB: grayscale is replicated, palette images are expanded,
  transparent images are composited on white (transparent pixels often hold black or
  garbage colour, which would otherwise leak into the result), 16-bit grayscale is
  scaled to 8 bits, CMYK is converted.

Failures raise :class:`~styleforge.errors.StyleforgeError` with one line naming the
file: ``cannot read image 'x.jpg': <reason>``.

Writing is atomic (temporary file, then rename), so an interrupted run never leaves a
half-written image.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from styleforge.config import max_pixels_from_env
from styleforge.errors import StyleforgeError, one_line
from styleforge.utils.fs import check_regular_file, write_bytes_atomic
from styleforge.utils.limits import check_pixel_budget

#: Pillow format names accepted on input.
READ_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")

#: File suffix -> Pillow format used on output.
WRITE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP"}

#: Suffixes recognised when a command scans a folder for images.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})


def read_image(path: str | os.PathLike[str], max_pixels: int | None = None) -> Image.Image:
    """Read an image file as an 8-bit RGB PIL image, upright, fully decoded.

    Args:
        path: the file to read.
        max_pixels: refuse images with more pixels than this; ``None`` uses
            ``STYLEFORGE_MAX_PIXELS`` or the 64-megapixel default.

    Returns:
        A loaded ``PIL.Image.Image`` in mode ``RGB`` (the file is closed).

    Raises:
        StyleforgeError: missing file, unsupported or corrupt data, truncated file,
            or too many pixels.
    """
    limit = max_pixels if max_pixels is not None else max_pixels_from_env()
    file = check_regular_file(path, "image")
    _let_pillow_allow(limit)
    try:
        with warnings.catch_warnings():
            # Our own pixel check below replaces Pillow's warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(file, formats=list(READ_FORMATS)) as img:
                _check_pixel_count(file, img.size, limit)
                img.load()
                upright = _apply_exif_orientation(img)
                return to_rgb(upright)
    except StyleforgeError:
        raise
    except Image.DecompressionBombError:
        raise _read_error(file, f"too many pixels (over Pillow's safety limit; the limit here is {limit:,})") from None
    except UnidentifiedImageError:
        raise _read_error(file, "not a JPEG, PNG, WebP or BMP image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _read_error(file, f"corrupt or truncated image data ({one_line(exc)})") from None


def read_images(paths: list[str | os.PathLike[str]], max_pixels: int | None = None) -> list[Image.Image]:
    """Read several images with :func:`read_image`; returns them in the same order."""
    return [read_image(p, max_pixels=max_pixels) for p in paths]


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB (see the module docstring for the rules).

    Args:
        img: a loaded PIL image of any mode.

    Returns:
        An RGB image of the same size (``img`` itself if it already is RGB).
    """
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit grayscale (e.g. scientific PNGs): Pillow's convert("L") would clip
        # at 255 instead of scaling, so scale 0..65535 to 0..255 ourselves.
        values = np.asarray(img, dtype=np.float64) * (255.0 / 65535.0)
        img = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")
        return img.convert("RGB")
    if _has_transparency(img):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def write_image(img: Image.Image, path: str | os.PathLike[str], quality: int = 95) -> Path:
    """Write an image atomically; the format follows the suffix (.jpg/.png/.webp/.bmp).

    Args:
        img: the image to save (converted to RGB for formats without alpha).
        path: destination; parent folders are created.
        quality: JPEG/WebP quality, 1-100.

    Returns:
        The destination path.

    Raises:
        StyleforgeError: unknown suffix or the file cannot be written.
    """
    # encoded in memory, then one verified write: never a truncated file
    return write_bytes_atomic(path, encode_image(img, path, quality))


def encode_image(img: Image.Image, path: str | os.PathLike[str], quality: int = 95) -> bytes:
    """The bytes of ``img`` in the format ``path``'s suffix names (.jpg/.png/.webp/.bmp).

    Raises:
        StyleforgeError: an unknown suffix.
    """
    dest = Path(path)
    fmt = WRITE_FORMATS.get(dest.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(WRITE_FORMATS))
        raise StyleforgeError(f"cannot write image '{dest}': unknown suffix {dest.suffix!r}; use one of {known}")
    if fmt in ("JPEG", "BMP") and img.mode != "RGB":
        img = to_rgb(img)
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    encoded = io.BytesIO()
    img.save(encoded, format=fmt, **options)
    return encoded.getvalue()


def find_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Return the image files (by suffix) under ``folder``, recursively, sorted.

    Only regular files count (a FIFO or device named ``x.jpg`` is not an image file)."""
    root = Path(folder)
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and _is_regular(p))


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def _read_error(file: Path, reason: str) -> StyleforgeError:
    return StyleforgeError(f"cannot read image '{file}': {reason}")



def _check_pixel_count(file: Path, size: tuple[int, int], limit: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise _read_error(file, f"invalid dimensions {width}x{height}")
    if width * height > limit:
        raise _read_error(
            file,
            f"{width}x{height} is {width * height:,} pixels, over the limit of {limit:,} "
            "(raise it with STYLEFORGE_MAX_PIXELS if the file is trusted)",
        )


def _let_pillow_allow(limit: int) -> None:
    # Pillow refuses images over 2 * MAX_IMAGE_PIXELS at open(), before our own check
    # can run. When a user raises our limit above Pillow's, raise Pillow's to match
    # (never lower it: other code in the process may rely on it).
    if Image.MAX_IMAGE_PIXELS is not None and limit > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = limit


def _apply_exif_orientation(img: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(img)
    except (OSError, ValueError, KeyError, SyntaxError):
        # A malformed EXIF block says nothing reliable about orientation: keep pixels as stored.
        return img


def _has_transparency(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info


def image_to_array(img: Image.Image) -> np.ndarray:
    """PIL RGB -> (1, 3, H, W) float32 in [0, 1]."""
    return (np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0).transpose(2, 0, 1)[None].copy()


def array_to_image(array: np.ndarray) -> Image.Image:
    """(1, 3, H, W) floats in [0, 1] -> PIL RGB (clipped, rounded)."""
    hwc = np.clip(np.asarray(array, dtype=np.float64)[0].transpose(1, 2, 0), 0.0, 1.0)
    return Image.fromarray(np.rint(hwc * 255.0).astype(np.uint8), mode="RGB")


def long_side_size(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """The (width, height) that :func:`resize_long_side` gives an image of ``size``."""
    width, height = size
    scale = long_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_long_side(img: Image.Image, long_side: int) -> Image.Image:
    """Resize so the longer side is ``long_side`` pixels, keeping the aspect ratio
    (refused before allocating when the result would exceed the pixel limit)."""
    size = check_pixel_budget(*long_side_size(img.size, long_side), f"resizing to a long side of {long_side}")
    return img if size == img.size else img.resize(size, Image.Resampling.LANCZOS)
