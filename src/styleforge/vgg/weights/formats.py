"""Readers and the writer for VGG19 weight files, as NumPy arrays (no PyTorch needed
except to unpickle torchvision's .pth file).

Every reader returns a :class:`WeightsBundle` in one canonical layout, whatever the
source:

* ``convX_Y.weight``: (C_out, C_in, 3, 3) float32, PyTorch layout, cross-correlation;
* ``convX_Y.bias``: (C_out,);
* ``fc6.weight``: (hidden, C5 * g * g), the input flattened in (C, H, W) order after a
  ``g x g`` adaptive average pool (g = 7 for ImageNet VGG19); ``fc7``/``fc8`` likewise
  as plain matrices. The three fc layers are optional (feature-only files).

Sources:

* **torchvision** ``.pth``: ``features.N.weight`` / ``classifier.N.weight``; read with
  ``torch.load(weights_only=True)``, never full pickle.
* **MatConvNet** ``.mat`` ("simplenn"): ``layers`` is a 1xL cell of structs with
  ``name``, ``type`` and ``weights = {filters, biases}``; filters are stored
  [H, W, C_in, C_out], so PyTorch's layout is ``filters.transpose(3, 2, 0, 1)``; fc6/7/8
  are 7x7 and 1x1 convolutions, turned into matrices with the same (C, H, W) flattening.
  ``meta.normalization.averageImage`` gives the RGB mean on 0-255 input and
  ``meta.classes.description`` the class names. Older files keep ``normalization`` and
  ``classes`` at the top level and ``filters``/``biases`` as separate fields; both work.
* **styleforge** ``.safetensors``: the canonical arrays, with metadata recording the
  source and the :class:`~styleforge.vgg.preprocessing.Convention`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from styleforge.errors import StyleforgeError, one_line
from styleforge.utils.fs import check_regular_file, describe_start, write_bytes_atomic
from styleforge.vgg.architecture import CONV_BLOCKS, CONV_NAMES, FC_NAMES
from styleforge.vgg.preprocessing import MATCONVNET, TORCHVISION, Convention

#: Value of the ``format`` metadata key in styleforge's VGG safetensors files.
SAFETENSORS_FORMAT = "styleforge-vgg19"
SAFETENSORS_FORMAT_VERSION = "1"

WEIGHT_SUFFIXES = (".pth", ".pt", ".mat", ".safetensors")


@dataclass
class WeightsBundle:
    """VGG19 weights in the canonical layout plus what is needed to use them.

    Attributes:
        tensors: canonical name -> float32 array (see the module docstring).
        convention: how input images must be prepared.
        source: a human-readable description of where the weights came from.
        class_names: names of the classifier's outputs when the file carries them.
        extra: further metadata (e.g. ``source_sha256``).
    """

    tensors: dict[str, np.ndarray]
    convention: Convention
    source: str
    class_names: list[str] | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        """Check names and shapes are a consistent VGG19; raises StyleforgeError if not."""
        missing = [n for n in CONV_NAMES if f"{n}.weight" not in self.tensors or f"{n}.bias" not in self.tensors]
        if missing:
            raise StyleforgeError(f"{self.source}: not a VGG19 weights file (missing {', '.join(missing[:3])}...)")
        in_channels = 3
        for name in CONV_NAMES:
            w, b = self.tensors[f"{name}.weight"], self.tensors[f"{name}.bias"]
            if w.ndim != 4 or w.shape[1] != in_channels or w.shape[2:] != (3, 3) or b.shape != (w.shape[0],):
                raise StyleforgeError(
                    f"{self.source}: {name} has weight {tuple(w.shape)} and bias {tuple(b.shape)}; "
                    f"expected (C_out, {in_channels}, 3, 3) and (C_out,)"
                )
            in_channels = w.shape[0]
        present = [n for n in FC_NAMES if f"{n}.weight" in self.tensors]
        if present and present != list(FC_NAMES):
            raise StyleforgeError(f"{self.source}: has {', '.join(present)} but a classifier needs fc6, fc7 and fc8")
        if present:
            fc6_in = self.tensors["fc6.weight"].shape[1]
            grid = round((fc6_in / in_channels) ** 0.5)
            if grid * grid * in_channels != fc6_in:
                raise StyleforgeError(
                    f"{self.source}: fc6 takes {fc6_in} inputs, not C5 * g * g for C5 = {in_channels}"
                )
            features = fc6_in
            for name in FC_NAMES:
                w, b = self.tensors[f"{name}.weight"], self.tensors.get(f"{name}.bias")
                if w.ndim != 2 or w.shape[1] != features or b is None or b.shape != (w.shape[0],):
                    raise StyleforgeError(f"{self.source}: {name} has weight {tuple(w.shape)}; expected (out, {features})")
                features = w.shape[0]
            if self.class_names is not None and len(self.class_names) != features:
                raise StyleforgeError(f"{self.source}: {len(self.class_names)} class names for {features} outputs")
        for name, array in self.tensors.items():
            if not np.isfinite(array).all():
                raise StyleforgeError(f"{self.source}: {name} holds NaN or infinite values; the file is damaged, get it again")


def read_weights_file(path: str | os.PathLike[str]) -> WeightsBundle:
    """Read a VGG19 weights file of any supported format into a canonical bundle.

    Args:
        path: a torchvision ``.pth``/``.pt``, a MatConvNet ``.mat`` or a styleforge
            ``.safetensors`` file.

    Returns:
        The validated :class:`WeightsBundle`.

    Raises:
        StyleforgeError: unknown suffix, unreadable file, or not a VGG19.
    """
    file = check_regular_file(path, "weights file")
    suffix = file.suffix.lower()
    if suffix in (".pth", ".pt"):
        bundle = read_torchvision(file)
    elif suffix == ".mat":
        bundle = read_matconvnet(file)
    elif suffix == ".safetensors":
        bundle = read_safetensors(file)
    else:
        raise StyleforgeError(
            f"weights file '{file}' has an unknown suffix; expected one of {', '.join(WEIGHT_SUFFIXES)}"
        )
    bundle.validate()
    return bundle


# --------------------------------------------------------------------------- torchvision


def torchvision_key_map() -> dict[str, str]:
    """Return torchvision VGG19 parameter prefixes -> canonical names.

    ``features`` is an ``nn.Sequential`` of conv, ReLU (and a max-pool after each
    block), so conv ``k`` of the network sits at index ``2k`` plus one per pool before
    it; the classifier is Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear.
    """
    mapping: dict[str, str] = {}
    index = 0
    for block, count in enumerate(CONV_BLOCKS, start=1):
        for i in range(1, count + 1):
            mapping[f"features.{index}"] = f"conv{block}_{i}"
            index += 2
        index += 1
    mapping.update({"classifier.0": "fc6", "classifier.3": "fc7", "classifier.6": "fc8"})
    return mapping


def require_float(name: str, dtype: object, source: object) -> None:
    """Refuse a tensor that does not hold floating-point numbers, naming it: trained
    weights are real numbers, and integer ones (a quantised or mangled export) would be
    converted silently and classify every image as noise.

    Raises:
        StyleforgeError: ``dtype`` (a NumPy or PyTorch dtype) is not floating point.
    """
    text = str(dtype).removeprefix("torch.")  # torch.float16, float32, bfloat16...
    if not text.startswith(("float", "bfloat")):
        raise StyleforgeError(f"'{source}': tensor {name} holds {text} values, not floating-point weights; this is not a "
                              "trained VGG19 file (save the float model's state dict again)")


def read_torchvision(path: Path) -> WeightsBundle:
    """Read torchvision's ``vgg19-*.pth`` (state dict) safely with ``weights_only=True``."""
    import torch  # lazy: the rest of this module works without PyTorch

    from styleforge.utils.torch_files import load_torch_file

    state = load_torch_file(path, "torchvision weights")
    if not isinstance(state, dict):
        raise StyleforgeError(f"'{path}' holds a {type(state).__name__}, not a state dict of VGG19 weights")
    mapping = torchvision_key_map()
    tensors: dict[str, np.ndarray] = {}
    unexpected = []
    for key, value in state.items():
        prefix, _, kind = str(key).rpartition(".")
        if prefix in mapping and kind in ("weight", "bias") and isinstance(value, torch.Tensor):
            require_float(str(key), value.dtype, path)
            tensors[f"{mapping[prefix]}.{kind}"] = value.detach().to(torch.float32).numpy().copy()
        else:
            unexpected.append(str(key))
    if unexpected:
        raise StyleforgeError(
            f"'{path}' is not torchvision's plain VGG19 (unexpected keys such as {', '.join(unexpected[:3])}); "
            "batch-norm variants are not supported"
        )
    return WeightsBundle(tensors=tensors, convention=TORCHVISION, source=f"torchvision {path.name}")


