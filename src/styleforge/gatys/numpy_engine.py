"""The Gatys loop on the NumPy engine (``sf.stylize(..., engine="numpy")``).

Same objective, layers, weights and initialisation as the PyTorch engine (see
:mod:`styleforge.gatys.driver`), with every gradient computed by the hand-written backward
passes: loss layers -> :meth:`VGG19.backward` -> the normalisation -> the image, plus the
total-variation gradient, then Adam (formula 3.17) or L-BFGS (the same algorithm as the
PyTorch engine's), both written in NumPy.
"""

from __future__ import annotations

import numpy as np

from styleforge.config import GatysOptions
from styleforge.errors import StyleforgeError
from styleforge.gatys.engine import BestImage, ScaleProblem, StepCallback
from styleforge.losses.scales import blend_targets, normalized_layer_weights
from styleforge.numpy_engine.losses import ContentLoss, StyleLoss, TotalVariationLoss, style_target
from styleforge.numpy_engine.optim import LBFGS, Adam
from styleforge.numpy_engine.vgg import VGG19


class NumpyEngine:
    """Optimises one scale with the NumPy VGG19 and Adam or L-BFGS."""

    device_description = "cpu (NumPy engine)"

    @classmethod
    def from_options(cls, opts: GatysOptions, vgg: object | None = None) -> NumpyEngine:
        """Build the engine, loading ``opts.weights`` when no NumPy VGG19 is given."""
        if opts.pooling != "max":
            raise StyleforgeError("the NumPy engine implements max pooling only: drop --pooling avg")
        if opts.device not in ("auto", "cpu"):
            raise StyleforgeError("the NumPy engine runs on the CPU: use --device cpu or auto")
        if vgg is None:
            vgg = VGG19.load(opts.weights)
        if not isinstance(vgg, VGG19):
            raise StyleforgeError("engine='numpy' needs a styleforge.numpy_engine.VGG19 (or none, to load opts.weights)")
        return cls(vgg, opts)

    def __init__(self, vgg: VGG19, opts: GatysOptions) -> None:
        self.vgg = vgg
        self.opts = opts
        self.alpha, self.beta = opts.loss_weights(vgg.convention.name, vgg.convention.input_scale)
        self.layer_weights = normalized_layer_weights(opts.style_layers, opts.style_layer_weights)
        self.layers = list(dict.fromkeys([*opts.content_layers, *opts.style_layers]))

    def targets(self, problem: ScaleProblem) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Content features and the blended per-position style Grams, computed once."""
        vgg, opts = self.vgg, self.opts
        content = {k: v.copy() for k, v in vgg.extract(vgg.normalize(problem.content), opts.content_layers).items()}
        per_style = [{k: style_target(v)[0] for k, v in vgg.extract(vgg.normalize(s), opts.style_layers).items()}
                     for s in problem.styles]
        return content, blend_targets(per_style, opts.style_blend)

    def loss_and_gradient(self, image: np.ndarray, content_targets: dict[str, np.ndarray],
                          style_targets: dict[str, np.ndarray], need_gradient: bool = True) -> tuple[dict[str, float], np.ndarray | None]:
        """Weighted loss terms of ``image`` (and, if asked, dL/dimage)."""
        opts, vgg = self.opts, self.vgg
        feats = vgg.extract(vgg.normalize(image), self.layers)
        layer_grads: dict[str, np.ndarray] = {}
        content_total = 0.0
        for layer in opts.content_layers:
            loss = ContentLoss(opts.content_loss)
            content_total += loss.forward(feats[layer], content_targets[layer]) / len(opts.content_layers)
            if need_gradient:
                _accumulate(layer_grads, layer, loss.backward() * (self.alpha / len(opts.content_layers)))
        style_total = 0.0
        for layer, weight in self.layer_weights.items():
            loss = StyleLoss(opts.style_loss)
            style_total += weight * loss.forward(feats[layer], style_targets[layer])
            if need_gradient:
                _accumulate(layer_grads, layer, loss.backward() * (self.beta * weight))
        tv_value = 0.0
        grad = None
        tv = TotalVariationLoss(opts.tv_kind)
        if opts.tv_weight > 0:
            tv_value = tv.forward(image)
        if need_gradient:
            grad = vgg.normalize_backward(vgg.backward(layer_grads))
            if opts.tv_weight > 0:
                grad = grad + opts.tv_weight * tv.backward()
        terms = {"content": self.alpha * content_total, "style": self.beta * style_total, "tv": opts.tv_weight * tv_value}
        return {"total": terms["content"] + terms["style"] + terms["tv"], **terms}, grad

    def optimize(self, problem: ScaleProblem, steps: int, on_step: StepCallback) -> tuple[np.ndarray, KeyboardInterrupt | None]:
        """Run ``steps`` optimiser steps from ``problem.init``; returns (best image, the
        Ctrl-C/SIGTERM that stopped it or None)."""
        content_targets, style_targets = self.targets(problem)
        image = problem.init.astype(self.vgg.dtype, copy=True)
        lr = self.opts.learning_rate()
        optimizer = Adam(lr=lr) if self.opts.optimizer == "adam" else LBFGS(lr=lr, history_size=100)
        best = BestImage()
        try:
            for step in range(1, steps + 1):
                values, grad = self.loss_and_gradient(image, content_targets, style_targets)
                best.offer(values["total"], image.copy)
                current = image
                on_step(step, values, lambda: current)
                image = optimizer.step(image, grad)
        except KeyboardInterrupt as stop:
            return (best.image if best.image is not None else image), stop  # type: ignore[return-value]
        final, _ = self.loss_and_gradient(image, content_targets, style_targets, need_gradient=False)
        best.offer(final["total"], image.copy)
        return best.image, None  # type: ignore[return-value]


def _accumulate(grads: dict[str, np.ndarray], layer: str, value: np.ndarray) -> None:
    grads[layer] = grads[layer] + value if layer in grads else value
