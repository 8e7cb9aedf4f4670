"""The training loop shared by every trained network (the feed-forward style network of
:mod:`styleforge.training.johnson`, the AdaIN decoder of :mod:`styleforge.training.adain`).

Reproducibility and resuming: the data order of epoch ``e`` is a permutation seeded by
``seed + e`` (and sharded by rank under torchrun); a checkpoint stores the network, the
optimiser, the step, the epoch and the position inside it, every RNG state, the options
and the loss history, so ``resume=True`` continues exactly (the same losses and weights
as an uninterrupted run). Checkpoints, logs and models are written atomically.

A subclass sets up its networks and data, then provides :meth:`TrainingLoop.losses` (the
loss terms of a batch), :meth:`TrainingLoop.save_model`, and the names of its
loss terms; the loop does epochs, logging, checkpoints, interrupts and resuming.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import random
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from styleforge.devices import describe_device, resolve_device, resolve_precision
from styleforge.errors import StyleforgeError
from styleforge.images.io import read_image, write_image
from styleforge.models.checkpoint import read_checkpoint, write_checkpoint
from styleforge.training.plan import CHECKPOINT_NAME, photo_files, resume_checkpoint
from styleforge.utils.interrupts import Terminated, deferred_interrupt, quiet_worker_stops
from styleforge.utils.runlog import LossHistory, load_plotting
from styleforge.vgg.architecture import CONV_NAMES, LAYER_INDEX
from styleforge.vgg.preprocessing import center_crop_square

# ----------------------------------------------------------------------------- data


class PhotoFolder(Dataset):
    """Every image under a folder (recursively), as size x size uint8 CHW tensors.

    Unreadable files give ``None`` (skipped and counted by :func:`collate_photos`), so a
    corrupt file in a large collection never stops training.
    """

    def __init__(self, root: str | os.PathLike[str], size: int) -> None:
        self.root = Path(root)
        self.files = photo_files(root)
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor | None:
        try:
            img = center_crop_square(read_image(self.files[index]), self.size)
        except StyleforgeError:
            return None
        return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def collate_photos(batch: list[Any]) -> tuple[Any, int]:
    """Stack the readable items of a batch; returns (stacked or None, number skipped).
    Items are tensors, or tuples of tensors (stacked field by field)."""
    good = [b for b in batch if b is not None]
    if not good:
        return None, len(batch)
    stacked = tuple(torch.stack(parts) for parts in zip(*good, strict=True)) if isinstance(good[0], tuple) else torch.stack(good)
    return stacked, len(batch) - len(good)


class EpochSampler(Sampler[int]):
    """A seeded permutation per epoch, sharded across ranks, resumable mid-epoch.

    Args:
        length: dataset size.
        seed: base seed; epoch ``e`` uses ``seed + e``.
        epoch: which epoch's order to produce.
        start: skip this many of this rank's indices (resuming inside an epoch).
        rank: this process's shard of every permutation.
        world: this process's shard of every permutation.
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


# ----------------------------------------------------------------------------- the loop


