"""Where installed style models live and how a name finds one (imported by
:mod:`styleforge.transfer`, so nothing here imports the network code)."""

from __future__ import annotations

import re
from pathlib import Path

from styleforge.errors import StyleforgeError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def models_dir() -> Path:
    """The folder of installed style models."""
    from styleforge.weights.registry import styleforge_home

    return styleforge_home() / "models"


def check_model_name(name: str) -> str:
    """``name`` if it can name a model file (letters, digits, ``._-``); raise otherwise."""
    if not _NAME.match(name) or name.endswith((".safetensors", ".json")):
        raise StyleforgeError(f"invalid model name {name!r}: use up to 64 letters, digits, '.', '_' or '-', "
                              "starting with a letter or digit")
    return name


def installed_path(name: str) -> Path:
    """The file of installed model ``name``.

    Raises:
        StyleforgeError: no such model (the message says how to get it).
    """
    path = models_dir() / f"{check_model_name(name)}.safetensors"
    if not path.is_file():
        hint = f"styleforge models download {name}" if name in _registry_names() else "styleforge models import PATH --name NAME"
        raise StyleforgeError(f"no installed style model '{name}' in {models_dir()}: run '{hint}' (styleforge models list shows them)")
    return path


def _registry_names() -> tuple[str, ...]:
    from styleforge.models.registry import MODELS

    return tuple(MODELS)
