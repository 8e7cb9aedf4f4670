"""The styles a service offers, found in its model folders.

A fast style is a trained network: ``NAME.safetensors`` (with its ``NAME.json``) or an
exported ``NAME.onnx``. A Gatys style is a painting (``NAME.jpg``, ``.png``...): its jobs
optimise an image with VGG19 for a bounded number of iterations, so they are offered only
when the VGG19 weights are present. The style id is the file's stem; the first folder
that holds a stem wins; stems outside the cache's naming rule (they appear in URLs) are skipped.
A multi-style model (conditional instance norm) offers each of its styles, as ``STEM-K``.
An AdaIN model (``styleforge train-adain``, or its export) and a style-vector network
(``magenta-arbitrary``, or its export) are one style each of kind ``adain``: "any style",
whose jobs carry the painting to take the style from.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from styleforge.config import ServiceSettings
from styleforge.images.io import IMAGE_SUFFIXES, read_image
from styleforge.vgg.weights.registry import NAME_PATTERN

if TYPE_CHECKING:
    from styleforge.models.loading import ModelInfo

log = logging.getLogger("styleforge.service")

FAST, GATYS, ADAIN = "fast", "gatys", "adain"
MODEL_SUFFIXES = (".safetensors", ".onnx")
#: The companion file of a style-vector model (``NAME.predict.onnx``, its style predictor).
PREDICTOR_SUFFIX = ".predict.onnx"


@dataclass(frozen=True)
class Style:
    """One style: ``id`` (URL-safe), display ``name``, ``kind`` (fast | gatys | adain), and
    the file that defines it (a model, or the painting for Gatys)."""

    id: str
    name: str
    kind: str
    path: Path
    index: int | None = None  # the style within a multi-style model

    def public(self) -> dict:
        """The JSON the API shows (no file paths)."""
        return {"id": self.id, "name": self.name, "kind": self.kind, "thumbnail_url": f"/api/styles/{self.id}/thumbnail",
                "needs_style_image": self.kind == ADAIN}


def discover_styles(folders: list[Path], settings: ServiceSettings) -> dict[str, Style]:
    """Scan ``folders`` (missing ones are skipped) and return ``{id: Style}`` in a stable order."""
    gatys_ready = vgg_available(settings.vgg)
    styles: dict[str, Style] = {}
    skipped_gatys = 0
    for folder in folders:
        if not folder.is_dir():
            log.warning("model folder %s does not exist; no styles from it", folder)
            continue
        for file in sorted(folder.iterdir()):
            kind = _kind_of(file)
            if kind is None or not NAME_PATTERN.match(file.stem) or file.stem in styles:
                continue
            if kind == GATYS and not gatys_ready:
                skipped_gatys += 1
                continue
            for style in _styles_of(file, kind):
                styles.setdefault(style.id, style)
    if skipped_gatys:
        log.warning("%d Gatys style(s) not offered: VGG19 weights '%s' are not available "
                    "(styleforge weights download vgg19, or set 'vgg' to a weights file)", skipped_gatys, settings.vgg)
    return styles


def _styles_of(file: Path, kind: str) -> list[Style]:
    """The style a file defines, or for a multi-style model one per style (ids ``STEM-K``)."""
    info = _model_info(file) if kind == FAST else None
    if info is not None and info.takes_any_style:
        return [Style(file.stem, _display_name(file), ADAIN, file)]
    if info is None or info.styles <= 1:
        return [Style(file.stem, _display_name(file), kind, file)]
    styles = []
    for index, name in enumerate(info.style_names):
        label = str(name).replace("_", " ").replace("-", " ").title()[:80] if name else f"Style {index}"
        styles.append(Style(f"{file.stem}-{index}", f"{_display_name(file)}: {label}", kind, file, index))
    return styles


def _model_info(file: Path) -> ModelInfo | None:
    """What the model file holds (:func:`~styleforge.models.loading.inspect_model`), or
    None when it is unreadable: it is then offered as a fast style, and its jobs fail
    with the reason."""
    from styleforge.errors import StyleforgeError
    from styleforge.models.loading import inspect_model

    try:
        return inspect_model(file)
    except (StyleforgeError, ImportError, OSError, ValueError):
        return None


def _kind_of(file: Path) -> str | None:
    if not file.is_file():
        return None
    suffix = file.suffix.lower()
    if file.name.lower().endswith(PREDICTOR_SUFFIX):
        return None  # a style-vector model's style predictor, not a style
    if suffix in MODEL_SUFFIXES:
        return FAST
    if suffix in IMAGE_SUFFIXES:
        # A picture beside a model of the same name is that model's preview, not a style.
        if any(file.with_suffix(s).exists() for s in MODEL_SUFFIXES):
            return None
        return GATYS
    return None


def _display_name(file: Path) -> str:
    name = _sidecar(file).get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()[:80]
    return file.stem.replace("_", " ").replace("-", " ").title()


def _sidecar(file: Path) -> dict:
    sidecar = file.with_suffix(".json")
    if file.suffix.lower() not in MODEL_SUFFIXES or not sidecar.is_file():
        return {}
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def vgg_available(source: str) -> bool:
    """True when the VGG19 weights ``source`` (cache name or file) can be loaded."""
    from styleforge.errors import StyleforgeError
    from styleforge.vgg.weights.store import cached_path

    if Path(source).suffix:
        return Path(source).expanduser().is_file()
    try:
        return cached_path(source).is_file()
    except StyleforgeError:
        return False


def thumbnail(style: Style, side: int = 128) -> Image.Image:
    """A small RGB picture of the style: the painting for Gatys styles, the thumbnail
    the model's JSON carries for fast ones, else a neutral tile with the initials."""
    if style.kind == GATYS:
        img = read_image(style.path)
    else:
        sidecar = _sidecar(style.path)
        encoded = sidecar.get("style_thumbnail_png_base64")
        if style.index is not None:
            entries = sidecar.get("styles")
            entry = entries[style.index] if isinstance(entries, list) and style.index < len(entries) else None
            encoded = entry.get("thumbnail_png_base64") if isinstance(entry, dict) else None
        img = _decoded(encoded) if isinstance(encoded, str) else None
        if img is None:
            img = _placeholder(style.name, side)
    img = img.copy()
    img.thumbnail((side, side))
    return img


