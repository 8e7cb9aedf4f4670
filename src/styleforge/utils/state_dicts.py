"""Loading tensors read from a model file into a network, with one-line errors."""

from __future__ import annotations

import os

import torch
from torch import nn

from styleforge.errors import StyleforgeError


def load_checked_state(net: nn.Module, state: object, file: str | os.PathLike[str], what: str) -> nn.Module:
    """Load ``state`` into ``net`` after checking it fits; returns ``net``.

    Args:
        net: the network the file describes.
        state: the tensors read from ``file``.
        file: named in messages.
        what: what the network is, for messages (e.g. "the instance-norm, resize transform network").

    Raises:
        StyleforgeError: not a dict of tensors; the first missing key, unexpected key and
            shape mismatch; or a tensor holding NaN or infinite values.
    """
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise StyleforgeError(f"'{file}' does not hold {what}'s tensors")
    problems = state_dict_problems(net.state_dict(), state)
    if problems:
        raise StyleforgeError(f"'{file}' does not fit {what}: {'; '.join(problems)}")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise StyleforgeError(f"'{file}': {bad[0]} holds NaN or infinite values (a diverged or damaged model); use another checkpoint")
    net.load_state_dict(state)
    return net


def state_dict_problems(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> list[str]:
    """What keeps ``state`` from loading into a network with ``expected``: the first
    missing key, the first unexpected key, the first shape mismatch (with counts)."""

    def first(kind: str, keys: list[str]) -> list[str]:
        return [f"{kind} {keys[0]}" + (f" and {len(keys) - 1} more" if len(keys) > 1 else "")] if keys else []

    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    shapes = [f"{wrong[0]} has shape {tuple(state[wrong[0]].shape)}, not {tuple(expected[wrong[0]].shape)}"] if wrong else []
    return first("missing", sorted(set(expected) - set(state))) + first("unexpected", sorted(set(state) - set(expected))) + shapes
