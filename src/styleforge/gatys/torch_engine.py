"""The PyTorch engine of Gatys style transfer: one scale on any device.

See :mod:`styleforge.gatys.driver` for the objective and the driver that calls
:meth:`TorchEngine.optimize` once per scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from styleforge.config import GatysOptions
from styleforge.errors import StyleforgeError
from styleforge.gatys.engine import BestImage, ScaleProblem, StepCallback
from styleforge.losses.perceptual import content_loss, style_loss, style_target, total_variation
from styleforge.losses.scales import blend_targets, normalized_layer_weights


def reduced_precision_steps(steps: int, precision: str, fp32_finish: float) -> int:
    """How many of a scale's ``steps`` run VGG19 in ``precision``: none when it is fp32,
    else all but the last ``fp32_finish`` fraction (the fp32 share rounded up to whole steps)."""
    if precision == "fp32":
        return 0
    return steps - math.ceil(fp32_finish * steps - 1e-9)


def default_precision(optimizer: str, device: torch.device) -> str:
    """The precision of ``GatysOptions(precision=None)`` for ``optimizer`` on ``device``:
    bf16 for Adam where the device runs bf16 natively (its loss after 100 steps stayed
    within 1 % of fp32's at 256 and 512 px), fp32 for L-BFGS (1.7 % above at 256 px) and
    wherever bf16 would be emulated."""
    from styleforge.devices import auto_precision

    return "bf16" if optimizer == "adam" and auto_precision(device, training=True) == "bf16" else "fp32"


#: ``GatysOptions(fp32_finish=None)`` per optimiser (the fidelity study in
#: :class:`~styleforge.config.GatysOptions`): L-BFGS needs fp32 near convergence, Adam not.
DEFAULT_FP32_FINISH = {"lbfgs": 0.5, "adam": 0.0}


def default_fp32_finish(optimizer: str) -> float:
    """The share of each scale's steps ``GatysOptions(fp32_finish=None)`` runs in fp32
    after a reduced-precision start, for ``optimizer`` (``lbfgs`` or ``adam``)."""
    return DEFAULT_FP32_FINISH[optimizer]


class TorchEngine:
    """Gatys optimisation of one scale on PyTorch (any device)."""

    @classmethod
    def from_options(cls, opts: GatysOptions, vgg: object | None = None) -> TorchEngine:
        """Build the engine, loading ``opts.weights`` when no VGG19 is given."""
        from styleforge.devices import resolve_device
        from styleforge.vgg.network import VGG19, load_vgg19

        device = resolve_device(opts.device)
        if vgg is None:
            vgg = load_vgg19(opts.weights, device=device, pooling=opts.pooling)
        if not isinstance(vgg, VGG19):
            raise StyleforgeError("vgg must be a styleforge VGG19 (see sf.load_vgg19)")
        return cls(vgg, opts, device)

    def __init__(self, vgg: torch.nn.Module, opts: GatysOptions, device: torch.device) -> None:
        from styleforge.devices import describe_device, resolve_precision, vgg_memory_format

        self.precision = resolve_precision(opts.precision or default_precision(opts.optimizer, device), device, training=True)
        reduced = self.precision != "fp32"
        self.memory_format = vgg_memory_format(device, self.precision)
        self.vgg = vgg.to(device, memory_format=self.memory_format)
        self.opts = opts
        self.device = device
        self.fp32_finish = default_fp32_finish(opts.optimizer) if opts.fp32_finish is None else opts.fp32_finish
        self.device_description = describe_device(device) + (f", {self.precision}{self._finish_note()}" if reduced else "")
        self.alpha, self.beta = opts.loss_weights(vgg.convention.name, vgg.convention.input_scale)
        self.layer_weights = normalized_layer_weights(opts.style_layers, opts.style_layer_weights)
        self.layers = list(dict.fromkeys([*opts.content_layers, *opts.style_layers]))

    def reduced_steps(self, steps: int) -> int:
        """How many of a scale's ``steps`` run VGG19 in the engine's reduced precision
        (see :func:`reduced_precision_steps`)."""
        return reduced_precision_steps(steps, self.precision, self.fp32_finish)

    def _finish_note(self) -> str:
        share = self.fp32_finish
        return "" if share == 0 else " (fp32 throughout)" if share >= 1 else f" then fp32 for the last {share:.0%} of steps"

    def features(self, image: torch.Tensor, layers: Sequence[str], precision: str | None = None) -> dict[str, torch.Tensor]:
        """VGG19 features (float32) of an image batch in [0, 1], in the weights' convention,
        computed in ``precision`` (default: the engine's).

        In reduced precision only VGG19 runs under autocast: its features come back as
        float32, so the Gram matrices (sums of H*W products), the losses and the gradient
        that reaches the fp32 image and L-BFGS's curvature pairs are all fp32; bf16 noise in
        the features then only perturbs the objective slightly instead of the optimiser.
        """
        from styleforge.devices import autocast

        with autocast(self.device, precision or self.precision):
            feats = self.vgg.extract(self.vgg.normalize(image).contiguous(memory_format=self.memory_format), layers)
        return {name: f.float() for name, f in feats.items()}

    @torch.no_grad()
    def targets(self, problem: ScaleProblem, precision: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Content features and the blended per-position style Grams, computed without
        gradients in ``precision`` (default: the engine's)."""
        content = self.features(self._tensor(problem.content), self.opts.content_layers, precision)
        per_style = [
            {layer: style_target(f)[0] for layer, f in self.features(self._tensor(s), self.opts.style_layers, precision).items()}
            for s in problem.styles
        ]
        return content, blend_targets(per_style, self.opts.style_blend)

    def losses(self, image: torch.Tensor, content_targets: dict[str, torch.Tensor], style_targets: dict[str, torch.Tensor],
               precision: str | None = None) -> dict[str, torch.Tensor]:
        """The weighted loss terms of ``image`` with VGG19 in ``precision`` (default: the
        engine's); ``total`` is their sum."""
        opts = self.opts
        feats = self.features(image, self.layers, precision)
        pd = opts.power_difference
        lc = sum(content_loss(feats[l], content_targets[l], opts.content_loss, pd) for l in opts.content_layers) / len(opts.content_layers)
        ls = sum(w * style_loss(feats[l], style_targets[l], opts.style_loss, pd) for l, w in self.layer_weights.items())
        tv = total_variation(image, opts.tv_kind, pd) if opts.tv_weight > 0 else image.new_zeros(())
        terms = {"content": self.alpha * lc, "style": self.beta * ls, "tv": opts.tv_weight * tv}
        return {"total": terms["content"] + terms["style"] + terms["tv"], **terms}

    def optimize(self, problem: ScaleProblem, steps: int, on_step: StepCallback) -> tuple[np.ndarray, KeyboardInterrupt | None]:
        """Run ``steps`` optimiser steps from ``problem.init``; returns (best image, the
        Ctrl-C/SIGTERM that stopped it or None).

        In reduced precision the steps after the first :meth:`reduced_steps` run VGG19
        in fp32: bf16's rounding of the forward activations (8-bit mantissa) is small
        against the style residual early on but not near convergence, where it misleads
        L-BFGS's gradient; rounding the gradients alone measured harmless
        (docs/benchmarks.md, "Gatys in bf16"). The targets are recomputed in
        fp32 at the switch, so each phase compares features with targets made by the same
        arithmetic; L-BFGS's curvature history carries over (resetting it measured worse).
        """
        reduced = self.reduced_steps(steps)

        def precision_of(step: int) -> str:  # step counts from 0
            return self.precision if step < reduced else "fp32"

        made: dict[str, tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]] = {}

        def targets_in(precision: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
            if precision not in made:
                made[precision] = self.targets(problem, precision)
            return made[precision]

        image = self._tensor(problem.init).clone().requires_grad_(True)  # never optimise the caller's array in place
        optimizer = self._optimizer(image)
        best = BestImage()
        step = 0

        def closure() -> torch.Tensor:
            nonlocal step
            precision = precision_of(step)
            optimizer.zero_grad(set_to_none=True)
            terms = self.losses(image, *targets_in(precision), precision)
            terms["total"].backward()
            values = {k: float(v.detach()) for k, v in terms.items()}
            best.offer(values["total"], lambda: image.detach().clone())
            step += 1
            on_step(step, values, lambda: image.detach().cpu().numpy())
            return terms["total"]

        try:
            while step < steps:
                optimizer.step(closure)
        except KeyboardInterrupt as stop:
            return self._best_array(best, image), stop
        with torch.no_grad():  # the image after the last step was never evaluated
            final = precision_of(steps - 1)  # scored as the last step was
            best.offer(float(self.losses(image, *targets_in(final), final)["total"]), lambda: image.detach().clone())
        return self._best_array(best, image), None

    @staticmethod
    def _best_array(best: BestImage, fallback: torch.Tensor) -> np.ndarray:
        chosen = best.image if isinstance(best.image, torch.Tensor) else fallback.detach()
        return chosen.cpu().numpy()

    def _optimizer(self, image: torch.Tensor) -> torch.optim.Optimizer:
        lr = self.opts.learning_rate()
        if self.opts.optimizer == "adam":
            return torch.optim.Adam([image], lr=lr, betas=(0.9, 0.999), eps=1e-8)
        # One iteration (= one function evaluation, no line search) per .step(); the
        # curvature history persists in the optimiser's state between calls.
        return torch.optim.LBFGS([image], lr=lr, max_iter=1, history_size=100, tolerance_grad=-1, tolerance_change=-1)

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(self.device)
