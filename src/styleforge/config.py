"""Defaults and hyperparameters, in one place.

Every default the CLI shows in ``--help`` comes from a dataclass here, so the Python
API, the CLI and the documentation cannot drift apart. Environment variables that
change a default are read here too (and only here).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

#: Values accepted by every ``--device`` option.
DEVICE_CHOICES = ("auto", "cpu", "cuda")

#: Values accepted by every ``--precision`` option: fp32 is exact; bf16 (CPU with
#: AVX512-BF16/AMX, or CUDA) and fp16 (CUDA only) run under torch.autocast.
PRECISION_CHOICES = ("fp32", "bf16", "fp16")
#: ``transfer`` also takes ``int8``: the model quantised once and run in OpenVINO or ONNX
#: Runtime (styleforge.transfer.int8).
TRANSFER_PRECISION_CHOICES = (*PRECISION_CHOICES, "int8")
#: Runtimes for exported ``.onnx`` models (styleforge.runtime.sessions): ``auto`` picks
#: OpenVINO for INT8 files on the CPU when installed, ONNX Runtime otherwise.
RUNTIME_CHOICES = ("auto", "onnxruntime", "openvino")
#: Runtimes of ``transfer`` (styleforge.transfer.runtimes): ``pytorch`` runs the network as
#: loaded; ``openvino`` a copy converted once and cached; ``onnxruntime`` and
#: ``openvino`` run exported ``.onnx`` files; ``auto`` picks the fastest (docs/runtimes.md).
TRANSFER_RUNTIME_CHOICES = ("auto", "pytorch", "onnxruntime", "openvino")
#: How ``transfer --strength`` applies (TransferOptions.strength_mode).
STRENGTH_MODES = ("pixel", "norm")
#: The transform network's normalisation layers and upsampling (``train --norm/--upsample``).
NORMS = ("instance", "batch")
UPSAMPLES = ("resize", "deconv")

#: Normalisations of the perceptual losses (see :mod:`styleforge.losses.perceptual`).
CONTENT_NORMALIZATIONS = ("course", "mse", "sum")
STYLE_NORMALIZATIONS = ("course", "johnson", "mse")
TV_KINDS = ("l2", "l1")

#: Refuse images with more pixels than this (decompression-bomb guard). 64 megapixels
#: is a 8000x8000 photo, far beyond what any command here needs, and well under the
#: ~10 GB a malicious PNG could otherwise make Pillow allocate.
DEFAULT_MAX_PIXELS = 64_000_000


def normalized_weights(count: int, weights: Sequence[float] | None, what: str, items: str) -> list[float]:
    """Return ``count`` non-negative weights summing to 1 (equal when ``weights`` is None).

    Args:
        count: how many items the weights are for.
        weights: the user's weights, or None.
        what: what the weights are called in messages, e.g. ``blend``.
        items: what they weigh, e.g. ``style images``.

    Raises:
        StyleforgeError: wrong count, a negative weight, or all zero.
    """
    from styleforge.errors import StyleforgeError

    values = [1.0] * count if weights is None else [float(w) for w in weights]
    if len(values) != count:
        raise StyleforgeError(f"{len(values)} {what} weights given for {count} {items}")
    if not all(math.isfinite(v) for v in values):
        raise StyleforgeError(f"{what} weights must be finite numbers, got {', '.join(f'{v:g}' for v in values)}")
    total = sum(values)
    if any(v < 0 for v in values) or total <= 0:
        raise StyleforgeError(f"{what} weights must be >= 0 and not all zero")
    return [v / total for v in values]


def is_finite(value: float | None) -> bool:
    """True for None (an unset option) and finite numbers; False for nan and inf."""
    return value is None or math.isfinite(value)


def options_from_kwargs(cls: type, overrides: dict[str, object], command: str) -> object:
    """Build the options dataclass ``cls`` from keyword overrides.

    Args:
        cls: an options dataclass (e.g. GatysOptions, TrainOptions).
        overrides: keyword arguments a Python API call received.
        command: the command's name, for the message.

    Raises:
        StyleforgeError: an unknown keyword (listing the known ones).
    """
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        from styleforge.errors import StyleforgeError

        raise StyleforgeError(f"unknown {command} option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**overrides)


def fill_loss_weights(table: dict[str, tuple[float, ...]], convention_name: str, input_scale: float,
                      chosen: tuple[float | None, ...]) -> tuple[float, ...]:
    """Return ``chosen`` loss weights with each None replaced by the convention's default.

    Args:
        table: default weights per convention name (``torchvision``, ``matconvnet``).
        convention_name: the VGG weights' convention; a user's own convention takes the
            defaults of the known one with the same input range (0-255 or 0-1).
        input_scale: the convention's input scale (255 or 1).
        chosen: the user's weights, None where unset.
    """
    default = table.get(convention_name) or table["matconvnet" if input_scale > 10 else "torchvision"]
    return tuple(d if c is None else c for c, d in zip(chosen, default, strict=True))


def max_pixels_from_env() -> int:
    """Return the pixel limit: ``STYLEFORGE_MAX_PIXELS`` if set (an integer), else the default."""
    raw = os.environ.get("STYLEFORGE_MAX_PIXELS", "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(raw))
    except (ValueError, OverflowError):  # text, nan, inf
        value = 0
    if value <= 0:
        from styleforge.errors import StyleforgeError

        raise StyleforgeError(
            f"STYLEFORGE_MAX_PIXELS={raw!r} is not a positive integer; unset it or give e.g. 64000000"
        )
    return value


@dataclass(frozen=True)
class ClassifyOptions:
    """Options of ``styleforge classify`` / :meth:`styleforge.vgg.network.VGG19.classify`.

    Attributes:
        weights: cached weights name or a path to a .pth/.mat/.safetensors file.
        top_k: how many classes to report per image.
        size: side of the square network input (224 for ImageNet VGG19).
        batch_size: images per forward pass.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        repeat: run the whole classification this many times and report latency;
            the first run is the warm-up and is reported apart.
        precision: ``fp32`` (default, exact), ``bf16`` or ``fp16`` autocast; see
            ``benchmarks/classify.py`` for the speed and probability error of each.
        engine: ``torch``, or ``numpy`` for the from-scratch NumPy VGG19 (CPU, fp32),
            which the course compares with the framework in accuracy and speed.
        runtime: for an exported ``.onnx`` classifier, one of :data:`RUNTIME_CHOICES`.
    """

    weights: str = "vgg19"
    top_k: int = 5
    size: int = 224
    batch_size: int = 8
    device: str = "auto"
    repeat: int = 1
    precision: str = "fp32"
    engine: str = "torch"
    runtime: str = "auto"


#: VGG19 layers used by default for Gatys style transfer: the course's choice (conv
#: outputs, before ReLU; Gatys et al.'s Caffe features were post-ReLU because Caffe's
#: ReLU works in place, so ``relu4_2`` / ``relu1_1..relu5_1`` reproduce the paper).
GATYS_CONTENT_LAYERS = ("conv4_2",)
GATYS_STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")

#: Default (content_weight, style_weight) per VGG preprocessing convention, for the
#: course normalisations (see docs/loss-weights.md for the derivation). Feature
#: magnitudes differ by about 50x between the conventions (0-255 Caffe-style input vs
#: mean/std-normalised input), content loss scales with the square and style loss with
#: the fourth power of that, so one pair of weights cannot serve both.
GATYS_LOSS_WEIGHTS = {
    "torchvision": (1.0, 500.0),
    "matconvnet": (1.0, 0.01),
}

#: Learning rate per optimiser when none is given; the optimised image is RGB in [0, 1].
GATYS_LEARNING_RATES = {"lbfgs": 1.0, "adam": 0.02}


@dataclass(frozen=True)
class GatysOptions:
    """Options of optimisation-based style transfer (``sf.stylize``, ``styleforge stylize``).

    Attributes:
        size: long side of the output in pixels (the content is resized to it).
        iterations: optimiser steps (per scale when ``scales`` is given).
        optimizer: ``lbfgs`` (default, converges in fewer steps) or ``adam``.
        lr: learning rate; None uses :data:`GATYS_LEARNING_RATES`.
        content_weight: alpha and beta in L = alpha L_c + beta L_s + tv L_tv;
        style_weight: alpha and beta in L = alpha L_c + beta L_s + tv L_tv;
            None uses :data:`GATYS_LOSS_WEIGHTS` for the weights' convention.
        tv_weight: weight of the total-variation regulariser (0 = off, the course's choice).
        content_layers: layers of the content loss (their losses are averaged).
        style_layers: layers of the style loss.
        style_layer_weights: one weight per style layer (normalised to sum 1); None = equal.
        style_blend: one weight per style image (normalised to sum 1); None = equal.
        content_loss: see ``tv_kind``.
        style_loss: see ``tv_kind``.
        tv_kind: normalisations (see :mod:`styleforge.losses.perceptual`).
        init: starting image: ``content``, ``noise`` (uniform, seeded) or ``style``.
        preserve_color: None, ``luminance`` or ``histogram`` (see :mod:`styleforge.images.color`).
        scales: long sides for coarse-to-fine runs, e.g. (256, 512); each scale starts
            from the upsampled previous result; the last one is the output size.
        style_scale: style image long side relative to the output's.
        seed: seeds the noise initialisation.
        device: ``auto``, ``cpu`` or ``cuda``.
        weights: VGG19 weights: cache name or file.
        pooling: ``max`` or ``avg`` pooling in VGG19.
        engine: ``torch`` or ``numpy`` (the from-scratch reference engine).
        power_difference: compute every squared difference of the losses (content, style, TV) with the
            PowerDifference operator (``torch.ops.styleforge.power_difference``, z = 2)
            instead of ``(x - y)^2``: the course's section 4.4 switch; same results
            (docs/power-difference.md).
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto`` (as for training: bf16 on
            CPUs with native bf16 and bf16-capable GPUs, fp16 on older GPUs, else fp32).
            Reduced precision runs VGG19 under autocast with channels_last; the image,
            the Gram matrices, the losses and L-BFGS's history stay fp32. ``None``
            (default): what the fidelity study measured faithful, per optimiser. With
            Adam, bf16 where the device runs it natively: after 100 steps it ended 0.5-0.7 %
            above fp32's loss at 256 and 512 px on an AMX Xeon, within the 1 % criterion.
            With L-BFGS, fp32: bf16 ended 1.7 % above at 256 px
            (docs/benchmarks.md, "An AMX Xeon").
        fp32_finish: in reduced precision, the fraction of each scale's steps run at the
            end with VGG19 in fp32 (0 = reduced throughout, 1 = fp32 throughout). ``None``
            (default): 0.5 for L-BFGS, 0 for Adam. bf16's rounding of the forward
            activations costs little early on but holds L-BFGS back near convergence:
            after 100 steps at 128 px (5 starts), bf16 throughout ends 6.2 % above fp32's
            mean loss, finishing the last 40 % in fp32 1.2 %, the last half 0.9 %
            (docs/benchmarks.md, "Gatys in bf16"). Adam gains nothing from the finish
            (0.65 % above fp32 throughout in bf16, 0.68 % with the last half in fp32, at
            256 px on an AMX Xeon; 0.50 % throughout at 512 px), so it keeps bf16's speed
            to the end.
    """

    size: int = 512
    iterations: int = 500
    optimizer: str = "lbfgs"
    lr: float | None = None
    content_weight: float | None = None
    style_weight: float | None = None
    tv_weight: float = 0.0
    content_layers: tuple[str, ...] = GATYS_CONTENT_LAYERS
    style_layers: tuple[str, ...] = GATYS_STYLE_LAYERS
    style_layer_weights: tuple[float, ...] | None = None
    style_blend: tuple[float, ...] | None = None
    content_loss: str = "course"
    style_loss: str = "course"
    tv_kind: str = "l2"
    init: str = "content"
    preserve_color: str | None = None
    scales: tuple[int, ...] | None = None
    style_scale: float = 1.0
    seed: int = 0
    device: str = "auto"
    weights: str = "vgg19"
    pooling: str = "max"
    engine: str = "torch"
    power_difference: bool = False
    precision: str | None = None
    fp32_finish: float | None = None
    extend: str | None = None

    def loss_weights(self, convention_name: str, input_scale: float) -> tuple[float, float]:
        """Return (content_weight, style_weight), filling defaults for a convention."""
        return fill_loss_weights(GATYS_LOSS_WEIGHTS, convention_name, input_scale, (self.content_weight, self.style_weight))  # type: ignore[return-value]

    def learning_rate(self) -> float:
        """Return the learning rate, filling the optimiser's default."""
        return GATYS_LEARNING_RATES.get(self.optimizer, 1.0) if self.lr is None else self.lr


#: The course's training defaults (its style.py: CONTENT_WEIGHT 7.5, STYLE_WEIGHT 100,
#: TV_WEIGHT 200, with MatConvNet's VGG19) in styleforge's units: its style loss is
#: summed over the five layers where ours is their mean (x5), and its TV is taken on the
#: 0-255 output where ours is on output / 255 (x255^2). See docs/loss-weights.md.
COURSE_TRAIN_LOSS_WEIGHTS = (7.5, 100.0 * 5, 200.0 * 255.0**2)

#: Default (content_weight, style_weight, tv_weight) for Johnson training per VGG
#: convention, with content loss "mse" on relu4_2, style loss "mse" (per-position Grams,
#: see styleforge.losses.scales) averaged over relu1_1..relu5_1, and TV (mean squared
#: neighbour differences) on the output in [0, 1]. torchvision: PyTorch's
#: fast_neural_style calibration (content 1e5, style 1e10 per layer, i.e. 5e10 for a
#: mean over five layers) with TV at ~1% of the content term; MatConvNet: the course's
#: own calibration for that file (:data:`COURSE_TRAIN_LOSS_WEIGHTS`).
TRAIN_LOSS_WEIGHTS = {
    "torchvision": (1e5, 5e10, 1e4),
    "matconvnet": COURSE_TRAIN_LOSS_WEIGHTS,
}


@dataclass(frozen=True)
class TrainOptions:
    """Options of feed-forward style training (``sf.train``, ``styleforge train``).

    Attributes:
        epochs: passes over the photo folder.
        batch_size: images per step (per process under torchrun).
        image_size: training crops are image_size x image_size (shorter side resized to
            it, then a centre crop).
        lr: Adam learning rate.
        content_weight: see ``tv_weight``.
        style_weight: see ``tv_weight``.
        tv_weight: None uses :data:`TRAIN_LOSS_WEIGHTS`
            for the weights' convention.
        content_layer: VGG19 layer of the content (feature reconstruction) loss.
        style_layers: VGG19 layers of the style loss (equal weights).
        style_size: long side of the style image when its Grams are computed; None uses
            image_size.
        checkpoint_every: write a checkpoint (and a preview) every N steps; 0 = only at the end.
        keep_models: also write a loadable model ``<style>_stepNNNNNNN.safetensors`` (+ JSON)
            at every checkpoint (Ctrl-C always writes one).
        log_every: print and log losses every N steps.
        max_steps: stop after this many steps in total (None = run all epochs).
        workers: background data-loading processes.
        seed: seeds weights initialisation, data order and every RNG.
        device: auto, cpu or cuda.
        weights: VGG19 weights (cache name or file).
        norm: ``instance`` or ``batch``; upsample: ``resize`` or ``deconv``.
        precision: ``auto`` (bf16 on CPUs with native bf16 and on CUDA with bf16, fp16 on
            older CUDA GPUs, else fp32), ``fp32``, ``bf16`` or ``fp16`` (autocast; fp16 on
            CUDA only, with gradient scaling). Losses are always reduced in fp32.
        power_difference: compute every squared difference (instance norm's variance,
            the content, style and TV losses) with the PowerDifference operator
            (``torch.ops.styleforge.power_difference``, z = 2) instead of ``(x - y)^2``:
            the course's section 4.4 switch; same results (docs/power-difference.md).
        extend: a trained instance-norm model (``.safetensors``) to add the styles to: only
            the new styles' instance-norm rows are trained, everything else is copied and
            frozen, so the model's existing styles give bit-identical outputs.
    """

    epochs: int = 2
    batch_size: int = 4
    image_size: int = 256
    lr: float = 1e-3
    content_weight: float | None = None
    style_weight: float | None = None
    tv_weight: float | None = None
    content_layer: str = "relu4_2"
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    style_size: int | None = None
    checkpoint_every: int = 2000
    keep_models: bool = False
    log_every: int = 100
    max_steps: int | None = None
    workers: int = 2
    seed: int = 0
    device: str = "auto"
    weights: str = "vgg19"
    norm: str = "instance"
    upsample: str = "resize"
    precision: str = "auto"
    power_difference: bool = False
    extend: str | None = None

    def loss_weights(self, convention_name: str, input_scale: float) -> tuple[float, float, float]:
        """Return (content, style, tv) weights, filling defaults for a convention."""
        chosen = (self.content_weight, self.style_weight, self.tv_weight)
        return fill_loss_weights(TRAIN_LOSS_WEIGHTS, convention_name, input_scale, chosen)  # type: ignore[return-value]


@dataclass(frozen=True)
class AdaINTrainOptions:
    """Options of training the AdaIN decoder (``sf.train_adain``, ``styleforge train-adain``);
    defaults from Huang & Belongie 2017 and their released training script.

    Each step pairs ``batch_size`` content photos with as many style images; the loss is
    ``content_weight * L_c + style_weight * L_s`` with ``L_c`` the mean squared error between
    the output's relu4_1 features and the AdaIN target, and ``L_s`` the sum over
    relu1_1..relu4_1 of the mean squared errors of the channel means and deviations.

    Attributes:
        epochs: passes over the content photo folder (the style folder is cycled).
        batch_size: content/style pairs per step (per process under torchrun).
        image_size: content and style crops are image_size x image_size (shorter side
            resized to it, then a centre crop).
        lr: Adam learning rate at step 0; step ``t`` uses ``lr / (1 + lr_decay * t)``.
        lr_decay: the inverse-time decay of the learning rate.
        content_weight: the two loss weights (paper: 1 and 10).
        style_weight: the two loss weights (paper: 1 and 10).
        checkpoint_every: as in :class:`TrainOptions`.
        keep_models: as in :class:`TrainOptions`.
        log_every: as in :class:`TrainOptions`.
        max_steps: as in :class:`TrainOptions`.
        workers: as in :class:`TrainOptions`.
        seed: as in :class:`TrainOptions`.
        device: as in :class:`TrainOptions`.
        weights: as in :class:`TrainOptions`.
        precision: as in :class:`TrainOptions`.
    """

    epochs: int = 2
    batch_size: int = 8
    image_size: int = 256
    lr: float = 1e-4
    lr_decay: float = 5e-5
    content_weight: float = 1.0
    style_weight: float = 10.0
    checkpoint_every: int = 2000
    keep_models: bool = False
    log_every: int = 100
    max_steps: int | None = None
    workers: int = 2
    seed: int = 0
    device: str = "auto"
    weights: str = "vgg19"
    precision: str = "auto"


@dataclass(frozen=True)
class TransferOptions:
    """Options of stylising with a trained model (``model.stylize``, ``styleforge transfer``).

    Attributes:
        size: resize inputs so the long side is this many pixels (None = keep sizes).
        tile: process images in tiles of this side (None = automatic).
        tile_overlap: overlap between tiles, blended linearly (at most a quarter of the tile).
        auto_tile_pixels: images above this many pixels are tiled automatically
            (4 megapixels bounds activation memory to about 2 GB in fp32).
        stats_pixels: instance-norm statistics of a tiled image are computed on a copy
            downscaled to at most this many pixels.
        batch_size: same-size images stylised together: one forward pass on CUDA; on the
            CPU one pass per image, which measured faster (``StyleModel.images_per_pass``).
        device: auto, cpu or cuda.
        precision: ``auto`` (fp16 on CUDA, bf16 on CPUs with native bf16, else fp32),
            ``fp32``, ``bf16`` or ``fp16`` (autocast), or ``int8`` (CPU: the model
            quantised once on shipped photos, cached, and run by OpenVINO or ONNX Runtime;
            its PSNR against fp32 is printed; :mod:`styleforge.transfer.int8`).
        compile: run the network through ``torch.compile`` (fuses the normalisation and
            padding passes: ~6x the plain eager speed at 512 px on a 2-core AMX CPU, after a
            ~25 s compilation per image size the first time on a machine and ~5 s in later
            runs, whose compiled kernels are cached in the styleforge cache folder
            (:mod:`styleforge.utils.compiling`); worth it for many same-size images).
        runtime: one of :data:`TRANSFER_RUNTIME_CHOICES`. For a PyTorch model (``.safetensors``,
            an installed name, a checkpoint) on the CPU: ``pytorch``, ``openvino`` (the
            network converted once per model and cached, compiled per machine), or ``auto``,
            which runs OpenVINO when it pays off for the job (:class:`RuntimePolicy`). For
            an ``.onnx`` file: ``onnxruntime``, ``openvino`` or ``auto`` (OpenVINO for INT8
            files). See docs/runtimes.md.
        power_difference: compute every squared difference of instance norm's variance with the
            PowerDifference operator (``torch.ops.styleforge.power_difference``, z = 2)
            instead of ``(x - y)^2``: the course's section 4.4 switch; same results
            (docs/power-difference.md).
        strength: how much of the style to apply, 0..1 (1 = the network's output).
        strength_mode: how ``strength`` applies. ``pixel`` (default): the result is
            ``strength * stylised + (1 - strength) * photo`` (0 = the photo). ``norm``
            (instance-norm networks only): every instance norm's scale and shift move
            toward the identity normalisation, ``gamma' = 1 + s (gamma - 1)`` and
            ``beta' = s beta``, which weakens the style inside the network (Dumoulin et
            al. 2017 interpolate these parameters between styles); 0 is the network with
            no learned modulation, not the photo. See docs/strength.md for which to use.
        style_weights: for a multi-style model, which style or blend to use:
            ``"2"``, ``"wave"``, or ``"0:0.5,wave:0.5"`` (index or name, weight; weights
            are normalised to sum 1 and blend the conditional instance norms' parameters).
            None: style 0. For an AdaIN model, the same syntax weights its ``styles``
            (by index or file stem); equal weights by default.
        styles: style images for an AdaIN model (``styleforge train-adain``): their relu4_1
            channel statistics are taken once (blended by ``style_weights``) and every
            image is stylised toward them. Refused for models with a built-in style.
        alpha: AdaIN's content-style trade-off, 0..1: the decoder gets
            ``alpha * AdaIN(f(c), s) + (1 - alpha) * f(c)`` (1 = full style).
        style_size: AdaIN style images are resized to this long side before their
            statistics are taken (the paper's 512; statistics depend on the scale of the
            brush strokes, so this is a knob for stroke size).
        cuda_graphs: on CUDA, an image shape seen a third time is captured as a CUDA
            graph and replayed from then on (:mod:`styleforge.utils.cuda_graphs`): the launch
            overhead goes, 1.6x faster at 512 px on an H200; no effect on the CPU, with
            ``compile``, or on tiles.
        preserve_color: None, ``luminance`` (the stylised luminance with the photo's
            chroma) or ``histogram`` (the stylised image recoloured to the photo's colour
            mean and covariance); see :mod:`styleforge.images.color`.
    """

    size: int | None = None
    tile: int | None = None
    tile_overlap: int = 64
    auto_tile_pixels: int = 4_000_000
    stats_pixels: int = 1_000_000
    batch_size: int = 4
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    runtime: str = "auto"
    power_difference: bool = False
    strength: float = 1.0
    strength_mode: str = "pixel"
    preserve_color: str | None = None
    style_weights: str | None = None
    styles: tuple[str, ...] = ()
    alpha: float = 1.0
    style_size: int = 512
    cuda_graphs: bool = True


@dataclass(frozen=True)
class RuntimePolicy:
    """How ``--runtime auto`` chooses between PyTorch and OpenVINO for a PyTorch style
    model on the CPU (:mod:`styleforge.transfer.runtimes`).

    OpenVINO runs the same network faster here (1.5x at 512 px in fp32 on a 2-core Zen 3,
    1.26x against PyTorch's bf16 on a Zen 4), but its first use on a machine costs a
    conversion and a compilation (about 2 s for the default network), and every later
    start the import, a compile from the blob cache and a first-image set-up (0.3-0.6 s
    on a 2-core Zen 3). ``auto`` therefore weighs the job's size against that cost: with
    this machine's measured speeds of the model on both runtimes when it has them
    (recorded beside the converted model), with the thresholds below before it has.

    Attributes:
        cold_min_gflop: with no converted copy of the model cached, a job needing at least
            this many GFLOP of the network's convolutions (its megapixels times
            :func:`~styleforge.nets.transform_net.convolution_gflop_per_megapixel`) converts
            now; a smaller one runs in PyTorch and has the copy made in the background for
            the next run. 2500: 8 MP of the default full-size network (308 GFLOP per MP;
            30 photos at 512 px or 35 frames at 640x360), whose break-even was 1.3 MP on a
            Zen 3 and about 6 MP on a Zen 4. Counted in FLOPs, not pixels, because the
            conversion costs about the same for any network while the saving grows with
            its work: magenta-26 (39 GFLOP per MP) converted in the job lost 0.85-0.92x on
            a folder of 20 photos of 1024x768 on a Zen 3, where running PyTorch first loses
            nothing.
        warm_min_gflop: with a cached copy but no measured speeds yet, a job of at least
            this many GFLOP runs in OpenVINO: 80, one 512 px photo of the full-size network
            (about break-even on the Zen 3), 2 MP for magenta-26.
        background_min_megapixels: after a job run in PyTorch because the cache was cold,
            the conversion (and a timing of both runtimes) runs in a background process for
            the next run, when the job held at least this many megapixels (smaller ones are
            thumbnails, which PyTorch serves as fast).
        background_conversion: allow that background process at all;
            ``STYLEFORGE_BACKGROUND_CONVERSION=0`` turns it off.
        min_psnr_db, psnr_tolerance_db: for a bf16 job, the copy runs in OpenVINO's bf16
            only when its measured PSNR against fp32 is at least ``min_psnr_db`` or within
            ``psnr_tolerance_db`` of PyTorch's bf16 path; otherwise OpenVINO is weighed in
            fp32 (which is always faithful). OpenVINO's bf16 rounds every activation, where
            autocast keeps the normalisation in fp32: 43.9 against 47.4 dB for the trained
            magenta-26 and 34.3 against 38.4 dB for a random network at 512 px on an AMX
            Xeon (docs/benchmarks/*-cpu-amx.json). Without measurements, a bf16 job runs
            in PyTorch and the background process measures.
    """

    cold_min_gflop: float = 2500.0
    warm_min_gflop: float = 80.0
    background_min_megapixels: float = 0.2
    background_conversion: bool = field(default_factory=lambda: os.environ.get("STYLEFORGE_BACKGROUND_CONVERSION", "1") != "0")
    min_psnr_db: float = 45.0
    psnr_tolerance_db: float = 1.0


@dataclass(frozen=True)
class VideoOptions:
    """Options of stylising a video (``styleforge transfer clip.mp4 -o out.mp4``), on top
    of :class:`TransferOptions` (size, batch size, device, precision, strength, colour).

    Attributes:
        temporal_smoothing: weight 0..1 pulling each output frame toward the previous
            output warped along the optical flow, where the flow is consistent
            (0 = frame by frame; see :mod:`styleforge.video.temporal`). 0.5 halves the
            flicker of a typical model at a few milliseconds per frame of DIS flow.
        measure: compute the warping error (and hence the flow) even without smoothing.
        flow_long_side: the flow is estimated on frames shrunk to this long side.
        flow_preset: OpenCV DIS preset, ``fast`` or ``medium``.
        crf: encoder quality (constant rate factor; 18 is visually lossless for H.264).
    """

    temporal_smoothing: float = 0.0
    measure: bool = False
    flow_long_side: int = 640
    flow_preset: str = "medium"
    crf: int = 18

    #: The weight ``--temporal-smoothing`` gives without a value.
    DEFAULT_SMOOTHING = 0.5


@dataclass(frozen=True)
class QuantizeOptions:
    """Options of ``styleforge quantize``, named and defaulted as the course's INI file
    (``fppb_to_intpb.py vgg19_int8.ini``); see docs/quantize.md for each key.

    Attributes:
        mean: ``[preprocess]`` calibration preprocessing ``(pixel - mean) / std`` on
        std: ``[preprocess]`` calibration preprocessing ``(pixel - mean) / std`` on
            0-255 pixels, per channel in ``color_mode`` order (one value for ``grey``).
        color_mode: ``rgb``, ``bgr`` or ``grey``.
        crop: ``(height, width)`` the calibration images are resized and centre-cropped to.
        calibration: ``default_preprocess_cali`` or a user's ``module:function`` returning
            an iterable of input arrays.
        activation_quantization_alg: ``naive`` (min/max) or
        weight_quantization_alg: ``naive`` (min/max) or
            ``threshold_search`` (clip outliers; see docs/quantize.md).
        quantization_type: ``int8`` or ``int16``.
        int_op_list: layer kinds to quantise: ``Conv``, ``FC``, ``LRN``.
        channel_quantization: per-output-channel weight scales.
        device_mode: ``clean``, ``origin`` or ``mlu`` (see docs/quantize.md).
        use_convfirst: fold ``(x - mean) / std`` into the first convolution.
        debug: keep the calibration ranges beside the output.
        input_tensor_names: ``[model]`` graph names (checked).
        output_tensor_names: ``[model]`` graph names (checked).
        original_models_path: the float and the quantised ONNX files.
        save_model_path: the float and the quantised ONNX files.
        data_path: an image-list file (one path per line) or a folder of images.
        batch_size: ``batch_size * num_runs`` images calibrate.
        num_runs: ``batch_size * num_runs`` images calibrate.
        threshold_percentile: percentile of |activation| kept by ``threshold_search``.
        float_first_last: keep the first and the last quantisable layer in float
            (styleforge's key, not the course's): the first sees raw pixels, the last
            writes them; in INT8 they cost the style network 4 dB (random weights) to
            9 dB (trained) of PSNR (docs/quantize.md). The bf16 path keeps the first
            convolution fp32 for the same reason.
        range_margin: calibrated activation ranges are widened by this factor before
            quantising, so inputs brighter or more contrasted than the calibration set
            are not clipped; ``None`` = 1 for int8 (its 256 levels are worth more than
            headroom) and 2 for int16 (one bit of sixteen buys it).
    """

    mean: tuple[float, ...] = (123.68, 116.78, 103.94)
    std: tuple[float, ...] = (1.0,)
    color_mode: str = "rgb"
    crop: tuple[int, int] = (224, 224)
    calibration: str = "default_preprocess_cali"
    activation_quantization_alg: str = "naive"
    weight_quantization_alg: str = "naive"
    quantization_type: str = "int8"
    int_op_list: tuple[str, ...] = ("Conv", "FC")
    channel_quantization: bool = False
    device_mode: str = "clean"
    use_convfirst: bool = False
    debug: bool = False
    input_tensor_names: tuple[str, ...] = ("image",)
    output_tensor_names: tuple[str, ...] = ()
    original_models_path: str = ""
    save_model_path: str = ""
    data_path: str = ""
    batch_size: int = 1
    num_runs: int = 1
    threshold_percentile: float = 99.99
    float_first_last: bool = True
    range_margin: float | None = None


#: SMTP transport security: ``starttls`` (port 587), ``ssl`` (implicit TLS, port 465) or
#: ``none`` (a local relay on loopback only).
SMTP_SECURITY_CHOICES = ("starttls", "ssl", "none")


@dataclass(frozen=True)
class SmtpSettings:
    """Where ``styleforge serve`` sends result mails (the ``[smtp]`` table of the config
    file, or ``STYLEFORGE_SMTP_<FIELD>``). Mail is off while ``host`` is empty.

    Attributes:
        host: the SMTP server.
        port: the SMTP server.
        user: login (both empty: no login). The password is never logged
        password: login (both empty: no login). The password is never logged
            nor shown in ``repr``.
        security: one of :data:`SMTP_SECURITY_CHOICES`.
        sender: the ``From`` address.
        timeout: seconds for each SMTP exchange.
    """

    host: str = ""
    port: int = 587
    user: str = ""
    password: str = field(default="", repr=False)
    security: str = "starttls"
    sender: str = "styleforge@localhost"
    timeout: float = 30.0

    @property
    def enabled(self) -> bool:
        """True when a server is configured."""
        return bool(self.host)


@dataclass(frozen=True)
class ServiceSettings:
    """Settings of the web service (``styleforge serve`` / ``styleforge worker``).

    Read, later ones winning: these defaults, the TOML file given by ``--config``
    (top-level keys named as below, plus an ``[smtp]`` table), ``STYLEFORGE_<FIELD>``
    environment variables (``STYLEFORGE_SMTP_<FIELD>`` for mail), then command-line
    flags. docs/service.md lists them with examples.

    Attributes:
        host: where the HTTP server listens.
        port: where the HTTP server listens.
        models: folders scanned for styles: ``*.safetensors`` (+ JSON) and ``*.onnx``
            are fast styles; images (``.jpg``, ``.png``...) are Gatys styles (slow jobs).
            Empty: ``<styleforge home>/models``.
        data: where jobs live (SQLite database, uploads, results). In Celery mode every
            node must mount the same folder. Empty: ``<styleforge home>/service``.
        workers: embedded mode's job threads; None = 2 on machines with 2 or more cores
            (two jobs at once, each with half the cores, finish more work than one job with
            all of them: 79% against 66% of bare ``transfer`` throughput on 2 cores,
            benchmarks/service.py), else 1.
        threads: PyTorch threads per job; None = the cores divided by the jobs run at
            once (embedded ``workers``, or a Celery worker's ``--concurrency``).
        broker: a ``redis://`` URL hands jobs to Celery workers; empty = embedded mode.
        max_upload_bytes: largest request body accepted (413 above).
        max_pixels: largest decoded image accepted (413 above).
        max_queued: jobs waiting at once; more are refused with 503 and Retry-After.
        rate_limit: job submissions per client (IP address) per ``rate_window`` seconds
            (429 above; 0 = no limit).
        rate_window: the rate limit's window in seconds.
        request_timeout: seconds a client may take to send its request body (408 after).
        retention_hours: finished jobs and their files are deleted this long after they end.
        sweep_interval: seconds between retention sweeps.
        default_size: long side of fast-style results when the request gives no
        max_size: long side of fast-style results when the request gives no
            size, and the largest size a request may ask for.
        gatys_size: long side and L-BFGS iterations of Gatys jobs (the
        gatys_iterations: long side and L-BFGS iterations of Gatys jobs (the
            request's size is capped at ``gatys_size``).
        vgg: VGG19 weights for Gatys styles (cache name or file).
        device: ``auto``, ``cpu`` or ``cuda`` for the networks.
        runtime: what runs fast-style networks on the CPU, as ``transfer --runtime``:
            ``auto`` (the OpenVINO copy where this machine measured it faster and
            faithful, else PyTorch; a model not yet measured runs in PyTorch, and a
            background process measures it when the service exits), ``pytorch`` or
            ``openvino``. Exported ``.onnx`` styles run in their own runtime.
        job_timeout: the longest a job may run, in seconds; Celery's visibility timeout
            is set above it so a running job is never handed to a second worker.
        max_attempts: a job whose worker died is retried until it has been started this
            many times, then reported failed.
        smtp: see :class:`SmtpSettings`.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    models: tuple[str, ...] = ()
    data: str = ""
    workers: int | None = None
    threads: int | None = None
    broker: str = field(default="", repr=False)
    max_upload_bytes: int = 20_000_000
    max_pixels: int = 25_000_000
    max_queued: int = 100
    rate_limit: int = 30
    rate_window: float = 60.0
    request_timeout: float = 30.0
    retention_hours: float = 24.0
    sweep_interval: float = 600.0
    default_size: int = 512
    max_size: int = 1024
    gatys_size: int = 384
    gatys_iterations: int = 100
    vgg: str = "vgg19"
    device: str = "auto"
    runtime: str = "auto"
    job_timeout: float = 600.0
    max_attempts: int = 3
    smtp: SmtpSettings = field(default_factory=SmtpSettings)


def service_environment(prefix: str = "STYLEFORGE_") -> dict[str, dict[str, str]]:
    """Return the ``STYLEFORGE_<FIELD>`` / ``STYLEFORGE_SMTP_<FIELD>`` variables that name a
    service setting, as ``{"service": {field: text}, "smtp": {field: text}}`` (unparsed;
    :mod:`styleforge.service.settings` converts and checks them)."""
    found: dict[str, dict[str, str]] = {"service": {}, "smtp": {}}
    for f in fields(SmtpSettings):
        value = os.environ.get(f"{prefix}SMTP_{f.name.upper()}")
        if value is not None:
            found["smtp"][f.name] = value
    for f in fields(ServiceSettings):
        value = os.environ.get(f"{prefix}{f.name.upper()}")
        if value is not None and f.name != "smtp":
            found["service"][f.name] = value
    return found
