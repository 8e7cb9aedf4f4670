"""Where installed style models live and how a name finds one (imported by
:mod:`styleforge.transfer.model`, so nothing here imports the network code)."""

from __future__ import annotations

from pathlib import Path

from styleforge.errors import StyleforgeError


def models_dir() -> Path:
    """The folder of installed style models."""
    from styleforge.utils.home import styleforge_home

    return styleforge_home() / "models"


def check_model_name(name: str) -> str:
    """``name`` if it can name a model file (the cache's naming rule); raise otherwise."""
    from styleforge.vgg.weights.registry import check_name

    return check_name(name, "model")


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