class TrainingLoop(ABC):
    """Epochs, logging, checkpoints and exact resuming around a subclass's :meth:`losses`.

    A subclass's ``__init__`` calls :meth:`_setup` first, then builds ``net`` (what is
    saved), ``optimizer``, ``scaler`` and ``identity`` (checksums a resumed run must
    match), and ends with :meth:`_finish_setup`.
    """

    #: The loss terms :meth:`losses` returns, in log order (``total`` first).
    loss_terms: tuple[str, ...] = ("total",)
    #: Options a resumed run must share with its checkpoint.
    resume_keys: tuple[str, ...] = ("batch_size", "image_size", "seed")
    #: Names the files of the run (``OUT/<run_name>.safetensors``) and titles its loss plot.
    run_name: str = "model"

    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    identity: dict[str, str]

    def _setup(self, opts: Any, dataset: Dataset, out_dir: str | os.PathLike[str], test_image: Image.Image | None,
               progress: bool) -> None:
        """The parts every run has: options, process layout, device, precision, data, seeds."""
        self.opts, self.test_image, self.progress = opts, test_image, progress
        self.out_dir = Path(out_dir)
        self.dist = Distributed.from_env()
        self.device = self._device()
        self.precision = resolve_precision(opts.precision, self.device, training=True)
        self.dataset = dataset
        torch.manual_seed(opts.seed)
        np.random.seed(opts.seed)
        random.seed(opts.seed)

    def _finish_setup(self, trainable: torch.nn.Module | None = None) -> None:
        """Wrap ``trainable`` (default ``net``: the module whose call the losses
        differentiate) for DistributedDataParallel under torchrun, as ``model``."""
        load_plotting()  # now, not at the first checkpoint where a Ctrl-C could land in the import
        self.model = self._wrap_distributed(trainable or self.net)
        self.state = TrainState()

    @property
    def history_columns(self) -> tuple[str, ...]:
        """Columns of ``log.csv``."""
        return ("step", "epoch", *self.loss_terms, "skipped", "seconds")

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

    def _wrap_distributed(self, module: torch.nn.Module) -> torch.nn.Module:
        if self.dist.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    # -- what a subclass provides

    @abstractmethod
    def losses(self, batch: Any) -> dict[str, torch.Tensor]:
        """The weighted loss terms (:attr:`loss_terms`) of a collated batch; ``total`` is their sum."""

    @abstractmethod
    def save_model(self, path: Path | None = None) -> Path:
        """Write the trained model (default :meth:`final_model_path`); returns its path."""

    def checkpoint_extras(self) -> dict[str, Any]:
        """What a subclass adds to every checkpoint (names, conventions)."""
        return {}

    @abstractmethod
    def preview(self, image: Image.Image) -> Image.Image:
        """``image`` through the current network (written at every checkpoint with a test image)."""

    def _describe(self) -> str:
        """What the first progress line says about the run after the device."""
        return ""

    def _data_folders(self) -> list[Path]:
        """The folders the data comes from (named when none of it is readable)."""
        return [self.dataset.root]

    def _sampler(self, start: int) -> Sampler:
        """This epoch's data order from position ``start`` (per rank)."""
        return EpochSampler(len(self.dataset), self.opts.seed, self.state.epoch, start, self.dist.rank, self.dist.world)

    def step(self, batch: Any) -> dict[str, float]:
        """One optimisation step on a collated batch; returns the loss terms as floats."""
        self.optimizer.zero_grad(set_to_none=True)
        terms = self.losses(batch)
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
        total_steps = min(opts.max_steps or math.inf, opts.epochs * batches_per_epoch)  # the epochs may end first
        self._announce(total_steps)
        start, start_step = time.perf_counter(), self.state.step
        try:
            while self.state.epoch < opts.epochs and self.state.step < total_steps:
                steps_before_epoch = self.state.step
                # a resumed run may start at the end of an epoch it used up but never counted
                whole_epoch = self.state.batch_in_epoch == 0
                for batch, bad in self._loader():
                    with deferred_interrupt():  # a checkpoint after Ctrl-C holds whole steps only
                        self.state.batch_in_epoch += 1
                        self.state.skipped += bad
                        if not self._every_rank_has_a_batch(batch):
                            continue
                        values = self.step(batch)
                        self.state.step += 1
                        self._record(values, time.perf_counter() - start, start_step, total_steps)
                    if opts.checkpoint_every and self.state.step % opts.checkpoint_every == 0:
                        self.save_checkpoint()
                    if self.state.step >= total_steps:
                        break
                else:
                    if whole_epoch and self.state.step == steps_before_epoch:
                        folders = self._data_folders()
                        raise StyleforgeError(
                            f"a whole epoch gave no batch of readable images ({self.state.skipped} unreadable files met in "
                            f"{' or '.join(repr(str(f)) for f in folders)}): nothing was trained; run "
                            f"{' and '.join(f'styleforge check-data {f}' for f in folders)}"
                        )
                    self.state.epoch += 1
                    self.state.batch_in_epoch = 0
        except KeyboardInterrupt as stop:
            # A second Ctrl-C (or a stop that reaches the whole process group twice) while
            # the stop is being saved must not cost the checkpoint and model it asked for.
            with contextlib.suppress(KeyboardInterrupt), deferred_interrupt():
                self.save_checkpoint(keep_model=False)
                model = self.save_model(self.step_model_path())
                self._say(f"{'terminated' if isinstance(stop, Terminated) else 'interrupted'} at step {self.state.step}: "
                          f"model {model}; checkpoint saved, continue with --resume")
            raise
        self.save_checkpoint(keep_model=False)
        return self.save_model()

    def _every_rank_has_a_batch(self, batch: Any) -> bool:
        """False when this batch was all unreadable here or on any other rank: then every
        rank skips it, so DistributedDataParallel's collectives stay in step."""
        if self.dist.world == 1:
            return batch is not None
        import torch.distributed as td

        flag = torch.tensor([1 if batch is not None else 0], device=self.device)
        td.all_reduce(flag, op=td.ReduceOp.MIN)
        return bool(flag.item())

    def _loader(self) -> DataLoader:
        opts = self.opts
        return DataLoader(self.dataset, batch_size=opts.batch_size, sampler=self._sampler(self.state.batch_in_epoch * opts.batch_size),
                          num_workers=opts.workers, collate_fn=collate_photos, drop_last=True,
                          pin_memory=self.device.type == "cuda", persistent_workers=False,
                          worker_init_fn=quiet_worker_stops if opts.workers else None)

    def _record(self, values: dict[str, float], elapsed: float, start_step: int, total_steps: int) -> None:
        row = {"step": self.state.step, "epoch": self.state.epoch, "skipped": self.state.skipped, "seconds": elapsed, **values}
        self.state.history.append(row)
        if self.state.step % self.opts.log_every == 0 or self.state.step == total_steps:
            rate = (self.state.step - start_step) / max(elapsed, 1e-9)
            eta = (total_steps - self.state.step) / max(rate, 1e-9)
            terms = " ".join(f"{name} {values[name]:.4g}" for name in self.loss_terms)
            self._say(f"step {self.state.step}/{total_steps} epoch {self.state.epoch + 1}: {terms} | "
                      f"{rate:.2f} steps/s, ETA {_duration(eta)}, {self.state.skipped} unreadable skipped")

    def _announce(self, total_steps: int) -> None:
        d = self.dist
        where = describe_device(self.device) + (f", {d.world} processes" if d.world > 1 else "")
        self._say(f"training on {where}{self._describe()}: {len(self.dataset)} images, {total_steps} steps of batch "
                  f"{self.opts.batch_size}, {self.opts.image_size} px, {self.precision}; {self._describe_losses()}")

    def _describe_losses(self) -> str:
        return ""

    def _say(self, text: str) -> None:
        if self.progress and self.dist.is_main:
            print(text, file=sys.stderr, flush=True)

    # -- files
    def checkpoint_path(self) -> Path:
        """``OUT/checkpoint.pt``."""
        return self.out_dir / CHECKPOINT_NAME

    def final_model_path(self) -> Path:
        """``OUT/<run_name>.safetensors``, the finished model."""
        return self.out_dir / f"{Path(self.run_name).stem}.safetensors"

    def step_model_path(self) -> Path:
        """``OUT/<run_name>_stepNNNNNNN.safetensors``, the model as of the current step."""
        return self.out_dir / f"{Path(self.run_name).stem}_step{self.state.step:07d}.safetensors"

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
            "identity": self.identity,
            **self.checkpoint_extras(),
        }
        write_checkpoint(payload, self.checkpoint_path())
        history = self._history()
        history.write_csv(self.out_dir / "log.csv")
        if history.rows:
            history.plot(self.out_dir / "loss.png", self.loss_terms, title=f"training: {self.run_name}")
        if self.test_image is not None:
            write_image(self.preview(self.test_image), self.out_dir / f"preview_step{self.state.step:07d}.jpg")

    def load_checkpoint(self) -> None:
        """Restore everything :meth:`save_checkpoint` wrote."""
        path = resume_checkpoint(self.out_dir)
        payload = read_checkpoint(path, map_location=self.device)
        saved = payload["options"]
        for key in self.resume_keys:
            if saved[key] != getattr(self.opts, key):
                raise StyleforgeError(f"--resume: the checkpoint was made with {key}={saved[key]!r}, not {getattr(self.opts, key)!r}")
        for key, recorded in payload.get("identity", {}).items():
            if key in self.identity and recorded != self.identity[key]:
                what = IDENTITY_NAMES.get(key, key)
                raise StyleforgeError(f"--resume: the checkpoint was trained with another {what} (its checksum differs); "
                                      f"give the run's own {what}, or start a new --out folder")
        self.net.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scaler.load_state_dict(payload["scaler"])
        self.state = TrainState(**payload["state"])
        set_rng_state(payload["rng"])

    def _history(self) -> LossHistory:
        history = LossHistory(self.history_columns)
        for row in self.state.history:
            history.append(**row)
        return history


#: What each identity checksum is of, for messages.
IDENTITY_NAMES = {"style": "style image", "styles": "style images", "vgg": "VGG19 weights"}


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



