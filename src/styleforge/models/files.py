"""Style model files: writing ``NAME.safetensors`` + ``NAME.json``, reading the JSON
metadata, and building a transform network from a recorded convention and state.

These are the pieces the model store (``styleforge models``) and the transfer code both
need; they live here, below both, so that neither imports the other to use them.
"""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

from PIL import Image

from styleforge.errors import StyleforgeError, one_line
from styleforge.models.formats.adain import adain_header
from styleforge.nets.adain import AdaINNet
from styleforge.nets.transform_net import TransformNet
from styleforge.utils.fs import check_regular_file, write_bytes_atomic
from styleforge.utils.state_dicts import load_checked_state

MODEL_FORMAT = "styleforge-transformnet"


def save_style_model(net: TransformNet | AdaINNet, path: str | os.PathLike[str], metadata: dict, style_image: Image.Image | None = None) -> Path:
    """Write ``path`` (.safetensors) and its JSON sibling atomically; returns ``path``."""
    from safetensors.torch import save

    target = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    header = adain_header(net) if isinstance(net, AdaINNet) else {"format": MODEL_FORMAT, **net.convention()}
    write_bytes_atomic(target, save(state, metadata=header))
    info = {**metadata, "network": {**header, "parameters": sum(v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k)}}
    if style_image is not None:
        info["style_thumbnail_png_base64"] = thumbnail_png_base64(style_image)
    write_bytes_atomic(target.with_suffix(".json"), (json.dumps(info, indent=2) + "\n").encode("utf-8"))
    return target


def thumbnail_png_base64(img: Image.Image, side: int = 128) -> str:
    """A ``side``-pixel PNG thumbnail of ``img``, base64 text (stored in model metadata)."""
    thumb = img.convert("RGB").copy()
    thumb.thumbnail((side, side))
    buffer = io.BytesIO()
    thumb.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def read_model_metadata(path: str | os.PathLike[str]) -> dict:
    """The JSON metadata beside model ``path`` ({} when there is none)."""
    return read_sidecar(Path(path).with_suffix(".json"))


def read_sidecar(sidecar: Path) -> dict:
    """The model's JSON metadata ({} when there is none); a damaged one is an error."""
    if not sidecar.exists():
        return {}
    try:
        data = json.loads(check_regular_file(sidecar, "model metadata").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StyleforgeError(f"cannot read model metadata '{sidecar}': {one_line(exc, 160)}") from None
    if not isinstance(data, dict):
        raise StyleforgeError(f"model metadata '{sidecar}' is not a JSON object")
    return data


def network_from_state(file: Path, convention: dict, state: object) -> TransformNet:
    """A TransformNet of the recorded ``convention`` (:meth:`TransformNet.convention`;
    defaults where absent) holding ``state``; one line naming the first
    mismatching key otherwise."""
    norm, upsample = convention.get("norm", "instance"), convention.get("upsample", "resize")
    try:
        net = TransformNet.from_convention(convention)
    except StyleforgeError as exc:
        raise StyleforgeError(f"'{file}': {exc}") from None
    load_checked_state(net, state, file, f"the {norm}-norm, {upsample} transform network")
    return net
