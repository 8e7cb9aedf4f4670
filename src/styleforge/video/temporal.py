"""Temporal smoothing of stylised video and its measure, the warping error.

Stylising frames one by one flickers: small changes of the input (noise, compression,
sub-pixel motion, instance-norm statistics) move the texture the network paints. The
smoother follows the idea of Ruder et al. 2016 without their per-frame optimisation:
the previous *output* is warped to the current frame along the optical flow of the
*input* frames, and where that flow is consistent forwards and backwards the current
output is pulled toward it::

    out_t = s_t + w * m_t * (warp(out_{t-1}) - s_t)

with ``s_t`` the network's output, ``w`` the smoothing weight and ``m_t`` the
consistency mask (softened by a 5x5 box filter so its edges do not show). Static and
slowly moving regions become a running blend of stylisations, which stops the
texture from boiling; disoccluded pixels and motion boundaries (``m_t = 0``) take the
network's output as it is, so nothing ghosts there.

The warping error of a sequence (Lai et al. 2018, "Learning blind video temporal
consistency") is the mean absolute difference, in 0-255 units over the three channels,
between each output frame and the previous output warped to it, over consistent pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from styleforge.video.flow import FlowEstimator, consistent, gray, warp


def warping_error(output: np.ndarray, warped_previous: np.ndarray, mask: np.ndarray) -> float:
    """Mean |output - warped_previous| over the pixels where ``mask`` is true (0-255 units; 0.0 when none)."""
    if not mask.any():
        return 0.0
    difference = np.abs(output.astype(np.float32) - warped_previous.astype(np.float32))
    return float(difference[mask].mean())


@dataclass
class SmoothedFrame:
    """One output frame and, from the second frame on, its warping error before and after smoothing."""

    pixels: np.ndarray
    error_before: float | None
    error_after: float | None


class TemporalSmoother:
    """Smooth a stream of stylised frames, one call per frame in order.

    Args:
        weight: pull toward the warped previous output, 0..1 (0 measures without
            smoothing; 1 would freeze consistent regions for ever).
        flow: the flow estimator (DIS at a bounded resolution by default).
    """

    def __init__(self, weight: float, flow: FlowEstimator | None = None) -> None:
        self.weight = weight
        self.flow = flow or FlowEstimator()
        self._previous_gray: np.ndarray | None = None
        self._previous_output: np.ndarray | None = None

    def __call__(self, frame: np.ndarray, stylised: np.ndarray) -> SmoothedFrame:
        """Return the output for input ``frame`` whose network output is ``stylised`` (both RGB uint8, same size)."""
        import cv2

        luma = gray(frame, self.flow.long_side)
        previous_gray, previous_output = self._previous_gray, self._previous_output
        self._previous_gray = luma
        if previous_gray is None or previous_gray.shape != luma.shape or previous_output is None:
            self._previous_output = stylised
            return SmoothedFrame(stylised, None, None)
        size = stylised.shape[:2]
        backward = self.flow(luma, previous_gray, size)
        forward = self.flow(previous_gray, luma, size)
        mask = consistent(backward, forward)
        warped = warp(previous_output, backward)
        before = warping_error(stylised, warped, mask)
        if self.weight > 0:
            soft = cv2.blur(mask.astype(np.float32), (5, 5))[..., None] * self.weight
            current = stylised.astype(np.float32)
            output = np.clip(current + soft * (warped.astype(np.float32) - current) + 0.5, 0, 255).astype(np.uint8)
        else:
            output = stylised
        self._previous_output = output
        return SmoothedFrame(output, before, warping_error(output, warped, mask))
