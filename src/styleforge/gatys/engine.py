"""The contract between the Gatys driver (:mod:`styleforge.gatys.driver`) and its engines.

The driver prepares one :class:`ScaleProblem` per scale and hands it to an engine's
``optimize``; the PyTorch engine (:mod:`styleforge.gatys.torch_engine`) and the NumPy engine
(:mod:`styleforge.gatys.numpy_engine`) both implement :class:`Engine`. Everything here
is plain NumPy, so the NumPy engine runs where PyTorch is absent, and neither engine
imports the driver.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class ScaleProblem:
    """One scale of a run, as arrays of shape (1, 3, H, W), float32 RGB in [0, 1].

    Attributes:
        content: the content image.
        styles: the style images (each its own size).
        init: the starting image (content's size).
    """

    content: np.ndarray
    styles: list[np.ndarray]
    init: np.ndarray


#: Called after each evaluated step of a scale with (step within the scale, 1-based;
#: losses as floats; a function returning the current image array).
StepCallback = Callable[[int, dict[str, float], Callable[[], np.ndarray]], None]


class Engine(Protocol):
    """What an engine provides: optimise one scale, returning the best image found
    (same shape as ``problem.init``) and the ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM's
    :class:`~styleforge.utils.interrupts.Terminated`) that stopped it early, or None."""

    device_description: str

    def optimize(self, problem: ScaleProblem, steps: int, on_step: StepCallback) -> tuple[np.ndarray, KeyboardInterrupt | None]: ...


class BestImage:
    """Keeps a copy of the lowest-loss image seen; NaN losses never win.

    ``offer(loss, copy)`` calls ``copy()`` only on improvement, so engines keep the copy
    on their own device and in their own type.
    """

    def __init__(self) -> None:
        self.loss = math.inf
        self.image: object | None = None

    def offer(self, loss: float, copy: Callable[[], object]) -> None:
        """Record ``copy()`` if ``loss`` is the lowest so far."""
        if loss < self.loss:
            self.loss = loss
            self.image = copy()