# --------------------------------------------------------------------------- MatConvNet


def read_matconvnet(path: Path) -> WeightsBundle:
    """Read MatConvNet's simplenn ``imagenet-vgg-verydeep-19.mat`` in a child process.

    SciPy's MAT reader is not hardened against corrupt or crafted files (a flipped byte
    can crash it with a segmentation fault, found by ``tests/test_fuzz_readers.py``), so
    :func:`parse_matconvnet` runs in ``python -m styleforge.vgg.weights.matconvnet_worker``,
    which hands the canonical arrays back as a safetensors file; a crash of the child is
    a one-line error here, never a crash of the command.
    """
    file = check_regular_file(path, "MatConvNet file")
    with tempfile.TemporaryDirectory(prefix="styleforge-mat-") as folder:
        out = Path(folder) / "bundle.safetensors"
        proc = subprocess.run(
            [sys.executable, "-m", "styleforge.vgg.weights.matconvnet_worker", str(file), str(out)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        if proc.returncode == 2:  # the worker's own one-line StyleforgeError
            raise StyleforgeError(proc.stderr.strip().splitlines()[-1])
        if proc.returncode != 0:
            how = f"crashed (signal {-proc.returncode})" if proc.returncode < 0 else f"failed (status {proc.returncode})"
            raise StyleforgeError(f"cannot read MatConvNet file '{file}': the MAT reader {how} on it; the file is corrupt")
        bundle = read_safetensors(out)
    bundle.source = f"MatConvNet {file.name}"
    return bundle


def parse_matconvnet(path: Path) -> WeightsBundle:
    """Parse a simplenn ``.mat`` file in this process (see :func:`read_matconvnet`, which
    runs this in a child process: never call it on an untrusted file in a long-lived one)."""
    import scipy.io  # lazy: only needed for this format

    _check_mat_header(path)
    try:
        mat = scipy.io.loadmat(str(path), squeeze_me=False, struct_as_record=False)
    except Exception as exc:  # scipy raises ValueError, TypeError, OSError... for bad files
        raise StyleforgeError(f"'{path}' is a MATLAB file that cannot be read to the end, truncated or damaged "
                              f"({one_line(exc, 120)}); {MAT_AGAIN}") from None
    if "layers" not in mat:
        raise StyleforgeError(f"'{path}' is not a MatConvNet simplenn model (no 'layers' variable)")
    try:
        return _matconvnet_bundle(path, mat)
    except (ValueError, TypeError, IndexError, AttributeError, KeyError) as exc:
        raise StyleforgeError(f"'{path}' holds MATLAB data but not the layers of a MatConvNet simplenn model, or only "
                              f"part of them ({one_line(exc, 120)}); {MAT_AGAIN}") from None


#: What to do about a .mat file that is not the whole MatConvNet model.
MAT_AGAIN = ("get imagenet-vgg-verydeep-19.mat again ('styleforge weights download vgg19-matconvnet', or copy it and "
             "'styleforge weights import PATH')")


def _check_mat_header(path: Path) -> None:
    """Refuse a file that does not start like a MATLAB file (level 5 or 7.3), saying what it is."""
    with open(path, "rb") as handle:
        head = handle.read(128)
    if head.startswith(b"MATLAB") or head.startswith(b"\x89HDF"):
        return
    raise StyleforgeError(f"'{path}' is not a MATLAB .mat file ({describe_start(head)}); {MAT_AGAIN}")


def _matconvnet_bundle(path: Path, mat: dict[str, Any]) -> WeightsBundle:
    tensors: dict[str, np.ndarray] = {}
    for cell in np.asarray(mat["layers"]).ravel():
        layer = _unwrap(cell)
        name, kind = _mat_str(_field(layer, "name")), _mat_str(_field(layer, "type"))
        if kind != "conv" or name not in CONV_NAMES + FC_NAMES:
            continue
        filters, biases = _conv_params(layer, name, path)
        weight = filters.transpose(3, 2, 0, 1)  # [H, W, Cin, Cout] -> (Cout, Cin, H, W)
        if name in FC_NAMES:
            weight = weight.reshape(weight.shape[0], -1)  # flatten (C, H, W) like torch.flatten
        tensors[f"{name}.weight"] = np.ascontiguousarray(weight, dtype=np.float32)
        tensors[f"{name}.bias"] = np.ascontiguousarray(biases.ravel(), dtype=np.float32)
    meta = _unwrap(mat["meta"]) if "meta" in mat else None
    normalization = _field(meta, "normalization") if meta is not None else mat.get("normalization")
    classes = _field(meta, "classes") if meta is not None else mat.get("classes")
    convention = _matconvnet_convention(path, normalization)
    return WeightsBundle(
        tensors=tensors,
        convention=convention,
        source=f"MatConvNet {path.name}",
        class_names=_matconvnet_class_names(classes),
    )


def _unwrap(value: Any) -> Any:
    """Strip the 1x1 object arrays loadmat wraps around cells and structs."""
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.reshape(-1)[0]
    return value


def _field(struct: Any, name: str) -> Any:
    struct = _unwrap(struct)
    if struct is None or not hasattr(struct, name):
        return None
    return _unwrap(getattr(struct, name))


def _mat_str(value: Any) -> str:
    value = _unwrap(value)
    if isinstance(value, np.ndarray):
        return "".join(str(v) for v in value.ravel())
    return "" if value is None else str(value)


def _conv_params(layer: Any, name: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    weights = _field(layer, "weights")
    if weights is not None:
        cells = np.asarray(weights, dtype=object).ravel()
        filters, biases = _unwrap(cells[0]), _unwrap(cells[1])
    else:  # pre-2015 MatConvNet files
        filters, biases = _field(layer, "filters"), _field(layer, "biases")
    require_float(f"{name} filters", np.asarray(filters).dtype, path)
    require_float(f"{name} biases", np.asarray(biases).dtype, path)
    filters = np.asarray(filters, dtype=np.float32)
    if filters.ndim == 2:  # MATLAB drops trailing singleton dims only; a 1x1 conv keeps 4
        filters = filters[None, None]
    if filters.ndim == 3:  # a conv with C_out = 1
        filters = filters[..., None]
    return filters, np.asarray(biases, dtype=np.float32)


def _matconvnet_convention(path: Path, normalization: Any) -> Convention:
    average = _field(normalization, "averageImage") if normalization is not None else None
    if average is None:
        return MATCONVNET
    values = np.asarray(average, dtype=np.float64)
    if values.size != 3:
        if values.ndim != 3 or values.shape[2] != 3:
            raise StyleforgeError(f"'{path}': averageImage has shape {values.shape}; expected 3 values or HxWx3")
        values = values.mean(axis=(0, 1))  # old files store a whole mean image
    # Files store the mean as single precision (123.68 -> 123.680000305...); 4 decimals
    # recover the published values and are far below one grey level.
    mean = tuple(round(float(v), 4) for v in values.ravel())
    return Convention(name="matconvnet", input_scale=255.0, mean=mean, std=(1.0, 1.0, 1.0), resize="squash")  # type: ignore[arg-type]


def _matconvnet_class_names(classes: Any) -> list[str] | None:
    description = _field(classes, "description") if classes is not None else None
    if description is None:
        return None
    return [_mat_str(item) for item in np.asarray(description, dtype=object).ravel()]


# --------------------------------------------------------------------------- safetensors


def read_safetensors(path: Path) -> WeightsBundle:
    """Read a styleforge VGG19 safetensors file (arrays + convention metadata)."""
    from styleforge.utils.safetensors_files import read_safetensors_file

    metadata, tensors = read_safetensors_file(path, "numpy", "safetensors file")
    if metadata.get("format") != SAFETENSORS_FORMAT:
        raise StyleforgeError(
            f"'{path}' is not a styleforge VGG19 file (metadata format={metadata.get('format')!r}); "
            "import the original .pth or .mat with 'styleforge weights import'"
        )
    if "convention" not in metadata:
        raise StyleforgeError(f"'{path}' records no preprocessing convention; re-import the original file")
    class_names = json.loads(metadata["class_names"]) if "class_names" in metadata else None
    extra = {k: v for k, v in metadata.items() if k not in ("format", "format_version", "convention", "class_names", "source")}
    for name, array in tensors.items():
        require_float(name, array.dtype, path)
    return WeightsBundle(
        tensors={k: v.astype(np.float32, copy=False) for k, v in tensors.items()},
        convention=Convention.from_json(metadata["convention"]),
        source=metadata.get("source", path.name),
        class_names=class_names,
        extra=extra,
    )


def write_safetensors(bundle: WeightsBundle, path: str | os.PathLike[str], validate: bool = True) -> Path:
    """Write a bundle as a styleforge safetensors file (atomically).

    The metadata records ``format``, ``format_version``, ``source``, ``convention`` (JSON),
    ``class_names`` (JSON, when known) and ``bundle.extra``.

    Returns:
        The written path.
    """
    from safetensors.numpy import save

    if validate:  # the .mat worker hands arrays over unvalidated; its parent validates them
        bundle.validate()
    metadata = dict(bundle.extra)
    metadata.update(
        format=SAFETENSORS_FORMAT,
        format_version=SAFETENSORS_FORMAT_VERSION,
        source=bundle.source,
        convention=bundle.convention.to_json(),
    )
    if bundle.class_names is not None:
        metadata["class_names"] = json.dumps(bundle.class_names)
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in bundle.tensors.items()}
    # Serialised in memory (about the size of the arrays) so the write can be verified whole.
    return write_bytes_atomic(path, save(arrays, metadata=metadata))

