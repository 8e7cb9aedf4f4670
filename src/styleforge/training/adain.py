r"""Training the AdaIN decoder (Huang & Belongie 2017, section 6).

Each step pairs a batch of content photos :math:`c` with a batch of style images
:math:`s`; with :math:`f` the frozen encoder (VGG19 to relu4_1, in its weights' pixel
convention) and :math:`g` the decoder,

.. math:: t = \mathrm{AdaIN}(f(c), f(s)), \qquad
          L = w_c \lVert f(g(t)) - t \rVert^2 + w_s \sum_{i} \lVert \mu(\phi_i(g(t))) - \mu(\phi_i(s)) \rVert^2
              + \lVert \sigma(\phi_i(g(t))) - \sigma(\phi_i(s)) \rVert^2

with :math:`\phi_i` relu1_1, relu2_1, relu3_1, relu4_1 and every norm a mean squared error
(as in the authors' released training script). The content loss targets :math:`t`, not
:math:`f(c)`: the decoder learns to invert AdaIN's output. Only the decoder is optimised
(Adam, ``lr / (1 + lr_decay * step)``). The photo order is the feed-forward trainer's
(a seeded permutation per epoch); the style folder is cycled in its own seeded
permutation per epoch, so a resumed run continues exactly
(:class:`~styleforge.training.loop.TrainingLoop`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset, Sampler

from styleforge.config import AdaINTrainOptions, options_from_kwargs
from styleforge.devices import autocast, vgg_memory_format
from styleforge.errors import StyleforgeError
from styleforge.images.io import image_to_array, read_image
from styleforge.nets.adain import ENCODER_LAYERS, AdaINNet, adain, channel_statistics
from styleforge.training.loop import EpochSampler, PhotoFolder, TrainingLoop, vgg_checksum
from styleforge.training.plan import validate_adain_options
from styleforge.utils.fs import check_output_dir, folder_removed_on_failure


class StyledPhotos(Dataset):
    """Content photos paired with style images: item ``(i, j)`` is (photo i, style j), each
    a size x size uint8 CHW tensor, or ``None`` when either file is unreadable."""

    def __init__(self, photos: PhotoFolder, styles: PhotoFolder) -> None:
        self.photos, self.styles = photos, styles
        self.root = photos.root

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, pair: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor] | None:
        photo, style = self.photos[pair[0]], self.styles[pair[1]]
        return None if photo is None or style is None else (photo, style)


class PairSampler(Sampler[tuple[int, int]]):
    """The photo order of an :class:`EpochSampler`, each photo paired with the next style
    of a seeded per-epoch permutation of the style folder (cycled; ranks start at their
    own shard's offset, so they see different styles)."""

    def __init__(self, photos: EpochSampler, styles: int) -> None:
        self.photos, self.styles = photos, styles

    def __iter__(self) -> Iterator[tuple[int, int]]:
        p = self.photos
        generator = torch.Generator().manual_seed(p.seed + p.epoch + 1_000_003)  # not the photo permutation's seed
        order = torch.randperm(self.styles, generator=generator).tolist()
        offset = p.rank * (p.length // p.world)
        photos = p.order()
        for k in range(p.start, len(photos)):
            yield photos[k], order[(offset + k) % self.styles]

    def __len__(self) -> int:
        return len(self.photos)


class AdaINTrainer(TrainingLoop):
    """Owns the AdaIN network, optimiser, losses and files of one decoder training run."""

    loss_terms = ("total", "content", "style")
    resume_keys = ("batch_size", "image_size", "seed")
    run_name = "adain"

    def __init__(self, style_dir: str | os.PathLike[str], data_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                 opts: AdaINTrainOptions, vgg: object | None = None, test_image: Image.Image | None = None,
                 progress: bool = True) -> None:
        from styleforge.vgg.network import VGG19, load_vgg19

        styles = PhotoFolder(style_dir, opts.image_size)
        self._setup(opts, StyledPhotos(PhotoFolder(data_dir, opts.image_size), styles), out_dir, test_image, progress)
        vgg = vgg if vgg is not None else load_vgg19(opts.weights, device=self.device)
        if not isinstance(vgg, VGG19):
            raise StyleforgeError("vgg must be a styleforge VGG19 (see sf.load_vgg19)")
        # The encoder runs in every loss (three passes a step), so it takes the layout
        # the precision's kernels want (channels_last in bf16 on the CPU), as Johnson's VGG19 does.
        self.net = AdaINNet(vgg.to(self.device)).to(self.device)
        self.net.encoder.to(memory_format=vgg_memory_format(self.device, self.precision))
        self.net.decoder.train()
        self.identity = {"styles": folder_checksum(styles), "vgg": vgg_checksum(self.net.encoder, list(ENCODER_LAYERS))}
        self.optimizer = torch.optim.Adam(self.net.decoder.parameters(), lr=opts.lr)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self._finish_setup(self.net.decoder)

    def _describe(self) -> str:
        return f"; {len(self.dataset.styles)} style images"

    def _describe_losses(self) -> str:
        return (f"weights {self.opts.content_weight:g}/{self.opts.style_weight:g} (content/style), "
                f"VGG convention {self.net.encoder.convention.name}")

    def _data_folders(self) -> list[Path]:
        return [self.dataset.photos.root, self.dataset.styles.root]

    def _sampler(self, start: int) -> Sampler:
        return PairSampler(super()._sampler(start), len(self.dataset.styles))  # type: ignore[arg-type]

    def checkpoint_extras(self) -> dict:
        from styleforge.models.formats.adain import adain_header

        return {"kind": "adain", "header": adain_header(self.net)}

    def learning_rate(self) -> float:
        """The step's learning rate: ``lr / (1 + lr_decay * step)``."""
        return self.opts.lr / (1.0 + self.opts.lr_decay * self.state.step)

    def step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()
        return super().step(batch)

    def losses(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Weighted content and style terms (module docstring) of a (photos, styles) uint8 batch."""
        photos, styles = (part.to(self.device, non_blocking=True).float() for part in batch)
        with autocast(self.device, self.precision):
            with torch.no_grad():
                style_features = self.net.encode(styles, ENCODER_LAYERS)
                target = adain(self.net.encode(photos)["relu4_1"], style_features["relu4_1"])
            output = self.model(target) * 255.0
            features = self.net.encode(output, ENCODER_LAYERS)
        content = F.mse_loss(features["relu4_1"].float(), target.float())
        style = sum(statistics_loss(features[layer], style_features[layer]) for layer in ENCODER_LAYERS)
        terms = {"content": self.opts.content_weight * content, "style": self.opts.style_weight * style}
        return {"total": terms["content"] + terms["style"], **terms}

    @torch.no_grad()
    def preview(self, image: Image.Image) -> Image.Image:
        """``image`` in the style folder's first readable image, with the current decoder."""
        style = next(s for s in (self.dataset.styles[i] for i in range(len(self.dataset.styles))) if s is not None)
        self.net.decoder.eval()
        try:
            x = torch.from_numpy(image_to_array(image) * 255.0).to(self.device)
            y = self.net(x, [style[None].float().to(self.device)])[0].round().byte().permute(1, 2, 0).cpu().numpy()
        finally:
            self.net.decoder.train()
        return Image.fromarray(y, mode="RGB")

    def save_model(self, path: Path | None = None) -> Path:
        """Write ``OUT/adain.safetensors`` (+ JSON) or ``path``; returns the safetensors path."""
        from styleforge.models.files import save_style_model

        path = path or self.final_model_path()
        if self.dist.is_main:
            save_style_model(self.net, path, self.model_metadata())
        return path

    def model_metadata(self) -> dict:
        """What a model written now records: options, steps, losses, the style folder's size, date."""
        last = self.state.history[-1] if self.state.history else {}
        return {
            "kind": "adain",
            "options": asdict(self.opts),
            "steps": self.state.step,
            "epochs_completed": self.state.epoch,
            "style_images_trained_on": len(self.dataset.styles),
            "unreadable_images_skipped": self.state.skipped,
            "final_losses": {k: last[k] for k in self.loss_terms if k in last},
            "vgg_convention": self.net.encoder.convention.name,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }


def statistics_loss(features: torch.Tensor, style_features: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the channel means plus that of the channel deviations (fp32)."""
    (mean, std), (s_mean, s_std) = channel_statistics(features.float()), channel_statistics(style_features.float())
    return F.mse_loss(mean, s_mean) + F.mse_loss(std, s_std)


def folder_checksum(folder: PhotoFolder) -> str:
    """SHA-256 of a folder's image list (relative paths and sizes): a resumed run must see the same styles."""
    digest = hashlib.sha256()
    for file in folder.files:
        digest.update(f"{file.relative_to(folder.root)}:{file.stat().st_size}\n".encode())
    return digest.hexdigest()


def train_adain(
    style_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    vgg: object | None = None,
    resume: bool = False,
    test_image: Image.Image | str | os.PathLike[str] | None = None,
    progress: bool = True,
    **options: object,
) -> Path:
    """Train an AdaIN decoder (SPEC section 7: ``sf.train_adain``).

    Args:
        style_dir: folder of style images (paintings; searched recursively).
        data_dir: folder of content photos.
        out_dir: where checkpoints, logs, previews and ``adain.safetensors`` go.
        vgg: a loaded VGG19 (default: load ``options['weights']``); its layers to relu4_1
            become the model's encoder.
        resume: continue from ``out_dir/checkpoint.pt``.
        test_image: stylised (in the style folder's first image) at every checkpoint.
        progress: print progress lines on stderr.
        **options: fields of :class:`~styleforge.config.AdaINTrainOptions`.

    Returns:
        The path of the model's safetensors file.
    """
    opts = validate_adain_options(options_from_kwargs(AdaINTrainOptions, options, "train_adain"))
    check_output_dir(out_dir, "output folder")
    test = None if test_image is None else (test_image if isinstance(test_image, Image.Image) else read_image(test_image))
    with folder_removed_on_failure(out_dir):  # a run that fails before its first checkpoint leaves no empty folder
        return AdaINTrainer(style_dir, data_dir, out_dir, opts, vgg=vgg, test_image=test, progress=progress).run(resume=resume)
