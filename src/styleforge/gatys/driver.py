r"""Optimisation-based style transfer (Gatys, Ecker & Bethge 2016) on PyTorch.

The generated image :math:`x` (RGB in [0, 1]) minimises

.. math:: L(x) = \alpha \frac{1}{|C|}\sum_{l \in C} L_c^l(x) + \beta \sum_{l \in S} w_l L_s^l(x) + \gamma\, TV(x)

with the content and style losses of :mod:`styleforge.losses.perceptual` on VGG19 features of the
image in the weights' own preprocessing convention (:meth:`VGG19.normalize`), layer
weights :math:`w_l` summing to 1, and several style images blended by mixing their Gram
targets.

What makes it fast: target features are computed once, without gradients; VGG19 runs
only up to the deepest layer used; its weights never require gradients, so backward
computes only the image gradient; no graph is kept between iterations (losses are
logged as floats); on CUDA the network and its input use ``channels_last``.

The driver here is engine-independent: it prepares images (colour preservation,
scales, initialisation), runs one engine per scale, tracks the best image, reports
progress and survives Ctrl-C. The PyTorch engine is :class:`styleforge.gatys.torch_engine.TorchEngine`; the NumPy
engine (``engine="numpy"``) plugs in with the same ``optimize`` method. This module
imports no PyTorch, so ``--engine numpy`` runs where PyTorch is absent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from styleforge.config import (
    CONTENT_NORMALIZATIONS,
    PRECISION_CHOICES,
    STYLE_NORMALIZATIONS,
    TV_KINDS,
    GatysOptions,
    is_finite,
    normalized_weights,
    options_from_kwargs,
)
from styleforge.errors import StyleforgeError
from styleforge.gatys.engine import Engine, ScaleProblem
from styleforge.images.color import check_mode, luminance_image, match_color_histogram, restore_chroma
from styleforge.images.io import (
    array_to_image,
    image_to_array,
    long_side_size,
    read_image,
    resize_long_side,
    write_image,
)
from styleforge.utils.limits import check_min_side, check_pixel_budget
from styleforge.utils.progress import Progress
from styleforge.utils.runlog import LossHistory
from styleforge.vgg.weights.store import weights_file

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise", "style")
ENGINES = ("torch", "numpy")
HISTORY_COLUMNS = ("step", "scale", "width", "height", "total", "content", "style", "tv", "seconds")

ImageInput = Image.Image | str | os.PathLike[str]


@dataclass
class StepInfo:
    """Progress of a run, handed to ``callback`` after every step.

    Attributes:
        step: global step, 1-based, across all scales.
        total_steps: steps in the whole run.
        scale_index: 0-based index into the scales.
        size: (width, height) of the current scale.
        losses: ``total``, ``content``, ``style``, ``tv`` as floats.
        image: returns the current image as a PIL image (computed on demand).
    """

    step: int
    total_steps: int
    scale_index: int
    size: tuple[int, int]
    losses: dict[str, float]
    image: Callable[[], Image.Image]


@dataclass
class StylizeResult:
    """Outcome of :func:`run_stylize`: the image, the loss history, wall-clock seconds,
    the device used, and the Ctrl-C/SIGTERM (``KeyboardInterrupt``) that stopped it
    early, if one did."""

    image: Image.Image
    history: LossHistory
    stopped_by: KeyboardInterrupt | None
    seconds: float
    device: str

    @property
    def interrupted(self) -> bool:
        """True when Ctrl-C or SIGTERM stopped the run early."""
        return self.stopped_by is not None


def stylize(
    content: ImageInput,
    styles: ImageInput | Sequence[ImageInput],
    vgg: object | None = None,
    engine: str = "torch",
    callback: Callable[[StepInfo], None] | None = None,
    **options: object,
) -> Image.Image:
    """Stylise ``content`` with ``styles`` (SPEC section 7: PIL in, PIL out).

    Args:
        content: a PIL image or an image path.
        styles: one style image/path or several (blended by ``style_blend``).
        vgg: a loaded VGG19 for the torch engine (default: load ``options.weights``).
        engine: ``torch`` or ``numpy``.
        callback: called with a :class:`StepInfo` after every step.
        **options: any field of :class:`~styleforge.config.GatysOptions`.

    Returns:
        The stylised RGB image.
    """
    opts = options_from_kwargs(GatysOptions, {**options, "engine": engine}, "stylize")
    return run_stylize(content, styles, opts, vgg=vgg, callback=callback, progress=False).image


def run_stylize(
    content: ImageInput,
    styles: ImageInput | Sequence[ImageInput],
    options: GatysOptions | None = None,
    vgg: object | None = None,
    callback: Callable[[StepInfo], None] | None = None,
    progress: bool = True,
) -> StylizeResult:
    """Run style transfer and return the image with its loss history (see :func:`stylize`).

    Ctrl-C stops the run cleanly: the best image so far is returned with
    ``interrupted=True`` (and the CLI writes it).
    """
    opts = validate_options(options or GatysOptions())
    content_img = _as_image(content)
    style_imgs = [_as_image(s) for s in ([styles] if isinstance(styles, (Image.Image, str, os.PathLike)) else styles)]
    if not style_imgs:
        raise StyleforgeError("at least one style image is needed")
    if opts.style_blend is not None:
        normalized_weights(len(style_imgs), opts.style_blend, "blend", "style images")
    sizes = list(opts.scales or (opts.size,))
    check_scaled_sizes(content_img, style_imgs, sizes, opts)
    engine = make_engine(opts, vgg)
    work_content, work_styles = _prepare_colors(content_img, style_imgs, opts.preserve_color)
    history = LossHistory(HISTORY_COLUMNS)
    total_steps = opts.iterations * len(sizes)
    start = time.perf_counter()
    current: np.ndarray | None = None
    stopped_by: KeyboardInterrupt | None = None
    with Progress(total_steps, "stylizing", enabled=progress) as bar:
        for index, long_side in enumerate(sizes):
            problem = _scale_problem(work_content, work_styles, long_side, opts, current)
            height, width = problem.content.shape[2:]
            offset = index * opts.iterations

            def on_step(step: int, losses: dict[str, float], image: Callable[[], np.ndarray], *, _index: int = index,
                        _offset: int = offset, _size: tuple[int, int] = (width, height)) -> None:
                history.append(step=_offset + step, scale=_index, width=_size[0], height=_size[1],
                               seconds=time.perf_counter() - start, **losses)
                bar.set_postfix(" ".join(f"{k} {v:.3g}" for k, v in losses.items()))
                bar.update()
                if callback is not None:
                    callback(StepInfo(_offset + step, total_steps, _index, _size, losses, lambda: array_to_image(image())))

            current, stopped_by = engine.optimize(problem, opts.iterations, on_step)
            if stopped_by is not None:
                break
    assert current is not None
    result = array_to_image(current)
    if opts.preserve_color == "luminance":
        result = restore_chroma(result, content_img)
    return StylizeResult(result, history, stopped_by, time.perf_counter() - start, engine.device_description)


def validate_options(opts: GatysOptions) -> GatysOptions:
    """Check option values; returns them (with ``style_blend`` etc. as tuples) or raises."""
    from styleforge.vgg.architecture import check_feature_layers

    checks = [
        (opts.optimizer in OPTIMIZERS, f"unknown optimizer {opts.optimizer!r}; use one of {', '.join(OPTIMIZERS)}"),
        (opts.init in INITS, f"unknown init {opts.init!r}; use one of {', '.join(INITS)}"),
        (opts.engine in ENGINES, f"unknown engine {opts.engine!r}; use one of {', '.join(ENGINES)}"),
        (opts.content_loss in CONTENT_NORMALIZATIONS, f"unknown content loss {opts.content_loss!r}; use one of {', '.join(CONTENT_NORMALIZATIONS)}"),
        (opts.style_loss in STYLE_NORMALIZATIONS, f"unknown style loss {opts.style_loss!r}; use one of {', '.join(STYLE_NORMALIZATIONS)}"),
        (opts.tv_kind in TV_KINDS, f"unknown TV kind {opts.tv_kind!r}; use one of {', '.join(TV_KINDS)}"),
        (opts.iterations >= 1, "iterations must be >= 1"),
        (opts.size >= 16 and all(s >= 16 for s in opts.scales or ()), "sizes must be >= 16 pixels"),
        (is_finite(opts.style_scale) and opts.style_scale > 0, "style scale must be a finite number > 0"),
        (all(is_finite(w) and (w is None or w >= 0) for w in (opts.content_weight, opts.style_weight, opts.tv_weight)),
         "content, style and tv weights must be finite numbers >= 0"),
        (opts.lr is None or (is_finite(opts.lr) and opts.lr > 0), "lr must be a finite number > 0"),
        (opts.seed >= 0, "seed must be >= 0"),
        (bool(opts.content_layers) and bool(opts.style_layers), "content and style layers must not be empty"),
        (not (opts.power_difference and opts.engine == "numpy"),
         "--power-difference is a PyTorch operator; the NumPy engine computes its own squares (drop one of the two)"),
        (opts.precision in (None, "auto", *PRECISION_CHOICES), f"unknown precision {opts.precision!r}; use one of auto, {', '.join(PRECISION_CHOICES)}"),
        (opts.fp32_finish is None or (is_finite(opts.fp32_finish) and 0 <= opts.fp32_finish <= 1), "fp32 finish must be a fraction from 0 to 1"),
        (opts.engine != "numpy" or opts.precision in (None, "auto", "fp32"),
         f"--precision {opts.precision} is for the torch engine; the NumPy engine computes in fp32"),
    ]
    for ok, message in checks:
        if not ok:
            raise StyleforgeError(message)
    for side in opts.scales or (opts.size,):  # an upper bound before any image is read
        check_pixel_budget(side, side, f"--size {side}")
    check_feature_layers((*opts.content_layers, *opts.style_layers))
    check_mode(opts.preserve_color)
    normalized_weights(len(opts.style_layers), opts.style_layer_weights, "style layer", "style layers")
    if opts.style_blend is not None:
        normalized_weights(len(opts.style_blend), opts.style_blend, "blend", "style images")
    return opts


def check_scaled_sizes(content: Image.Image, styles: list[Image.Image], sizes: list[int], opts: GatysOptions) -> None:
    """Before any work: at every scale, the content and style images must fit the pixel
    limit and be large enough on both sides for the deepest VGG19 layer used."""
    from styleforge.vgg.architecture import min_input_side

    minimum = min_input_side((*opts.content_layers, *opts.style_layers))
    for long_side in sizes:
        pictures = [("the content image", content.size, long_side)]
        pictures += [(f"style image {i + 1}", s.size, _style_side(long_side, opts)) for i, s in enumerate(styles)]
        for what, size, side in pictures:
            width, height = check_pixel_budget(*long_side_size(size, side), f"scaling {what} to a long side of {side}")
            check_min_side(width, height, minimum, f"{what} scaled to a long side of {side}")


def make_engine(opts: GatysOptions, vgg: object | None) -> Engine:
    """Build the engine ``opts.engine`` (loading VGG19 weights when none is given)."""
    if vgg is None:
        weights_file(opts.weights)  # a missing file or name is reported before PyTorch is imported
    if opts.engine == "numpy":
        from styleforge.gatys.numpy_engine import NumpyEngine

        return NumpyEngine.from_options(opts, vgg)
    from styleforge.gatys.torch_engine import TorchEngine

    return TorchEngine.from_options(opts, vgg)


# ---------------------------------------------------------------------------- helpers


def snapshot_writer(output: str | os.PathLike[str], every: int) -> Callable[[StepInfo], None]:
    """Return a callback writing ``OUT_stepNNNNN.EXT`` beside ``output`` every ``every`` steps."""
    out = Path(output)

    def write(info: StepInfo) -> None:
        if every > 0 and info.step % every == 0:
            write_image(info.image(), out.with_name(f"{out.stem}_step{info.step:05d}{out.suffix}"))

    return write


def _as_image(value: ImageInput) -> Image.Image:
    return value.convert("RGB") if isinstance(value, Image.Image) else read_image(value)


def _prepare_colors(content: Image.Image, styles: list[Image.Image], mode: str | None) -> tuple[Image.Image, list[Image.Image]]:
    if mode == "luminance":
        return luminance_image(content), [luminance_image(s, match_to=content) for s in styles]
    if mode == "histogram":
        return content, [match_color_histogram(s, content) for s in styles]
    return content, styles


def _scale_problem(content: Image.Image, styles: list[Image.Image], long_side: int, opts: GatysOptions,
                   previous: np.ndarray | None) -> ScaleProblem:
    scaled_content = resize_long_side(content, long_side)
    scaled_styles = [resize_long_side(s, _style_side(long_side, opts)) for s in styles]
    content_array = image_to_array(scaled_content)
    if previous is not None:
        init = image_to_array(array_to_image(previous).resize(scaled_content.size, Image.Resampling.BICUBIC))
    elif opts.init == "content":
        init = content_array.copy()
    elif opts.init == "style":
        init = image_to_array(styles[0].resize(scaled_content.size, Image.Resampling.BICUBIC))
    else:
        rng = np.random.default_rng(opts.seed)
        init = rng.random(content_array.shape, dtype=np.float32)
    return ScaleProblem(content_array, [image_to_array(s) for s in scaled_styles], init)


def _style_side(long_side: int, opts: GatysOptions) -> int:
    return max(16, round(long_side * opts.style_scale))
