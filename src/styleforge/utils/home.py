"""Where styleforge keeps what it downloads, converts and caches."""

from __future__ import annotations

import os
from pathlib import Path

from styleforge.errors import StyleforgeError


def styleforge_home() -> Path:
    """Return the cache root: ``$STYLEFORGE_HOME``, else ``$XDG_CACHE_HOME/styleforge``,
    else ``~/.cache/styleforge``."""
    if os.environ.get("STYLEFORGE_HOME"):
        home, variable = Path(os.environ["STYLEFORGE_HOME"]).expanduser(), "STYLEFORGE_HOME"
    elif os.environ.get("XDG_CACHE_HOME"):
        home, variable = Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "styleforge", "XDG_CACHE_HOME"
    else:
        home, variable = Path.home() / ".cache" / "styleforge", "the home folder"
    if home.exists() and not home.is_dir():
        raise StyleforgeError(f"the styleforge cache '{home}' (from {variable}) is a file, not a folder; point it at a folder")
    return home
