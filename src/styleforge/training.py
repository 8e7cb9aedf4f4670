r"""Training the feed-forward style network (Johnson et al. 2016) with VGG19 perceptual losses.

For a batch of photos :math:`x` and the network output :math:`y = f(x)` (both 0-255):

.. math:: L = \alpha\, L_c(\phi_{c}(y), \phi_{c}(x)) + \beta \sum_{l} w_l L_s(\phi_l(y), A_l) + \gamma\, TV(y / 255)

with :math:`\phi` the frozen VGG19 (in the weights' convention), content loss ``mse`` on
``relu4_2``, style loss ``mse`` on C*H*W-normalised Gram matrices averaged over
``relu1_1..relu5_1``, and the style targets :math:`A_l` computed once. Only the
transform network is optimised (Adam).

Reproducibility and resuming: the data order of epoch ``e`` is a permutation seeded by
``seed + e`` (and sharded by rank under torchrun); a checkpoint stores the network, the
optimiser, the step, the epoch and the position inside it, every RNG state, the options
and the loss history, so ``resume=True`` continues exactly (the same losses and weights
as an uninterrupted run). Checkpoints, logs and models are written atomically.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from styleforge.architecture import CONV_NAMES, LAYER_INDEX, check_feature_layers, min_input_side
from styleforge.checkpoint import CHECKPOINT_NAME, read_checkpoint, write_checkpoint
from styleforge.config import PRECISION_CHOICES, TrainOptions, TransferOptions, is_finite, options_from_kwargs
from styleforge.devices import autocast, describe_device, resolve_device, resolve_precision
from styleforge.errors import StyleforgeError
from styleforge.fsutil import check_output_dir
from styleforge.images import find_images, image_to_array, read_image, resize_long_side, write_image
from styleforge.interrupts import Terminated, deferred_interrupt
from styleforge.limits import check_min_side, check_pixel_budget
from styleforge.loss_scales import normalized_layer_weights
from styleforge.losses import content_loss, style_loss, style_target, total_variation
from styleforge.preprocessing import center_crop_square
from styleforge.runlog import LossHistory, load_plotting
from styleforge.transform_net import InstanceNorm, TransformNet, use_power_difference

HISTORY_COLUMNS = ("step", "epoch", "total", "content", "style", "tv", "skipped", "seconds")


# ----------------------------------------------------------------------------- data


class PhotoFolder(Dataset):
    """Every image under a folder (recursively), as size x size uint8 CHW tensors.

    Unreadable files give ``None`` (skipped and counted by :func:`collate_photos`), so a
    corrupt file in a large collection never stops training.
    """

    def __init__(self, root: str | os.PathLike[str], size: int) -> None:
        folder = Path(root)
        if not folder.is_dir():
            raise StyleforgeError(f"data folder '{folder}' does not exist or is not a folder")
        self.root = folder
        self.files = find_images(folder)
        if not self.files:
            raise StyleforgeError(f"data folder '{folder}' holds no .jpg/.jpeg/.png/.webp/.bmp images")
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor | None:
        try:
            img = center_crop_square(read_image(self.files[index]), self.size)
        except StyleforgeError:
            return None
        return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def collate_photos(batch: list[torch.Tensor | None]) -> tuple[torch.Tensor | None, int]:
    """Stack the readable images of a batch; returns (tensor or None, number skipped)."""
    good = [b for b in batch if b is not None]
    return (torch.stack(good) if good else None), len(batch) - len(good)


class EpochSampler(Sampler[int]):
    """A seeded permutation per epoch, sharded across ranks, resumable mid-epoch.

    Args:
        length: dataset size.
        seed: base seed; epoch ``e`` uses ``seed + e``.
        epoch: which epoch's order to produce.
        start: skip this many of this rank's indices (resuming inside an epoch).
        rank, world: this process's shard of every permutation.
    """

    def __init__(self, length: int, seed: int, epoch: int, start: int = 0, rank: int = 0, world: int = 1) -> None:
        self.length, self.seed, self.epoch, self.start, self.rank, self.world = length, seed, epoch, start, rank, world

    def order(self) -> list[int]:
        """This rank's indices for the epoch, before skipping ``start``."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        permutation = torch.randperm(self.length, generator=generator).tolist()
        per_rank = self.length // self.world  # equal shards keep ranks in lock-step
        return permutation[self.rank * per_rank : (self.rank + 1) * per_rank]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.start :])

    def __len__(self) -> int:
        return max(0, self.length // self.world - self.start)


# ----------------------------------------------------------------------------- state


@dataclass
class TrainState:
    """Where training is: counters and history (saved in every checkpoint)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    skipped: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class Distributed:
    """torchrun's process layout (a single process when WORLD_SIZE is unset)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Distributed:
        """Read RANK / WORLD_SIZE / LOCAL_RANK as set by torchrun."""
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def rng_state() -> dict[str, object]:
    """Every RNG state, in types ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, object] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- trainer


class Trainer:
    """Owns the networks, optimiser, losses and files of one training run."""

    def __init__(self, style_image: Image.Image | list[Image.Image], style_name: str | list[str], data_dir: str | os.PathLike[str],
                 out_dir: str | os.PathLike[str], opts: TrainOptions, vgg: object | None = None,
                 test_image: Image.Image | None = None, progress: bool = True) -> None:
        from styleforge.vgg import VGG19, load_vgg19

        # Several styles train one conditional-instance-norm network (Dumoulin et al. 2017):
        # each step uses one style, round-robin by step number, so a resumed run continues exactly.
        self.style_images = style_image if isinstance(style_image, list) else [style_image]
        self.style_names = style_name if isinstance(style_name, list) else [style_name]
        multi = len(self.style_images) > 1
        self.opts, self.test_image, self.progress = opts, test_image, progress
        self.style_name = "multistyle" if multi else self.style_names[0]
        self.style_image = self.style_images[0]
        self.out_dir = Path(out_dir)
        self.dist = Distributed.from_env()
        self.device = self._device()
        self.precision = resolve_precision(opts.precision, self.device, training=True)
        self.dataset = PhotoFolder(data_dir, opts.image_size)
        torch.manual_seed(opts.seed)
        np.random.seed(opts.seed)
        random.seed(opts.seed)
        if multi and opts.norm != "instance":
            raise StyleforgeError("several styles in one network need --norm instance (conditional instance norm)")
        self.base = load_extended_base(opts.extend) if opts.extend else None
        self.first_new_style = self.base.styles if self.base else 0
        if self.base is not None:
            self.style_name = "multistyle"
            self.net = extended_network(self.base.net, len(self.style_images)).to(self.device)
        else:
            self.net = TransformNet(opts.norm, opts.upsample, styles=len(self.style_images)).to(self.device)
        use_power_difference(self.net, opts.power_difference)
        self.vgg = vgg if vgg is not None else load_vgg19(opts.weights, device=self.device)
        if not isinstance(self.vgg, VGG19):
            raise StyleforgeError("vgg must be a styleforge VGG19 (see sf.load_vgg19)")
        self.vgg = self.vgg.to(self.device).eval().requires_grad_(False)
        self.alpha, self.beta, self.gamma = opts.loss_weights(self.vgg.convention.name, self.vgg.convention.input_scale)
        self.layer_weights = normalized_layer_weights(opts.style_layers, None)
        # Indexed by the network's style index; an extended model's existing styles have none.
        self.style_targets = [{}] * self.first_new_style + [self._style_targets(image) for image in self.style_images]
        self.identity = {"style": ",".join(image_checksum(image) for image in self.style_images),
                         "vgg": vgg_checksum(self.vgg, self._loss_layers())}
        load_plotting()  # now, not at the first checkpoint where a Ctrl-C could land in the import
        self.optimizer = torch.optim.Adam([p for p in self.net.parameters() if p.requires_grad], lr=opts.lr)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.model = self._wrap_distributed()
        self.state = TrainState()

    # -- setup

    def _device(self) -> torch.device:
        device = resolve_device(self.opts.device)
        if self.dist.world > 1:
            import torch.distributed as td

            backend = "nccl" if device.type == "cuda" else "gloo"
            if not td.is_initialized():
                td.init_process_group(backend=backend)
            if device.type == "cuda":
                device = torch.device("cuda", self.dist.local_rank)
                torch.cuda.set_device(device)
        return device

    def _wrap_distributed(self) -> torch.nn.Module:
        if self.dist.world == 1:
            return self.net
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(self.net, device_ids=ids)

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

    def step(self, photos: torch.Tensor) -> dict[str, float]:
        """One optimisation step; returns the loss terms as floats."""
        self.optimizer.zero_grad(set_to_none=True)
        terms = self.losses(photos)
        self.scaler.scale(terms["total"]).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {k: float(v.detach()) for k, v in terms.items()}

    # -- loop

    def run(self, resume: bool = False) -> Path:
        """Train until the epochs or ``max_steps`` are done; returns the final model path."""
        opts = self.opts
        if resume:
            self.load_checkpoint()
        batches_per_epoch = len(self.dataset) // self.dist.world // opts.batch_size
        if batches_per_epoch == 0:
            raise StyleforgeError(
                f"the data folder has {len(self.dataset)} image file(s), fewer than one batch of {opts.batch_size} "
                f"per process: add images or lower --batch-size"
            )
        total_steps = opts.max_steps or opts.epochs * batches_per_epoch
        self._announce(total_steps)
        start, start_step = time.perf_counter(), self.state.step
        try:
            while self.state.epoch < opts.epochs and self.state.step < total_steps:
                steps_before_epoch = self.state.step
                for photos, bad in self._loader():
                    with deferred_interrupt():  # a checkpoint after Ctrl-C holds whole steps only
                        self.state.batch_in_epoch += 1
                        self.state.skipped += bad
                        if not self._every_rank_has_a_batch(photos):
                            continue
                        values = self.step(photos)
                        self.state.step += 1
                        self._record(values, time.perf_counter() - start, start_step, total_steps)
                    if opts.checkpoint_every and self.state.step % opts.checkpoint_every == 0:
                        self.save_checkpoint()
                    if self.state.step >= total_steps:
                        break
                else:
                    if self.state.step == steps_before_epoch:
                        raise StyleforgeError(
                            f"a whole epoch gave no batch of readable images ({self.state.skipped} unreadable files met in "
                            f"'{self.dataset.root}'): nothing was trained; run 'styleforge check-data {self.dataset.root}'"
                        )
                    self.state.epoch += 1
                    self.state.batch_in_epoch = 0
        except KeyboardInterrupt as stop:
            self.save_checkpoint(keep_model=False)
            model = self.save_model(self.step_model_path())
            self._say(f"{'terminated' if isinstance(stop, Terminated) else 'interrupted'} at step {self.state.step}: "
                      f"model {model}; checkpoint saved, continue with --resume")
            raise
        self.save_checkpoint(keep_model=False)
        return self.save_model()

    def _every_rank_has_a_batch(self, photos: torch.Tensor | None) -> bool:
        """False when this batch was all unreadable here or on any other rank: then every
        rank skips it, so DistributedDataParallel's collectives stay in step."""
        if self.dist.world == 1:
            return photos is not None
        import torch.distributed as td

        flag = torch.tensor([1 if photos is not None else 0], device=self.device)
        td.all_reduce(flag, op=td.ReduceOp.MIN)
        return bool(flag.item())

    def _loader(self) -> DataLoader:
        opts = self.opts
        sampler = EpochSampler(len(self.dataset), opts.seed, self.state.epoch, self.state.batch_in_epoch * opts.batch_size,
                               self.dist.rank, self.dist.world)
        return DataLoader(self.dataset, batch_size=opts.batch_size, sampler=sampler, num_workers=opts.workers,
                          collate_fn=collate_photos, drop_last=True, pin_memory=self.device.type == "cuda",
                          persistent_workers=False)

    def _record(self, values: dict[str, float], elapsed: float, start_step: int, total_steps: int) -> None:
        row = {"step": self.state.step, "epoch": self.state.epoch, "skipped": self.state.skipped, "seconds": elapsed, **values}
        self.state.history.append(row)
        if self.state.step % self.opts.log_every == 0 or self.state.step == total_steps:
            rate = (self.state.step - start_step) / max(elapsed, 1e-9)
            eta = (total_steps - self.state.step) / max(rate, 1e-9)
            self._say(f"step {self.state.step}/{total_steps} epoch {self.state.epoch + 1}: total {values['total']:.4g} "
                      f"content {values['content']:.4g} style {values['style']:.4g} tv {values['tv']:.4g} | "
                      f"{rate:.2f} steps/s, ETA {_duration(eta)}, {self.state.skipped} unreadable skipped")

    def _announce(self, total_steps: int) -> None:
        d = self.dist
        where = describe_device(self.device) + (f", {d.world} processes" if d.world > 1 else "")
        if self.net.styles > 1:
            kept = f", {self.first_new_style} kept from {self.opts.extend}" if self.base else ""
            where += f"; {len(self.style_images)} style(s) in turn{kept}"
        self._say(f"training on {where}: {len(self.dataset)} images, {total_steps} steps of batch {self.opts.batch_size}, "
                  f"{self.opts.image_size} px, {self.precision}; weights {self.alpha:g}/{self.beta:g}/{self.gamma:g} "
                  f"(content/style/tv), VGG convention {self.vgg.convention.name}")

    def _say(self, text: str) -> None:
        if self.progress and self.dist.is_main:
            print(text, file=sys.stderr, flush=True)

    # -- files

    def checkpoint_path(self) -> Path:
        """``OUT/checkpoint.pt``."""
        return self.out_dir / CHECKPOINT_NAME

    def final_model_path(self) -> Path:
        """``OUT/<style>.safetensors``, the finished model."""
        return self.out_dir / f"{Path(self.style_name).stem}.safetensors"

    def step_model_path(self) -> Path:
        """``OUT/<style>_stepNNNNNNN.safetensors``, the model as of the current step."""
        return self.out_dir / f"{Path(self.style_name).stem}_step{self.state.step:07d}.safetensors"

    def save_checkpoint(self, keep_model: bool | None = None) -> None:
        """Write checkpoint, CSV log, loss plot and preview (rank 0 only; atomic), and,
        when ``keep_model`` (default: ``options.keep_models``), a loadable step model."""
        if not self.dist.is_main:
            return
        if keep_model if keep_model is not None else self.opts.keep_models:
            self.save_model(self.step_model_path())
        payload = {
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "state": asdict(self.state),
            "rng": rng_state(),
            "options": asdict(self.opts),
            "style_name": self.style_name,
            "style_names": self.style_names,
            "convention": self.net.convention(),
            "identity": self.identity,
        }
        write_checkpoint(payload, self.checkpoint_path())
        history = self._history()
        history.write_csv(self.out_dir / "log.csv")
        if history.rows:
            history.plot(self.out_dir / "loss.png", ("total", "content", "style", "tv"), title=f"training: {self.style_name}")
        if self.test_image is not None:
            write_image(self.preview(self.test_image), self.out_dir / f"preview_step{self.state.step:07d}.jpg")

    def load_checkpoint(self) -> None:
        """Restore everything :meth:`save_checkpoint` wrote."""
        path = self.checkpoint_path()
        if not path.is_file():
            raise StyleforgeError(f"--resume: no checkpoint at '{path}'")
        payload = read_checkpoint(path, map_location=self.device)
        saved = payload["options"]
        for key in ("norm", "upsample", "batch_size", "image_size", "seed"):
            if saved[key] != getattr(self.opts, key):
                raise StyleforgeError(f"--resume: the checkpoint was made with {key}={saved[key]!r}, not {getattr(self.opts, key)!r}")
        for key, what in (("style", "style image"), ("vgg", "VGG19 weights")):
            recorded = payload.get("identity", {}).get(key)
            if recorded is not None and recorded != self.identity[key]:
                raise StyleforgeError(f"--resume: the checkpoint was trained with another {what} (its checksum differs); "
                                      f"give the run's own {what}, or start a new --out folder")
        self.net.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scaler.load_state_dict(payload["scaler"])
        self.state = TrainState(**payload["state"])
        set_rng_state(payload["rng"])

    def _history(self) -> LossHistory:
        history = LossHistory(HISTORY_COLUMNS)
        for row in self.state.history:
            history.append(**row)
        return history

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
        from styleforge.transfer import save_style_model

        path = path or self.final_model_path()
        if self.dist.is_main:
            save_style_model(self.net, path, self.model_metadata(), self.style_image)
        return path

    def model_metadata(self) -> dict:
        """What a model written now records: style, options, steps, losses, convention, date."""
        from styleforge.transfer import thumbnail_png_base64

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
    from styleforge.transfer import load_style_model, style_names

    model = load_style_model(path, options=TransferOptions(device="cpu", precision="fp32"))
    net = model.net
    if not isinstance(net, TransformNet) or net.norm != "instance":
        raise StyleforgeError(f"--extend needs an instance-norm .safetensors model; '{path}' is not one")
    metadata = model.metadata
    if isinstance(metadata.get("styles"), list) and len(metadata["styles"]) == net.styles:
        entries = [dict(entry) for entry in metadata["styles"]]
    else:
        names = style_names(metadata, net.styles) if net.styles > 1 else [Path(str(metadata.get("style_image") or Path(path).stem)).stem]
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
    if len(styles) == 1:
        trainer = Trainer(styles[0], "style" if isinstance(sources[0], Image.Image) else names[0], data_dir, out_dir, opts,
                          vgg=vgg, test_image=test, progress=progress)
    else:
        trainer = Trainer(styles, names, data_dir, out_dir, opts, vgg=vgg, test_image=test, progress=progress)
    return trainer.run(resume=resume)


def validate_train_options(opts: TrainOptions) -> TrainOptions:
    """Check option values; returns them or raises StyleforgeError."""
    from styleforge.transform_net import NORMS, UPSAMPLES

    check_feature_layers((opts.content_layer, *opts.style_layers))
    minimum = min_input_side((opts.content_layer, *opts.style_layers))
    weights = (opts.content_weight, opts.style_weight, opts.tv_weight)
    checks = [
        (opts.epochs >= 1 and opts.batch_size >= 1, "epochs and batch size must be >= 1"),
        (opts.image_size >= minimum, f"image size must be >= {minimum} for the layers used"),
        (is_finite(opts.lr) and opts.lr > 0, "lr must be a finite number > 0"),
        (all(is_finite(w) and (w is None or w >= 0) for w in weights), "content, style and tv weights must be finite numbers >= 0"),
        (opts.seed >= 0, "seed must be >= 0"),
        (opts.style_size is None or opts.style_size >= 1, "style size must be >= 1"),
        (opts.max_steps is None or opts.max_steps >= 1, "max steps must be >= 1"),
        (opts.workers >= 0 and opts.log_every >= 1 and opts.checkpoint_every >= 0, "workers >= 0, log-every >= 1, checkpoint-every >= 0"),
        (opts.norm in NORMS, f"unknown norm {opts.norm!r}"),
        (opts.upsample in UPSAMPLES, f"unknown upsample {opts.upsample!r}"),
        (opts.precision in ("auto", *PRECISION_CHOICES), f"unknown precision {opts.precision!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise StyleforgeError(message)
    check_pixel_budget(opts.image_size, opts.image_size, f"--image-size {opts.image_size}")
    if opts.style_size is not None:
        check_pixel_budget(opts.style_size, opts.style_size, f"--style-size {opts.style_size}")
    return opts


def image_checksum(image: Image.Image) -> str:
    """SHA-256 of an image's size and RGB pixels (what training sees, whatever the file format)."""
    rgb = image.convert("RGB")
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


def vgg_checksum(vgg: torch.nn.Module, layers: list[str]) -> str:
    """SHA-256 of what makes the losses: the preprocessing convention and the VGG19
    parameters used (the convolutions up to the deepest of ``layers``)."""
    deepest = max(LAYER_INDEX[name] for name in layers)
    digest = hashlib.sha256(vgg.convention.to_json().encode())
    for name in CONV_NAMES:
        if LAYER_INDEX[name] <= deepest:
            for tensor in (getattr(vgg, name).weight, getattr(vgg, name).bias):
                digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"




@dataclass
class DataReport:
    """Result of :func:`check_data`: readable count and the unreadable files with reasons."""

    good: int
    bad: list[tuple[Path, str]]


def check_data(folder: str | os.PathLike[str], workers: int | None = None) -> DataReport:
    """Try to read every image under ``folder`` (in parallel); report the unreadable ones.

    Raises:
        StyleforgeError: the folder is missing or holds no image files.
    """
    from concurrent.futures import ThreadPoolExecutor

    files = PhotoFolder(folder, 16).files
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) * 2)) as pool:
        reasons = list(pool.map(_read_problem, files))
    bad = [(f, r) for f, r in zip(files, reasons, strict=True) if r is not None]
    return DataReport(len(files) - len(bad), bad)


def _read_problem(path: Path) -> str | None:
    try:
        read_image(path)
    except StyleforgeError as exc:
        return str(exc).split(": ", 1)[-1]
    return None
