"""Real photos shipped with the package (``styleforge/data/calibration``, public domain
or CC0; ``SOURCES.txt`` there): what ``--precision int8`` calibrates on, and where
``--runtime auto`` measures the PSNR of each bf16 path against fp32, so both figures
are taken on photos rather than synthetic images."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def shipped_photos() -> list[Path]:
    """The four shipped photos (long side 384 px), sorted by name."""
    folder = resources.files("styleforge.data").joinpath("calibration")
    return sorted(Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".jpg"))
