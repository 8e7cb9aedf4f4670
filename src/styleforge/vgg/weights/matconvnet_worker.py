"""Child process of :func:`styleforge.vgg.weights.formats.read_matconvnet`.

``python -m styleforge.vgg.weights.matconvnet_worker IN.mat OUT.safetensors`` parses a
MatConvNet simplenn file with SciPy and writes the canonical arrays and metadata to
``OUT``. Exit status 0 on success, 2 with a one-line message on stderr for a file it
refuses; if SciPy crashes on a corrupt file, only this process dies.
"""

from __future__ import annotations

import sys
from pathlib import Path

from styleforge.errors import StyleforgeError
from styleforge.vgg.weights.formats import parse_matconvnet, write_safetensors


def main(argv: list[str]) -> int:
    """Convert ``argv[0]`` (.mat) to ``argv[1]`` (.safetensors); returns the exit status."""
    source, target = Path(argv[0]), Path(argv[1])
    try:
        write_safetensors(parse_matconvnet(source), target, validate=False)
    except StyleforgeError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
