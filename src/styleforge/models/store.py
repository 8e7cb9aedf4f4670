"""Converted style models in ``<styleforge home>/models`` (``NAME.safetensors`` + ``NAME.json``).

That folder is also ``styleforge serve``'s default model folder, and ``transfer --model
NAME`` looks there when NAME is not a file. Every import records where the model came
from (source, licence, the original file's SHA-256) in its JSON.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path

from styleforge.errors import StyleforgeError
from styleforge.fsutil import check_regular_file
from styleforge.models.names import check_model_name, installed_path, models_dir
from styleforge.models.registry import ModelSpec, model_spec, spec_for_file

LAYOUTS = {".onnx": "onnx-zoo", ".pth": "pytorch-examples", ".pt": "pytorch-examples", ".model": "pytorch-examples",
           ".t7": "torch7-fast-neural-style"}


@dataclass(frozen=True)
class InstalledModel:
    """An installed model: its name, file and recorded source."""

    name: str
    path: Path
    source: str
    size: int


def installed_models() -> list[InstalledModel]:
    """Every model in :func:`models_dir`, by name."""
    from styleforge.transfer import read_model_metadata

    folder = models_dir()
    found = []
    for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        source = read_model_metadata(path).get("source", "trained with styleforge")
        found.append(InstalledModel(path.stem, path, str(source), path.stat().st_size))
    return found


def import_model(path: str | os.PathLike[str], name: str | None = None, *, source: str | None = None,
                 licence: str | None = None) -> Path:
    """Convert a published model file into an installed styleforge model.

    Args:
        path: a pytorch/examples checkpoint (``.pth``/``.pt``/``.model``), an ONNX Model
            Zoo fast-neural-style file (``.onnx``) or a jcjohnson/fast-neural-style Torch7
            model (``.t7``).
        name: the installed name (default: the registry name for a known file, else the stem).
        source, licence: recorded in the metadata (defaults: the registry's, or the file).

    Returns:
        The installed ``.safetensors`` path.

    Raises:
        StyleforgeError: unreadable file, a layout that does not fit (naming the first key
            or node), a known file whose checksum does not match, or a bad name.
    """
    from styleforge.download import verify_file_checksums

    file = check_regular_file(path, "model file")
    layout = LAYOUTS.get(file.suffix.lower())
    if layout is None:
        raise StyleforgeError(f"cannot import '{file}': expected a pytorch/examples .pth, an ONNX Model Zoo .onnx or a "
                              "jcjohnson/fast-neural-style .t7 file")
    spec = spec_for_file(file.name)
    sha256 = verify_file_checksums(file, sha256=spec.sha256 if spec else None)
    name = check_model_name(name or (spec.name if spec else file.stem))
    state, convention = _read_layout(file, layout)
    metadata = {
        "name": name.replace("-", " ").replace("_", " ").title(),
        "source": source or (spec.source if spec else f"imported from {file.name}"),
        "licence": licence or (spec.licence if spec else "unknown: check the file's origin"),
        "layout": layout, "original_file": file.name, "original_sha256": sha256,
        "imported": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return _install(file, state, convention, name, metadata)


def _read_layout(file: Path, layout: str) -> tuple[dict, dict[str, str]]:
    """The TransformNet state dict and convention of ``file`` in ``layout``."""
    from styleforge.models.formats import PYTORCH_EXAMPLES

    if layout == "onnx-zoo":
        from styleforge.models.formats.onnx_zoo import convert_onnx

        return convert_onnx(file), PYTORCH_EXAMPLES
    if layout == "torch7-fast-neural-style":
        from styleforge.models.formats.torch7 import convert_torch7

        return convert_torch7(file)
    from styleforge.models.formats.pytorch_examples import convert_state_dict
    from styleforge.torch_files import load_torch_file

    return convert_state_dict(load_torch_file(file, "pytorch/examples model"), str(file)), PYTORCH_EXAMPLES


def _install(file: Path, state: dict, convention: dict[str, str], name: str, metadata: dict) -> Path:
    from styleforge.transfer import network_from_state, save_style_model

    net = network_from_state(file, convention, state)
    return save_style_model(net, models_dir() / f"{name}.safetensors", metadata)


def download_model(name: str, *, url: str | None = None, progress: bool = True) -> Path:
    """Download registry model ``name`` (from ``url`` when given, else its mirrors in
    order), verify its SHA-256, convert and install it; the download is then deleted.

    Raises:
        StyleforgeError: unknown name, every source failed (offline: the message says
            what to fetch and how to import it), or the conversion failed.
    """
    from styleforge.download import download_from_mirrors

    spec = model_spec(name)
    downloads = models_dir() / ".downloads"
    target = downloads / spec.filename
    published = f"{spec.size:,} bytes, SHA-256 {spec.sha256[:12]}..." if spec.sha256 and spec.size else spec.urls[0]
    hint = f"; offline? fetch {spec.filename} ({published}) on another machine and run 'styleforge models import PATH/{spec.filename}'"
    try:
        download_from_mirrors((url,) if url else spec.urls, target, sha256=spec.sha256, progress=progress, network_hint=hint)
        return import_model(target, spec.name, source=_source_with(spec, url), licence=spec.licence)
    finally:
        target.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            downloads.rmdir()  # only when empty


def _source_with(spec: ModelSpec, url: str | None) -> str:
    return f"{spec.source}; downloaded from {url}" if url else spec.source


def remove_model(name: str) -> Path:
    """Delete installed model ``name`` (and its JSON); returns the removed path."""
    path = installed_path(name)
    path.unlink()
    path.with_suffix(".json").unlink(missing_ok=True)
    return path
