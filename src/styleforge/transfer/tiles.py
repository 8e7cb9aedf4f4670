"""Stylising images larger than memory or than ``--tile``: overlapping tiles, one seamless result.

Large images are stylised in overlapping tiles (``tile`` x ``tile``, ``overlap`` pixels
shared with each neighbour) whose outputs are blended with linear ramps across the
overlaps, so no seam shows; each tile is run with up to 64 pixels of surrounding image
as context, cropped afterwards. Instance normalisation would otherwise normalise each tile
with its own statistics and make tiles disagree; so the statistics of every
normalisation layer are first recorded on the whole image (downscaled to at most
``stats_pixels``) and then frozen while the tiles run. Batch norm in eval mode already
uses fixed statistics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from styleforge.errors import StyleforgeError
from styleforge.models.loading import StyleNetwork


def stylize_tiled(net: StyleNetwork, x: torch.Tensor, tile: int, overlap: int, stats_pixels: int, context: int = 64) -> torch.Tensor:
    """Stylise a (1, 3, H, W) image in overlapping tiles; returns (1, 3, H, W) on the CPU.

    Args:
        net: the transform network (eval mode), PyTorch or exported.
        x: the image, 0-255.
        tile: tile side in pixels.
        overlap: pixels shared by neighbouring tiles (blended linearly); < tile / 2.
        stats_pixels: instance-norm statistics come from the whole image downscaled to
            at most this many pixels.
        context: real image pixels added around each tile (where the image has them)
            and cropped after the network, so the blended pixels are not computed
            next to the network's mirrored padding.
    """
    if overlap * 2 >= tile:
        raise StyleforgeError(f"tile overlap {overlap} must be less than half the tile size {tile}")
    _, _, height, width = x.shape
    try:
        _record_norm_statistics(net, x, stats_pixels)
        out = torch.zeros(1, 3, height, width, dtype=torch.float32)
        weight = torch.zeros(1, 1, height, width, dtype=torch.float32)
        for top in _tile_starts(height, tile, overlap):
            for left in _tile_starts(width, tile, overlap):
                th, tw = min(tile, height), min(tile, width)
                y = _with_context(net, x, top, left, th, tw, context)
                ramp = _ramp(top, th, height, overlap)[:, None] * _ramp(left, tw, width, overlap)[None, :]
                out[:, :, top : top + th, left : left + tw] += y * ramp
                weight[:, :, top : top + th, left : left + tw] += ramp
        return out / weight
    finally:
        net.clear_norm_statistics()


def _with_context(net: StyleNetwork, x: torch.Tensor, top: int, left: int, th: int, tw: int, context: int) -> torch.Tensor:
    height, width = x.shape[2:]
    # The crop starts on the whole image's 4-pixel grid: the network downsamples twice by
    # 2 and upsamples back, so it is shift-equivariant only for shifts that are multiples
    # of 4; a crop off that grid computes a differently aliased image. (AdaIN's encoder
    # pools three times: its grid is 8, the network's ``alignment``.)
    grid = getattr(net, "alignment", 4)
    y0, y1 = max(0, top - context) // grid * grid, min(height, top + th + context)
    x0, x1 = max(0, left - context) // grid * grid, min(width, left + tw + context)
    y = net(x[:, :, y0:y1, x0:x1])
    return y[:, :, top - y0 : top - y0 + th, left - x0 : left - x0 + tw].float().cpu()


def _record_norm_statistics(net: StyleNetwork, x: torch.Tensor, stats_pixels: int) -> None:
    height, width = x.shape[2:]
    scale = min(1.0, (stats_pixels / (height * width)) ** 0.5)
    small = x if scale == 1.0 else F.interpolate(x, scale_factor=scale, mode="bilinear", antialias=True, align_corners=False)
    net.record_norm_statistics(small)


def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, size - tile, step))
    return starts + [size - tile]


def _ramp(start: int, length: int, total: int, overlap: int) -> torch.Tensor:
    """Blend weights along one axis: rising over the overlap with a previous tile, falling
    over the overlap with the next one; flat 1 at the image borders."""
    ramp = torch.ones(length)
    fade = torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)
    if start > 0:
        ramp[:overlap] = torch.minimum(ramp[:overlap], fade)
    if start + length < total:
        ramp[length - overlap :] = torch.minimum(ramp[length - overlap :], fade.flip(0))
    return ramp
