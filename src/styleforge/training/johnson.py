r"""Training the feed-forward style network (Johnson et al. 2016) with VGG19 perceptual losses.

For a batch of photos :math:`x` and the network output :math:`y = f(x)` (both 0-255):

.. math:: L = \alpha\, L_c(\phi_{c}(y), \phi_{c}(x)) + \beta \sum_{l} w_l L_s(\phi_l(y), A_l) + \gamma\, TV(y / 255)

with :math:`\phi` the frozen VGG19 (in the weights' convention), content loss ``mse`` on
``relu4_2``, style loss ``mse`` on C*H*W-normalised Gram matrices averaged over
``relu1_1..relu5_1``, and the style targets :math:`A_l` computed once. Only the
transform network is optimised (Adam). Epochs, checkpoints and exact resuming are
:class:`~styleforge.training.loop.TrainingLoop`'s.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from PIL import Image

from styleforge.config import TrainOptions, options_from_kwargs
from styleforge.devices import autocast, vgg_memory_format
from styleforge.errors import StyleforgeError
from styleforge.images.io import image_to_array, read_image, resize_long_side
from styleforge.losses.perceptual import content_loss, style_loss, style_target, total_variation
from styleforge.losses.scales import normalized_layer_weights
from styleforge.nets.transform_net import InstanceNorm, TransformNet, use_power_difference
from styleforge.training.loop import (  # noqa: F401  (re-exported: the loop's pieces were first defined here)
    Distributed,
    EpochSampler,
    PhotoFolder,
    TrainingLoop,
    TrainState,
    collate_photos,
    image_checksum,
    rng_state,
    set_rng_state,
    vgg_checksum,
)
from styleforge.training.plan import validate_train_options
from styleforge.utils.fs import check_output_dir, folder_removed_on_failure
from styleforge.utils.limits import check_min_side
from styleforge.vgg.architecture import min_input_side


class Trainer(TrainingLoop):
    """Owns the networks, optimiser, losses and files of one feed-forward training run."""

    loss_terms = ("total", "content", "style", "tv")
    resume_keys = ("norm", "upsample", "batch_size", "image_size", "seed")

    def __init__(self, style_image: Image.Image | list[Image.Image], style_name: str | list[str], data_dir: str | os.PathLike[str],
                 out_dir: str | os.PathLike[str], opts: TrainOptions, vgg: object | None = None,
                 test_image: Image.Image | None = None, progress: bool = True) -> None:
        from styleforge.vgg.network import VGG19, load_vgg19

        # Several styles train one conditional-instance-norm network (Dumoulin et al. 2017):
        # each step uses one style, round-robin by step number, so a resumed run continues exactly.
        self.style_images = style_image if isinstance(style_image, list) else [style_image]
        self.style_names = style_name if isinstance(style_name, list) else [style_name]
        multi = len(self.style_images) > 1
        self.style_name = "multistyle" if multi else self.style_names[0]
        self.style_image = self.style_images[0]
        self._setup(opts, PhotoFolder(data_dir, opts.image_size), out_dir, test_image, progress)
        if multi and opts.norm != "instance":
            raise StyleforgeError("several styles in one network need --norm instance (conditional instance norm)")
        self.base = load_extended_base(opts.extend) if opts.extend else None
        self.first_new_style = self.base.styles if self.base else 0
        if self.base is not None:
            self.style_name = "multistyle"
            self.net = extended_network(self.base.net, len(self.style_images)).to(self.device)
        else:
            self.net = TransformNet(opts.norm, opts.upsample, styles=len(self.style_images)).to(self.device)
        self.run_name = self.style_name
        use_power_difference(self.net, opts.power_difference)
        self.vgg = vgg if vgg is not None else load_vgg19(opts.weights, device=self.device)
        if not isinstance(self.vgg, VGG19):
            raise StyleforgeError("vgg must be a styleforge VGG19 (see sf.load_vgg19)")
        self.vgg = self.vgg.to(self.device, memory_format=vgg_memory_format(self.device, self.precision)).eval().requires_grad_(False)
        self.alpha, self.beta, self.gamma = opts.loss_weights(self.vgg.convention.name, self.vgg.convention.input_scale)
        self.layer_weights = normalized_layer_weights(opts.style_layers, None)
        # Indexed by the network's style index; an extended model's existing styles have none.
        self.style_targets = [{}] * self.first_new_style + [self._style_targets(image) for image in self.style_images]
        self.identity = {"style": ",".join(image_checksum(image) for image in self.style_images),
                         "vgg": vgg_checksum(self.vgg, self._loss_layers())}
        self.optimizer = torch.optim.Adam([p for p in self.net.parameters() if p.requires_grad], lr=opts.lr)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self._finish_setup()

    def _describe(self) -> str:
        if self.net.styles == 1:
            return ""
        kept = f", {self.first_new_style} kept from {self.opts.extend}" if self.base else ""
        return f"; {len(self.style_images)} style(s) in turn{kept}"

    def _describe_losses(self) -> str:
        return (f"weights {self.alpha:g}/{self.beta:g}/{self.gamma:g} (content/style/tv), "
                f"VGG convention {self.vgg.convention.name}")

    def checkpoint_extras(self) -> dict:
        return {"style_name": self.style_name, "style_names": self.style_names, "convention": self.net.convention()}

    # -- setup

    def _loss_layers(self) -> list[str]:
        return [self.opts.content_layer, *self.opts.style_layers]

    @torch.no_grad()
    def _style_targets(self, style_image: Image.Image) -> dict[str, torch.Tensor]:
        side = self.opts.style_size or self.opts.image_size
        style = resize_long_side(style_image, side)
        check_min_side(*style.size, min_input_side(self.opts.style_layers), f"the style image scaled to a long side of {side}")
        pixels = torch.from_numpy(image_to_array(style)).to(self.device)
        feats = self.vgg.extract(self.vgg.normalize(pixels), self.opts.style_layers)
        return {layer: style_target(f)[0] for layer, f in feats.items()}

    # -- one step

    def current_style(self) -> int:
        """The style the next step trains: round-robin over the new styles by step number."""
        return self.first_new_style + self.state.step % len(self.style_images)

    def losses(self, photos: torch.Tensor, style: int | None = None) -> dict[str, torch.Tensor]:
        """Weighted loss terms for a uint8 batch in style ``style`` (default
        :meth:`current_style`); ``total`` is their sum."""
        opts = self.opts
        style = self.current_style() if style is None else style
        if self.net.styles > 1:
            self.net.select_styles(style)
        style_targets = self.style_targets[style]
        x = photos.to(self.device, non_blocking=True).float()
        with autocast(self.device, self.precision):
            y = self.model(x)
            layers = [opts.content_layer, *opts.style_layers]
            feats_y = self.vgg.extract(self.vgg.normalize(y / 255.0), layers)
            with torch.no_grad():
                target = self.vgg.extract(self.vgg.normalize(x / 255.0), [opts.content_layer])[opts.content_layer]
        pd = opts.power_difference
        lc = content_loss(feats_y[opts.content_layer].float(), target.float(), "mse", pd)
        ls = sum(w * style_loss(feats_y[l], style_targets[l], "mse", pd) for l, w in self.layer_weights.items())
        tv = total_variation(y.float() / 255.0, "l2", pd)
        terms = {"content": self.alpha * lc, "style": self.beta * ls, "tv": self.gamma * tv}
        return {"total": terms["content"] + terms["style"] + terms["tv"], **terms}

    @torch.no_grad()
    def preview(self, image: Image.Image) -> Image.Image:
        """Stylise ``image`` with the current network (eval mode, then back to training)."""
        self.net.eval()
        if self.net.styles > 1:
            self.net.select_styles(0)
        try:
            x = torch.from_numpy(image_to_array(image) * 255.0).to(self.device)
            y = self.net(x)[0].clamp(0, 255).round().byte().permute(1, 2, 0).cpu().numpy()
        finally:
            self.net.train()
        return Image.fromarray(y, mode="RGB")

    def save_model(self, path: Path | None = None) -> Path:
        """Write the network as a style model (safetensors + JSON metadata) at ``path``
        (default: :meth:`final_model_path`); returns the safetensors path."""
        from styleforge.models.files import save_style_model

        path = path or self.final_model_path()
        if self.dist.is_main:
            save_style_model(self.net, path, self.model_metadata(), self.style_image)
        return path

    def model_metadata(self) -> dict:
        """What a model written now records: style, options, steps, losses, convention, date."""
        from styleforge.models.files import thumbnail_png_base64

        last = self.state.history[-1] if self.state.history else {}
        styles = [{"name": Path(name).stem, "style_image": name, "thumbnail_png_base64": thumbnail_png_base64(image)}
                  for name, image in zip(self.style_names, self.style_images, strict=True)] if self.net.styles > 1 else None
        if self.base is not None:
            styles = self.base.styles_metadata + (styles or [])
        return {
            **({"styles": styles} if styles else {}),
            "style_image": self.style_name,
            "options": asdict(self.opts),
            "steps": self.state.step,
            "epochs_completed": self.state.epoch,
            "unreadable_images_skipped": self.state.skipped,
            "final_losses": {k: last[k] for k in ("total", "content", "style", "tv") if k in last},
            "vgg_convention": self.vgg.convention.name,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }


@dataclass
class ExtendedBase:
    """A trained model that ``train --extend`` adds styles to."""

    net: TransformNet
    styles: int
    styles_metadata: list[dict]


def load_extended_base(path: str) -> ExtendedBase:
    """Read the model to extend; its styles' names and thumbnails come from its metadata.

    Raises:
        StyleforgeError: unreadable, not instance norm, or not a styleforge-trained layout.
    """
    from styleforge.models.loading import TRANSFORM_NET, inspect_model, load_network
    from styleforge.models.store import resolve_model_file

    file = resolve_model_file(path)
    info = inspect_model(file)
    if info.runtime != "pytorch" or info.kind != TRANSFORM_NET or info.header.get("norm", "instance") != "instance":
        raise StyleforgeError(f"--extend needs an instance-norm .safetensors model; '{path}' is not one")
    net, metadata = load_network(info)
    assert isinstance(net, TransformNet)
    if isinstance(metadata.get("styles"), list) and len(metadata["styles"]) == net.styles:
        entries = [dict(entry) for entry in metadata["styles"]]
    else:
        names = info.style_names if net.styles > 1 else [Path(str(metadata.get("style_image") or Path(path).stem)).stem]
        entries = [{"name": name} for name in names]
        if net.styles == 1 and metadata.get("style_thumbnail_png_base64"):
            entries[0]["thumbnail_png_base64"] = metadata["style_thumbnail_png_base64"]
    return ExtendedBase(net, net.styles, entries)


def extended_network(base: TransformNet, new_styles: int) -> TransformNet:
    """``base`` with ``new_styles`` more conditional-instance-norm rows (initialised to the
    mean of its rows). Only the new rows train: every other parameter is frozen, and the
    old rows' gradients are zeroed, so Adam never moves them (bit-exact)."""
    old = base.styles
    net = TransformNet.from_convention({**base.convention(), "styles": str(old + new_styles)})
    state = {}
    for key, value in base.state_dict().items():
        target = net.state_dict()[key]
        if target.shape == value.shape:
            state[key] = value
        else:
            rows = value.reshape(old, -1)
            state[key] = torch.cat([rows, rows.mean(0, keepdim=True).expand(new_styles, -1)])
    net.load_state_dict(state)
    for module in net.modules():
        for name, param in module.named_parameters(recurse=False):
            if isinstance(module, InstanceNorm):
                param.register_hook(lambda grad, old=old: torch.cat([torch.zeros_like(grad[:old]), grad[old:]]))
            else:
                param.requires_grad_(False)
    return net


