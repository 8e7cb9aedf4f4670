"""Dense optical flow between frames (OpenCV's DIS, Kroeger et al. 2016), backward
warping, and the forward-backward consistency check of Ruder, Dosovitskiy & Brox 2016
("Artistic style transfer for videos", section 3.2).

Flows are (H, W, 2) float32 arrays of (dx, dy) in pixels. ``flow_between(a, b)`` gives
for each pixel ``x`` of ``a`` the displacement to where it is in ``b``:
``a(x) ~ b(x + flow(x))``.
"""

from __future__ import annotations

import numpy as np


def gray(frame: np.ndarray, long_side: int | None = None) -> np.ndarray:
    """An RGB ``uint8`` frame as ``uint8`` luminance, shrunk so its long side is at most ``long_side``."""
    import cv2

    luma = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    height, width = luma.shape
    if long_side and max(height, width) > long_side:
        scale = long_side / max(height, width)
        luma = cv2.resize(luma, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    return luma


class FlowEstimator:
    """DIS optical flow at a bounded resolution, returned at full resolution.

    Args:
        long_side: frames are shrunk so their long side is at most this before the flow
            is computed (the flow is then scaled back up): DIS cost grows with pixels,
            and smoothing needs the motion, not its finest detail.
        preset: ``fast`` or ``medium`` (OpenCV's DIS presets; medium is more accurate).
    """

    def __init__(self, long_side: int | None = 640, preset: str = "medium") -> None:
        import cv2

        presets = {"fast": cv2.DISOPTICAL_FLOW_PRESET_FAST, "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
        self.long_side = long_side
        self.dis = cv2.DISOpticalFlow_create(presets[preset])

    def __call__(self, a: np.ndarray, b: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Flow from gray frame ``a`` to gray frame ``b`` (same shape), at ``size`` = (height, width)."""
        import cv2

        flow = self.dis.calc(a, b, None)
        height, width = size
        if flow.shape[:2] == (height, width):
            return flow
        scale = np.array([width / flow.shape[1], height / flow.shape[0]], dtype=np.float32)
        return cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR) * scale


def sampling_grid(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Absolute sampling coordinates ``x + flow(x)`` (map_x, map_y) for ``cv2.remap``."""
    height, width = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return xs + flow[..., 0], ys + flow[..., 1]


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warp: ``out(x) = image(x + flow(x))``, bilinear, borders replicated."""
    import cv2

    map_x, map_y = sampling_grid(flow)
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def consistent(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Boolean (H, W) mask of the pixels of the current frame whose motion is trusted.

    ``backward`` is the flow current -> previous, ``forward`` previous -> current. A pixel
    is kept when (Ruder et al. 2016, eqs. 5-6):

    * the two flows cancel: ``|f + b|^2 <= 0.01 (|f|^2 + |b|^2) + 0.5``, with ``f`` the
      forward flow sampled where the backward flow points (else: disoccluded),
    * it is not on a motion boundary: ``|grad b|^2 <= 0.01 |b|^2 + 0.002``,
    * it comes from inside the previous frame.
    """
    height, width = backward.shape[:2]
    forward_there = warp(forward, backward)
    cancel = np.sum((forward_there + backward) ** 2, axis=-1)
    magnitudes = np.sum(forward_there**2, axis=-1) + np.sum(backward**2, axis=-1)
    gy_u, gx_u = np.gradient(backward[..., 0])
    gy_v, gx_v = np.gradient(backward[..., 1])
    boundary = gx_u**2 + gy_u**2 + gx_v**2 + gy_v**2 > 0.01 * np.sum(backward**2, axis=-1) + 0.002
    map_x, map_y = sampling_grid(backward)
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    return (cancel <= 0.01 * magnitudes + 0.5) & ~boundary & inside