def _decoded(encoded: str) -> Image.Image | None:
    try:
        with Image.open(io.BytesIO(base64.b64decode(encoded, validate=True)), formats=["PNG"]) as img:
            return img.convert("RGB")
    except (ValueError, OSError):
        return None


def _placeholder(name: str, side: int) -> Image.Image:
    from PIL import ImageDraw, ImageFont

    img = Image.new("RGB", (side, side), (92, 99, 112))
    initials = "".join(word[0] for word in name.split()[:2]).upper() or "?"
    font = ImageFont.load_default(size=side // 3)
    ImageDraw.Draw(img).text((side // 2, side // 2), initials, fill=(240, 240, 240), anchor="mm", font=font)
    return img


def encode_image(img: Image.Image, fmt: str) -> bytes:
    """``img`` encoded as ``JPEG`` or ``PNG`` bytes."""
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, quality=90)
    return buffer.getvalue()


class Catalog:
    """The styles of ``settings``' model folders, rescanned when a folder changes."""

    def __init__(self, settings: ServiceSettings) -> None:
        from styleforge.service.settings import model_folders

        self.settings = settings
        self.folders = model_folders(settings)
        self._stamp: tuple | None = None
        self._styles: dict[str, Style] = {}

    def styles(self) -> dict[str, Style]:
        """``{id: Style}`` as the folders are now."""
        stamp = tuple(_mtime(folder) for folder in self.folders)
        if stamp != self._stamp:
            self._styles = discover_styles(self.folders, self.settings)
            self._stamp = stamp
        return self._styles


def _mtime(folder: Path) -> int | None:
    try:
        return folder.stat().st_mtime_ns
    except OSError:
        return None