def train(
    style_image: Image.Image | str | os.PathLike[str] | list,
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    vgg: object | None = None,
    resume: bool = False,
    test_image: Image.Image | str | os.PathLike[str] | None = None,
    progress: bool = True,
    **options: object,
) -> Path:
    """Train a feed-forward style network (SPEC section 7: ``sf.train``).

    Args:
        style_image: the style (PIL image or path), or a list of them: several styles
            train one conditional-instance-norm network (``TransformNet(styles=K)``).
        data_dir: folder of training photos (searched recursively).
        out_dir: where checkpoints, logs, previews and the model go.
        vgg: a loaded VGG19 (default: load ``options['weights']``).
        resume: continue from ``out_dir/checkpoint.pt``.
        test_image: stylised into ``out_dir`` at every checkpoint.
        progress: print progress lines on stderr.
        **options: fields of :class:`~styleforge.config.TrainOptions`.

    Returns:
        The path of the trained model's safetensors file.
    """
    opts = validate_train_options(options_from_kwargs(TrainOptions, options, "train"))
    check_output_dir(out_dir, "output folder")
    sources = style_image if isinstance(style_image, (list, tuple)) else [style_image]
    styles = [(s if isinstance(s, Image.Image) else read_image(s)).convert("RGB") for s in sources]
    names = [f"style{i}" if isinstance(s, Image.Image) else Path(s).name for i, s in enumerate(sources)]
    if len(set(names)) != len(names):
        raise StyleforgeError(f"two styles have the same file name ({', '.join(names)}): rename one, the model names its styles by them")
    test = None if test_image is None else (test_image if isinstance(test_image, Image.Image) else read_image(test_image))
    with folder_removed_on_failure(out_dir):  # a run that fails before its first checkpoint leaves no empty folder
        if len(styles) == 1:
            trainer = Trainer(styles[0], "style" if isinstance(sources[0], Image.Image) else names[0], data_dir, out_dir, opts,
                              vgg=vgg, test_image=test, progress=progress)
        else:
            trainer = Trainer(styles, names, data_dir, out_dir, opts, vgg=vgg, test_image=test, progress=progress)
        return trainer.run(resume=resume)


