"""The weights cache: download, import, list, locate, remove, and resolve a source.

Every file that enters the cache is converted once to ``<home>/weights/NAME.safetensors``
(canonical arrays plus metadata: source, source SHA-256, preprocessing convention,
class names, import date), so later loads are fast and never unpickle anything.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path

from styleforge.errors import StyleforgeError
from styleforge.utils.download import download_file, verify_file_checksums
from styleforge.utils.fs import check_regular_file, human_size
from styleforge.vgg.weights.formats import (
    WEIGHT_SUFFIXES,
    WeightsBundle,
    read_safetensors,
    read_weights_file,
    write_safetensors,
)
from styleforge.vgg.weights.registry import REGISTRY, WeightSpec, check_name, downloads_dir, weights_dir


@dataclass(frozen=True)
class CacheEntry:
    """One row of ``styleforge weights list``."""

    name: str
    cached: bool
    path: Path
    size: int | None
    description: str


def cached_path(name: str) -> Path:
    """Return where weights ``name`` live (or would live) in the cache."""
    return weights_dir() / f"{check_name(name)}.safetensors"


def download_weights(name: str, *, progress: bool = True, keep_original: bool = False, url: str | None = None) -> Path:
    """Download registry weights ``name``, verify them, convert them into the cache.

    Args:
        name: a key of :data:`~styleforge.vgg.weights.registry.REGISTRY`.
        progress: show download progress.
        keep_original: keep the downloaded .pth/.mat beside the cache (it is deleted
            after conversion by default: the safetensors file holds the same numbers).
        url: fetch from this mirror instead of the official address; the published
            checksum is verified all the same.

    Returns:
        The path of the converted safetensors file.
    """
    spec = registry_spec(name)
    if url is not None:
        if not url.startswith(("http://", "https://", "file:")):
            raise StyleforgeError(f"--url {url!r} is not an http(s) or file URL")
        spec = dataclasses.replace(spec, url=url)
    raw_path = downloads_dir() / spec.filename
    offline_hint = (
        f"; if this machine is offline, fetch {spec.filename} (about {human_size(spec.approx_size)}) elsewhere "
        f"and run 'styleforge weights import PATH/{spec.filename}'"
    )
    result = download_file(
        spec.url, raw_path, sha256_prefix=spec.sha256_prefix, md5=spec.md5, progress=progress, network_hint=offline_hint
    )
    try:
        return _convert_into_cache(raw_path, spec.name, source_sha256=result.sha256, source_url=spec.url)
    finally:
        if not keep_original:
            raw_path.unlink(missing_ok=True)


def import_weights(path: str | os.PathLike[str], name: str | None = None) -> Path:
    """Convert a local .pth/.mat/.safetensors file into the cache.

    Args:
        path: the file to import.
        name: cache name; default: the registry name if the file has a registry file's
            name (``vgg19-dcbb9e9d.pth`` -> ``vgg19``), else the file's stem. Importing
            under a registry name checks the file against that entry's published checksum.

    Returns:
        The path of the converted safetensors file.
    """
    file = check_regular_file(path, "weights file")
    target = check_name(name if name is not None else default_import_name(file))
    spec = REGISTRY.get(target)
    if spec is not None:
        try:
            sha = verify_file_checksums(file, sha256_prefix=spec.sha256_prefix, md5=spec.md5)
        except StyleforgeError as exc:
            raise StyleforgeError(f"{exc}. '{target}' is reserved for {spec.filename}; import other files with --name") from None
    else:
        sha = verify_file_checksums(file)
    return _convert_into_cache(file, target, source_sha256=sha, source_url=None)


def default_import_name(file: Path) -> str:
    """Return the cache name an import of ``file`` gets when none is given."""
    for spec in REGISTRY.values():
        if file.name == spec.filename:
            return spec.name
    return file.name[: -len(file.suffix)] if file.suffix else file.name


def list_weights() -> list[CacheEntry]:
    """Return the registry entries (cached or not) and every other cached file."""
    entries = []
    for spec in REGISTRY.values():
        path = cached_path(spec.name)
        entries.append(CacheEntry(spec.name, path.is_file(), path, _size(path), spec.description))
    folder = weights_dir()
    if folder.is_dir():
        for path in sorted(folder.glob("*.safetensors")):
            name = path.name[: -len(".safetensors")]
            if name not in REGISTRY and path.is_file():  # a folder of that name is not weights
                entries.append(CacheEntry(name, True, path, _size(path), f"imported ({_source_of(path)})"))
    return entries


def weights_path(name: str) -> Path:
    """Return the cached file of ``name``; raises with instructions when absent."""
    path = cached_path(name)
    if not path.is_file():
        raise missing_weights_error(name)
    return path


def remove_weights(name: str) -> Path:
    """Delete cached weights ``name``; returns the deleted path.

    Raises:
        StyleforgeError: ``name`` is not in the cache (there is nothing to remove).
    """
    path = cached_path(name)
    if not path.is_file():
        cached = ", ".join(e.name for e in list_weights() if e.cached) or "none"
        raise StyleforgeError(f"weights {name!r} are not in the cache ({weights_dir()}), so there is nothing to remove; "
                              f"cached: {cached} (styleforge weights list)")
    path.unlink()
    return path


def load_bundle(source: str | os.PathLike[str]) -> WeightsBundle:
    """Resolve a weights source to a bundle: a cache name or a path to a weights file.

    A value containing a path separator or ending in .pth/.pt/.mat/.safetensors is a
    path (read directly, converted in memory); anything else is a cache name.
    """
    text = os.fspath(source)
    if _looks_like_path(text):
        return read_weights_file(text)
    path = weights_path(text)
    bundle = read_safetensors(path)
    bundle.validate()
    return bundle


def weights_file(source: str | os.PathLike[str]) -> Path:
    """The file a weights source names (see :func:`load_bundle`), checked to exist
    without reading it: a path must be a regular file, a name must be in the cache.

    Raises:
        StyleforgeError: no such file, or a name that is unknown or not downloaded (the
            message says how to get it).
    """
    text = os.fspath(source)
    if _looks_like_path(text):
        return check_regular_file(text, "weights file")
    return weights_path(text)


def missing_weights_error(name: str) -> StyleforgeError:
    """Build the error for weights that are not in the cache, saying how to get them."""
    spec = REGISTRY.get(name)
    if spec is None:
        known = ", ".join(sorted({*REGISTRY, *(e.name for e in list_weights())}))
        return StyleforgeError(
            f"unknown weights {name!r} (known: {known}); give a cache name or a path to a "
            f"{'/'.join(WEIGHT_SUFFIXES)} file"
        )
    return StyleforgeError(
        f"weights {name!r} are not in the cache ({weights_dir()}): run 'styleforge weights download {name}' "
        f"(about {human_size(spec.approx_size)} from {spec.url}); without internet, copy {spec.filename} from a "
        f"machine that has it and run 'styleforge weights import PATH/{spec.filename}'"
    )


def registry_spec(name: str) -> WeightSpec:
    """Return the registry entry ``name``; raises listing the known names otherwise."""
    if name not in REGISTRY:
        raise StyleforgeError(
            f"no download is known for {name!r}; downloadable weights: {', '.join(REGISTRY)} "
            "(use 'styleforge weights import PATH' for other files)"
        )
    return REGISTRY[name]


def _convert_into_cache(file: Path, name: str, *, source_sha256: str, source_url: str | None) -> Path:
    bundle = read_weights_file(file)
    bundle.extra.update(
        source_file=file.name,
        source_sha256=source_sha256,
        imported_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    if source_url:
        bundle.extra["source_url"] = source_url
    return write_safetensors(bundle, cached_path(name))


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.lower().endswith(WEIGHT_SUFFIXES)


def _size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


def _source_of(path: Path) -> str:
    try:
        return read_safetensors(path).source
    except StyleforgeError:
        return "unreadable"
