"""Reading and writing ``torch.save`` files safely: nothing is ever unpickled beyond
tensors and plain containers, failures are one-line user errors, writes are atomic and
verified.

PyTorch's own message for a file holding Python objects suggests re-running with
``weights_only=False``; styleforge never does that (it would run code from the file),
so the message here says what the file is instead.
"""

from __future__ import annotations

import io
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from styleforge.errors import StyleforgeError, one_line
from styleforge.utils.fs import check_regular_file, describe_start, write_bytes_atomic


def load_torch_file(path: str | os.PathLike[str], what: str, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one-line errors.

    Args:
        path: the file.
        what: what it should be, for messages (e.g. ``torchvision weights``).
        map_location: where tensors go.

    Raises:
        StyleforgeError: not a regular file, truncated or not a PyTorch file, or a file
            holding Python objects (which are never unpickled).
    """
    file = check_regular_file(path, what)
    with open(file, "rb") as handle:
        head = handle.read(64)
    if not head.startswith((b"PK", b"\x80")):  # torch.save's zip archive, or the legacy pickle format
        raise StyleforgeError(f"cannot read {what} '{file}': it is not a PyTorch file ({describe_start(head)}); "
                              "expected a file written by torch.save")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pickle-protocol chatter from the safe unpickler
            return torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise StyleforgeError(
            f"cannot read {what} '{file}': it is not a plain weights file (it holds Python objects, which styleforge "
            "never unpickles: only tensors, numbers, strings, lists and dicts are read)"
        ) from None
    except (RuntimeError, zipfile.BadZipFile, EOFError, KeyError, ValueError, IndexError, TypeError, AttributeError) as exc:
        reason = "the file is truncated or corrupt" if "zip" in str(exc).lower() or isinstance(exc, EOFError) else one_line(exc)
        raise StyleforgeError(f"cannot read {what} '{file}': not a complete PyTorch file ({reason})") from None
    except OSError as exc:  # the file itself was readable (checked above): its contents are not
        raise StyleforgeError(
            f"cannot read {what} '{file}': not a complete PyTorch file (the file is truncated or corrupt: "
            f"{exc.strerror or one_line(exc)})"
        ) from None
    except Exception as exc:  # noqa: BLE001 (any other failure of the parser on an untrusted file is a bad file)
        raise StyleforgeError(f"cannot read {what} '{file}': not a readable PyTorch file ({one_line(exc)})") from None


def save_torch_file(payload: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` to memory, then one atomic, verified write; returns the path."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return write_bytes_atomic(path, buffer.getvalue())

