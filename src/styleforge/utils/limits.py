"""Size limits checked before anything is allocated.

One pixel budget serves decoding and every resize: ``STYLEFORGE_MAX_PIXELS`` (default
64 megapixels, :data:`styleforge.config.DEFAULT_MAX_PIXELS`). A size option, or an
extreme aspect ratio (a 100000x1 image whose short side is scaled to 256), that would
make a larger picture is refused with one line instead of exhausting memory.
"""

from __future__ import annotations

from styleforge.config import max_pixels_from_env
from styleforge.errors import StyleforgeError

#: The smallest side AdaIN's decoder takes: its relu4_1 input (1/8 of the image) must be
#: at least 2 pixels for the reflection pads (:mod:`styleforge.nets.adain` pads to it).
ADAIN_MIN_SIDE = 16


def check_pixel_budget(width: int, height: int, what: str) -> tuple[int, int]:
    """Return ``(width, height)`` if that picture fits the pixel limit; raise otherwise.

    Args:
        width: the size about to be allocated.
        height: the size about to be allocated.
        what: what is being made, for the message (e.g. ``"resizing 'a.jpg'"``).
    """
    limit = max_pixels_from_env()
    if width * height > limit:
        raise StyleforgeError(
            f"{what} would make a {width}x{height} picture ({width * height:,} pixels), over the limit of "
            f"{limit:,}: choose a smaller size (or raise STYLEFORGE_MAX_PIXELS if the machine has the memory)"
        )
    return width, height


def check_min_side(width: int, height: int, minimum: int, what: str) -> None:
    """Refuse a picture whose shorter side is below ``minimum`` pixels."""
    if min(width, height) < minimum:
        raise StyleforgeError(
            f"{what} is {width}x{height}, too small or too thin: each side must be at least {minimum} pixels "
            "at the size used (use a larger --size, or a less elongated image)"
        )
