"""Every command against bad inputs, one bad thing at a time, end to end in a subprocess.

Each case asserts the promise of the README: exit status 2, exactly one stderr line
``styleforge: error: ...`` naming the problem, no traceback, and no file created or
changed anywhere the command could write (the inputs, the working folder, the cache).
Full-disk cases run the child under a small ``RLIMIT_FSIZE`` (writes past it fail with
EFBIG, as on a full disk). Cases run under ``python -X importtime``, and each says
whether it is refused before PyTorch is imported (``instant``: argument, option and path
errors, about 0.3 s instead of 3) or only after (file contents that take PyTorch to
read, and failures during the work), so an error that becomes slow is a failure. New
commands add their rows here as they land.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.bad_input_assets import Assets, build_assets
from tests.warm_cli import CliResult, run_styleforge

TINY = ["--device", "cpu"]


@dataclass
class Case:
    """One bad invocation: ``argv`` after ``styleforge``, a fragment the error line must
    contain, and how to run it."""

    argv: list[str]
    fragment: str
    env: dict[str, str] = field(default_factory=dict)
    fsize: int | None = None  # RLIMIT_FSIZE for the child, in bytes
    stdout_full: bool = False  # stdout on /dev/full
    instant: bool = True  # refused before PyTorch is imported (argument, path and option errors)


def _weights(a: Assets) -> list[str]:
    return ["--weights", str(a.pth)]


def _stylize(a: Assets, *extra: str, content: Path | None = None) -> list[str]:
    return ["stylize", str(content or a.photo), "--style", str(a.style), "-o", "out.png", "--size", "32",
            "--iterations", "2", "--quiet", *_weights(a), *TINY, *extra]


def _train(a: Assets, *extra: str, data: Path | None = None, out: str = "run_out") -> list[str]:
    return ["train", "--style", str(a.style), "--data", str(data or a.data), "--out", out, *_weights(a), "--image-size", "32",
            "--batch-size", "2", "--max-steps", "2", "--workers", "0", "--quiet", *TINY, *extra]


def _transfer(a: Assets, *inputs: str, model: Path | None = None, out: str = "res") -> list[str]:
    return ["transfer", "--model", str(model or a.model), *(inputs or (str(a.photo),)), "-o", out, "--quiet", *TINY]


def _classify(a: Assets, image: Path | None = None, *extra: str) -> list[str]:
    return ["classify", str(image or a.photo), *_weights(a), "--size", "64", *TINY, *extra]


CASES: dict[str, Callable[[Assets], Case]] = {
    # --- argument errors: one line, pointing at --help (root cause 12)
    "no-command": lambda a: Case([], "required: COMMAND"),
    "unknown-command": lambda a: Case(["paint"], "invalid choice: 'paint'"),
    "classify-no-image": lambda a: Case(["classify"], "see 'styleforge classify --help'"),
    "classify-top-k-0": lambda a: Case(_classify(a, None, "--top-k", "0"), "--top-k: 0 must be >= 1"),
    "classify-top-k-text": lambda a: Case(_classify(a, None, "--top-k", "five"), "'five' is not an integer"),
    "classify-device": lambda a: Case(_classify(a, None, "--device", "tpu"), "invalid choice: 'tpu'"),
    "classify-precision": lambda a: Case(_classify(a, None, "--precision", "fp64"), "invalid choice: 'fp64'"),
    "stylize-no-output": lambda a: Case(["stylize", str(a.photo), "--style", str(a.style)], "required: -o"),
    "stylize-negative-size": lambda a: Case(_stylize(a, "--size", "-5"), "--size: -5 must be >= 1"),
    "train-missing-data": lambda a: Case(["train", "--style", str(a.style)], "required: --data"),
    "transfer-no-output": lambda a: Case(["transfer", "--model", str(a.model), str(a.photo)], "required: -o"),
    "weights-no-action": lambda a: Case(["weights"], "required: ACTION"),
    "weights-download-no-name": lambda a: Case(["weights", "download"], "required: name"),
    "unknown-option": lambda a: Case(_classify(a, None, "--colour"), "unrecognized arguments: --colour"),
    # --- values: NaN, infinity, negatives, ranges (root causes 3, 7, 11)
    "stylize-blend-negative": lambda a: Case(_stylize(a, "--style", str(a.photo_b), "--style-blend", "-1,2"), "blend weights must be >= 0"),
    "stylize-blend-nan": lambda a: Case(_stylize(a, "--style", str(a.photo_b), "--style-blend", "nan,1"), "must be finite"),
    "stylize-blend-count": lambda a: Case(_stylize(a, "--style-blend", "1,1"), "2 blend weights given for 1"),
    "stylize-blend-text": lambda a: Case(_stylize(a, "--style-blend", "a,b"), "bad --style-blend"),
    "stylize-layer-weights-nan": lambda a: Case(_stylize(a, "--style-layer-weights", "nan,1,1,1,1"), "must be finite"),
    "stylize-layer-weights-count": lambda a: Case(_stylize(a, "--style-layer-weights", "1,1"), "2 style layer weights given for 5"),
    "stylize-lr-nan": lambda a: Case(_stylize(a, "--lr", "nan"), "--lr: nan is not a finite number"),
    "stylize-lr-zero": lambda a: Case(_stylize(a, "--lr", "0"), "--lr: 0 must be > 0"),
    "stylize-content-weight-nan": lambda a: Case(_stylize(a, "--content-weight", "nan"), "not a finite number"),
    "stylize-style-weight-negative": lambda a: Case(_stylize(a, "--style-weight", "-1"), "--style-weight: -1 must be >= 0"),
    "stylize-tv-weight-inf": lambda a: Case(_stylize(a, "--tv-weight", "inf"), "--tv-weight: inf is not a finite number"),
    "stylize-style-scale-zero": lambda a: Case(_stylize(a, "--style-scale", "0"), "--style-scale: 0 must be > 0"),
    "stylize-style-scale-inf": lambda a: Case(_stylize(a, "--style-scale", "inf"), "not a finite number"),
    "stylize-seed-negative": lambda a: Case(_stylize(a, "--init", "noise", "--seed", "-1"), "--seed: -1 must be >= 0"),
    "stylize-save-every-negative": lambda a: Case(_stylize(a, "--save-every", "-1"), "--save-every: -1 must be >= 0"),
    "stylize-iterations-zero": lambda a: Case(_stylize(a, "--iterations", "0"), "--iterations: 0 must be >= 1"),
    "stylize-fp16-on-cpu": lambda a: Case(_stylize(a, "--precision", "fp16", "--device", "cpu"), "fp16 needs CUDA", instant=False),
    "stylize-fp32-finish-over-one": lambda a: Case(_stylize(a, "--precision", "bf16", "--fp32-finish", "1.5"),
                                                   "fp32 finish must be a fraction from 0 to 1"),
    "stylize-fp32-finish-negative": lambda a: Case(_stylize(a, "--fp32-finish", "-0.1"), "--fp32-finish: -0.1 must be >= 0"),
    "stylize-numpy-bf16": lambda a: Case(_stylize(a, "--engine", "numpy", "--precision", "bf16"), "is for the torch engine"),
    "stylize-bad-style-layer": lambda a: Case(_stylize(a, "--style-layers", "conv9_1"), "bad layer name 'conv9_1'"),
    "stylize-classifier-content-layer": lambda a: Case(_stylize(a, "--content-layers", "fc7"), "bad layer name 'fc7'"),
    "stylize-scales-too-small": lambda a: Case(_stylize(a, "--scales", "8,16"), "sizes must be >= 16"),
    "stylize-scales-text": lambda a: Case(_stylize(a, "--scales", "big"), "bad --scales"),
    "stylize-plot-suffix": lambda a: Case(_stylize(a, "--plot", "loss.xyz"), "needs one of the suffixes .png, .pdf, .svg"),
    "stylize-output-suffix": lambda a: Case(_stylize(a, "-o", "out.xyz"), "needs an image suffix"),
    "stylize-numpy-avg-pool": lambda a: Case(_stylize(a, "--engine", "numpy", "--pooling", "avg"), "max pooling only"),
    "train-style-weight-inf": lambda a: Case(_train(a, "--style-weight", "inf"), "--style-weight: inf is not a finite number"),
    "train-lr-inf": lambda a: Case(_train(a, "--lr", "inf"), "--lr/--learning-rate: inf is not a finite number"),
    "train-lr-zero": lambda a: Case(_train(a, "--learning-rate", "0"), "must be > 0"),
    "train-tv-negative": lambda a: Case(_train(a, "--tv-weight", "-3"), "--tv-weight: -3 must be >= 0"),
    "train-seed-negative": lambda a: Case(_train(a, "--seed", "-1"), "--seed: -1 must be >= 0"),
    "train-checkpoint-every-negative": lambda a: Case(_train(a, "--checkpoint-every", "-1"), "must be >= 0"),
    "train-workers-negative": lambda a: Case(_train(a, "--workers", "-2"), "--workers: -2 must be >= 0"),
    "train-image-size-tiny": lambda a: Case(_train(a, "--image-size", "8"), "image size must be >= 16"),
    "train-bad-layer": lambda a: Case(_train(a, "--content-layer", "relu9_9"), "bad layer name 'relu9_9'"),
    "transfer-overlap-negative": lambda a: Case(_transfer(a) + ["--tile-overlap", "-5"], "--tile-overlap: -5 must be >= 0"),
    "transfer-tile-tiny": lambda a: Case(_transfer(a) + ["--tile", "4"], "tile must be >= 16"),
    "transfer-batch-zero": lambda a: Case(_transfer(a) + ["--batch-size", "0"], "--batch-size: 0 must be >= 1"),
    "max-pixels-inf": lambda a: Case(_classify(a), "STYLEFORGE_MAX_PIXELS='inf' is not a positive integer", env={"STYLEFORGE_MAX_PIXELS": "inf"}),
    "max-pixels-nan": lambda a: Case(_stylize(a), "STYLEFORGE_MAX_PIXELS='nan'", env={"STYLEFORGE_MAX_PIXELS": "nan"}),
    "max-pixels-negative": lambda a: Case(_classify(a), "STYLEFORGE_MAX_PIXELS='-5'", env={"STYLEFORGE_MAX_PIXELS": "-5"}),
    # --- sizes: no MemoryError, refused before allocating (root cause 1)
    "classify-size-huge": lambda a: Case(_classify(a, None, "--size", "100000"), "over the limit"),
    "stylize-size-huge": lambda a: Case(_stylize(a, "--size", "100000"), "over the limit"),
    "stylize-style-scale-huge": lambda a: Case(_stylize(a, "--style-scale", "5000"), "over the limit"),
    "transfer-size-huge": lambda a: Case(_transfer(a) + ["--size", "100000"], "over the limit"),
    "train-image-size-huge": lambda a: Case(_train(a, "--image-size", "100000"), "over the limit"),
    "train-style-size-huge": lambda a: Case(_train(a, "--style-size", "100000"), "over the limit"),
    "classify-extreme-aspect": lambda a: Case(_classify(a, a.long_png), "over the limit", instant=False),
    "classify-bomb": lambda a: Case(_classify(a, a.bomb_png), "too many pixels"),
    "stylize-bomb-style": lambda a: Case(["stylize", str(a.photo), "--style", str(a.bomb_png), "-o", "o.png", *_weights(a)], "too many pixels"),
    # --- too small or too thin for the network (root cause 2)
    "stylize-thin-content": lambda a: Case(_stylize(a, content=a.long_png), "each side must be at least 16"),
    "stylize-thin-style": lambda a: Case(["stylize", str(a.photo), "--style", str(a.thin_png), "-o", "o.png", *_weights(a), *TINY], "each side must be at least 16"),
    "stylize-numpy-thin": lambda a: Case(_stylize(a, "--engine", "numpy", content=a.thin_png), "each side must be at least 16"),
    "stylize-small-size-wide": lambda a: Case(_stylize(a, "--size", "16", content=a.wide_png), "16x8"),
    "train-thin-style": lambda a: Case(["train", "--style", str(a.thin_png), "--data", str(a.data), "--out", "o", *_weights(a),
                                        "--image-size", "32", "--workers", "0", "--quiet", *TINY], "each side must be at least 16", instant=False),
    # --- files that cannot be read, with clear reasons (root causes 13, 14)
    "classify-missing": lambda a: Case(_classify(a, a.root / "missing.jpg"), "no such file"),
    "classify-folder": lambda a: Case(_classify(a, a.folder), "it is a folder, not a file"),
    "classify-fifo": lambda a: Case(_classify(a, a.fifo_jpg), "not a regular file"),
    "classify-text-jpg": lambda a: Case(_classify(a, a.text_jpg), "not a JPEG, PNG, WebP or BMP image"),
    "classify-truncated-jpg": lambda a: Case(_classify(a, a.truncated_jpg), "corrupt or truncated"),
    "classify-empty-png": lambda a: Case(_classify(a, a.empty_png), "cannot read image"),
    "stylize-fifo-style": lambda a: Case(["stylize", str(a.photo), "--style", str(a.fifo_jpg), "-o", "o.png", *_weights(a)], "not a regular file"),
    "stylize-missing-content": lambda a: Case(_stylize(a, content=a.root / "nope.png"), "no such file"),
    "transfer-fifo-input": lambda a: Case(_transfer(a, str(a.fifo_jpg)), "not a regular file"),
    "transfer-missing-input": lambda a: Case(_transfer(a, str(a.root / "nope.jpg")), "no such file or folder"),
    "transfer-empty-folder": lambda a: Case(_transfer(a, str(a.folder)), "holds no images"),
    "transfer-all-unreadable": lambda a: Case(_transfer(a, str(a.unreadable_data)), "none of the 4 input image(s) could be read", instant=False),
    "weights-import-fifo": lambda a: Case(["weights", "import", str(a.fifo_jpg.with_name("fifo.jpg"))], "not a regular file"),
    "classify-weights-text-pth": lambda a: Case(["classify", str(a.photo), "--weights", str(a.text_pth)], "it is not a PyTorch file (it is text", instant=False),
    "classify-weights-evil-pth": lambda a: Case(["classify", str(a.photo), "--weights", str(a.evil_pth)], "not a plain weights file", instant=False),
    "classify-weights-truncated-pth": lambda a: Case(["classify", str(a.photo), "--weights", str(a.truncated_pth)], "truncated or corrupt", instant=False),
    "classify-weights-truncated-mat": lambda a: Case(["classify", str(a.photo), "--weights", str(a.truncated_mat)], "get imagenet-vgg-verydeep-19.mat again", instant=False),
    "classify-weights-truncated-safetensors": lambda a: Case(["classify", str(a.photo), "--weights", str(a.truncated_safetensors)], "cannot read", instant=False),
    "classify-weights-folder": lambda a: Case(["classify", str(a.photo), "--weights", str(a.folder) + "/"], "it is a folder"),
    "classify-weights-batchnorm": lambda a: Case(["classify", str(a.photo), "--weights", str(a.batchnorm_pth)], "not torchvision's plain VGG19", instant=False),
    "classify-weights-unknown-name": lambda a: Case(["classify", str(a.photo), "--weights", "vgg99"], "unknown weights 'vgg99'"),
    "classify-weights-not-cached": lambda a: Case(["classify", str(a.photo), "--weights", "vgg19"], "are not in the cache"),
    "weights-import-evil": lambda a: Case(["weights", "import", str(a.evil_pth), "--name", "evil"], "not a plain weights file", instant=False),
    "weights-import-unknown-suffix": lambda a: Case(["weights", "import", str(a.text_jpg)], "unknown suffix"),
    "weights-path-unknown": lambda a: Case(["weights", "path", "nope"], "unknown weights 'nope'"),
    "weights-remove-unknown": lambda a: Case(["weights", "remove", "nope"], "not in the cache ("),
    "weights-remove-never-downloaded": lambda a: Case(["weights", "remove", "vgg19"], "so there is nothing to remove"),
    "weights-import-integer-tensors": lambda a: Case(["weights", "import", str(a.int_pth), "--name", "ints"],
                                                     "tensor features.0.weight holds int64 values", instant=False),
    "transfer-pth-style-network": lambda a: Case(_transfer(a, model=a.truncated_pth),
                                                 "converted once with 'styleforge models import", instant=False),
    "weights-download-unknown": lambda a: Case(["weights", "download", "vgg99"], "no download is known for 'vgg99'"),
    "transfer-model-folder": lambda a: Case(_transfer(a, model=a.folder), "it is a folder, not a file"),
    "transfer-model-missing": lambda a: Case(_transfer(a, model=a.root / "none.safetensors"), "no such file"),
    "transfer-model-wrong-key": lambda a: Case(_transfer(a, model=a.wrong_key_model), "missing conv1", instant=False),
    "transfer-model-bad-json": lambda a: Case(_transfer(a, model=a.bad_json_model), "cannot read model metadata", instant=False),
    "transfer-model-truncated": lambda a: Case(_transfer(a, model=a.truncated_safetensors), "cannot read model", instant=False),
    "transfer-model-vgg-file": lambda a: Case(_transfer(a, model=a.root / "tiny.mat"), "cannot read model", instant=False),
    "transfer-checkpoint-plain-dict": lambda a: Case(_transfer(a, model=a.plain_dict_pt), "not a styleforge training checkpoint", instant=False),
    "transfer-checkpoint-evil": lambda a: Case(_transfer(a, model=a.evil_pth.with_name("evil.pth")), "converted once with 'styleforge models import", instant=False),
    "stylize-numpy-cuda": lambda a: Case(_stylize(a, "--engine", "numpy") + ["--device", "cuda"], "runs on the CPU"),
    "classify-numpy-bf16": lambda a: Case(_classify(a, None, "--engine", "numpy", "--precision", "bf16"), "fp32 only"),
    "classify-numpy-wrong-size": lambda a: Case(["classify", str(a.photo), *_weights(a), "--engine", "numpy", "--size", "96"], "use an input of 64x64", instant=False),
    "stylize-content-twice": lambda a: Case(_stylize(a, "--in-path", str(a.photo_b)), "give one CONTENT"),
    "transfer-no-inputs": lambda a: Case(["transfer", "--model", str(a.model), "-o", "res"], "give IN (or --in-path)"),
    "check-data-missing": lambda a: Case(["check-data", str(a.root / "nope")], "does not exist"),
    "check-data-file": lambda a: Case(["check-data", str(a.photo)], "is not a folder"),
    "train-data-missing": lambda a: Case(_train(a, data=a.root / "nope"), "does not exist"),
    "train-data-empty": lambda a: Case(_train(a, data=a.folder), "holds no"),
    "train-resume-missing": lambda a: Case(_train(a, "--resume"), "no checkpoint"),
    # --- silent wrong results, now refused (root causes 7-11)
    "classify-nan-weights": lambda a: Case(["classify", str(a.photo), "--weights", str(a.nan_pth)], "NaN or infinite", instant=False),
    "stylize-nan-mat-weights": lambda a: Case(_stylize(a, "--weights", str(a.nan_mat)), "NaN or infinite", instant=False),
    "weights-import-nan": lambda a: Case(["weights", "import", str(a.nan_mat), "--name", "nan"], "NaN or infinite"),
    "transfer-nan-model": lambda a: Case(_transfer(a, model=a.nan_model), "NaN or infinite", instant=False),
    "transfer-nan-checkpoint": lambda a: Case(_transfer(a, model=a.nan_checkpoint), "NaN or infinite", instant=False),
    "train-all-unreadable": lambda a: Case(_train(a, data=a.unreadable_data), "nothing was trained", instant=False),
    "check-data-all-unreadable": lambda a: Case(["check-data", str(a.unreadable_data), "--json"], "no readable image"),
    "transfer-same-names": lambda a: Case(_transfer(a, str(a.same_a), str(a.same_b)), "would both be written to"),
    "transfer-output-is-input": lambda a: Case(_transfer(a, str(a.photo), out=str(a.photo)), "is also an input"),
    "stylize-output-is-content": lambda a: Case(_stylize(a, "-o", str(a.photo)), "is also an input"),
    "stylize-output-is-style": lambda a: Case(_stylize(a, "-o", str(a.style)), "is also an input"),
    "stylize-log-is-output": lambda a: Case(_stylize(a, "--log", "out.png"), "--log 'out.png' is also an input"),
    "train-resume-other-style": lambda a: Case(["train", "--style", str(a.photo), "--data", str(a.data), "--out", str(a.run),
                                                *_weights(a), "--image-size", "32", "--batch-size", "2", "--max-steps", "2",
                                                "--workers", "0", "--resume", "--quiet", *TINY], "another style image", instant=False),
    "train-resume-other-weights": lambda a: Case(["train", "--style", str(a.style), "--data", str(a.data), "--out", str(a.run),
                                                  "--weights", str(a.mat), "--image-size", "32", "--batch-size", "2",
                                                  "--max-steps", "2", "--workers", "0", "--resume", "--quiet", *TINY],
                                                 "another VGG19 weights", instant=False),
    "train-resume-other-size": lambda a: Case(["train", "--style", str(a.style), "--data", str(a.data), "--out", str(a.run),
                                               *_weights(a), "--image-size", "48", "--batch-size", "2", "--max-steps", "2",
                                               "--workers", "0", "--resume", "--quiet", *TINY], "image_size=32", instant=False),
    "weights-import-empty-name": lambda a: Case(["weights", "import", str(a.pth), "--name", ""], "invalid weights name ''"),
    "weights-import-slash-name": lambda a: Case(["weights", "import", str(a.pth), "--name", "a/b"], "invalid weights name 'a/b'"),
    "weights-import-reserved-name": lambda a: Case(["weights", "import", str(a.pth), "--name", "vgg19"], "reserved for vgg19-dcbb9e9d.pth"),
    # --- where outputs go (root cause 4)
    "train-out-is-file": lambda a: Case(_train(a, out=str(a.a_file)), "is a file, not a folder"),
    "train-out-under-file": lambda a: Case(_train(a, out=str(a.a_file / "sub")), "is a file, not a folder"),
    "stylize-output-is-folder": lambda a: Case(_stylize(a, "-o", str(a.folder)), "needs an image suffix"),
    "stylize-output-folder-named-png": lambda a: Case(_stylize(a, "-o", "dir.png"), "is a folder"),
    "stylize-output-under-file": lambda a: Case(_stylize(a, "-o", str(a.a_file / "out.png")), "is a file, not a folder"),
    "transfer-output-unknown-suffix": lambda a: Case(_transfer(a, str(a.photo), out="out.xyz"), "not an image format styleforge writes"),
    "transfer-output-unwritable-image-suffix": lambda a: Case(_transfer(a, str(a.photo), out="out.tif"), "ends in '.tif'"),
    "transfer-output-inside-input-folder": lambda a: Case(_transfer(a, str(a.data), out=str(a.data / "res")),
                                                          "is inside the input folder"),
    "transfer-output-is-input-folder": lambda a: Case(_transfer(a, str(a.data), out=str(a.data)), "is inside the input folder"),
    "transfer-output-unknown-suffix-installs-nothing": lambda a: Case(_transfer(a, str(a.photo), model=Path("magenta-26"), out="o.xyz"),
                                                                      "not an image format styleforge writes"),
    "transfer-output-under-file": lambda a: Case(_transfer(a, str(a.photo), out=str(a.a_file / "res")), "is a file, not a folder"),
    "transfer-output-folder-is-file": lambda a: Case(_transfer(a, str(a.photo), str(a.photo_b), out=str(a.a_file)), "is a file, not a folder"),
    "home-is-file-list": lambda a: Case(["weights", "list"], "is a file, not a folder", env={"STYLEFORGE_HOME": str(a.a_file)}),
    "home-is-file-import": lambda a: Case(["weights", "import", str(a.pth), "--name", "t"], "is a file, not a folder",
                                          env={"STYLEFORGE_HOME": str(a.a_file)}, instant=False),
    # --- export (issue 10): the same promise
    "export-bad-suffix": lambda a: Case(["export", "--model", str(a.model), "-o", "m.txt"], "needs the suffix .onnx"),
    "export-missing-model": lambda a: Case(["export", "--model", str(a.root / "none.safetensors"), "-o", "m.onnx"], "no such file"),
    "export-nan-model": lambda a: Case(["export", "--model", str(a.nan_model), "-o", "m.onnx"], "NaN or infinite", instant=False),
    "export-classifier-size": lambda a: Case(["export", "--classifier", *_weights(a), "-o", "v.onnx"], "takes 64x64 inputs", instant=False),
    "export-output-is-input": lambda a: Case(["export", "--model", str(a.model), "-o", str(a.model)], "is also an input"),
    "export-nothing": lambda a: Case(["export", "-o", "m.onnx"], "one of the arguments --model --classifier is required"),
    "transfer-text-onnx": lambda a: Case(_transfer(a, model=a.text_jpg.with_name("text.pth")) + ["--device", "cpu"], "is not a styleforge model file", instant=False),
    "quantize-missing-config": lambda a: Case(["quantize", "--config", str(a.root / "none.ini")], "no such file"),
    "quantize-config-is-folder": lambda a: Case(["quantize", "--config", str(a.folder)], "it is a folder"),
    "quantize-not-ini": lambda a: Case(["quantize", "--config", str(a.text_jpg)], "cannot read quantisation config"),
    "bench-missing-model": lambda a: Case(["bench", "--model", str(a.root / "none.safetensors"), "--sizes", "32"], "no such file"),
    "bench-tiny-size": lambda a: Case(["bench", "--model", str(a.model), "--sizes", "4"], "--sizes must be >= 8"),
    "bench-bad-sizes": lambda a: Case(["bench", "--model", str(a.model), "--sizes", "big"], "bad --sizes"),
    "bench-empty-data": lambda a: Case(["bench", "--model", str(a.model), "--data", str(a.folder)], "holds no images"),
    "bench-unreadable-data": lambda a: Case(["bench", "--model", str(a.model), "--data", str(a.unreadable_data)], "cannot read image"),
    "bench-nothing": lambda a: Case(["bench"], "one of the arguments --model --weights is required"),
    "bench-empty-calibration": lambda a: Case(["bench", "--model", str(a.model), "--calibration", str(a.folder)], "holds no images"),
    "transfer-bad-runtime": lambda a: Case(_transfer(a, str(a.photo)) + ["--runtime", "tensorrt"], "invalid choice: 'tensorrt'"),
    "transfer-onnxruntime-for-pytorch-model": lambda a: Case(_transfer(a) + ["--runtime", "onnxruntime"],
                                                             "--runtime onnxruntime runs exported .onnx files",
                                                             instant=False),
    "transfer-openvino-with-compile": lambda a: Case(_transfer(a) + ["--runtime", "openvino", "--compile"], "two compilers"),
    "transfer-openvino-power-difference": lambda a: Case(_transfer(a) + ["--runtime", "openvino", "--power-difference"],
                                                         "OpenVINO has no PowerDifference kernel", instant=False),
    "transfer-int8-runtime-pytorch": lambda a: Case(_transfer(a) + ["--precision", "int8", "--runtime", "pytorch"],
                                                    "drop --runtime pytorch"),
    "transfer-int8-compile": lambda a: Case(_transfer(a) + ["--precision", "int8", "--compile"], "give one of them"),
    "transfer-int8-cuda": lambda a: Case(_transfer(a) + ["--precision", "int8", "--device", "cuda"], "int8 runs on the CPU"),
    "transfer-int8-power-difference": lambda a: Case(_transfer(a) + ["--precision", "int8", "--power-difference"],
                                                     "no PowerDifference kernel"),
    "transfer-int8-norm-strength": lambda a: Case(_transfer(a) + ["--precision", "int8", "--strength-mode", "norm"],
                                                  "which the INT8 copy fixes"),
    "transfer-int8-adain": lambda a: Case(_transfer(a, model=a.adain_model) + ["--style", str(a.style), "--precision", "int8"],
                                          "quantises networks with their styles built in", instant=False),
    # --- the operator (issue 11)
    "export-classifier-power-difference": lambda a: Case(["export", "--classifier", *_weights(a), "--size", "64", "-o", "v.onnx",
                                                          "--power-difference"], "applies to style models"),
    "graph-missing-input": lambda a: Case(["graph", "rewrite-squared-difference", str(a.root / "none.onnx"), "-o", "o.onnx"], "no such file"),
    "graph-not-onnx": lambda a: Case(["graph", "rewrite-squared-difference", str(a.text_jpg), "-o", "o.onnx"], "cannot read ONNX model"),
    "graph-output-is-input": lambda a: Case(["graph", "rewrite-squared-difference", str(a.text_jpg), "-o", str(a.text_jpg)],
                                            "is also an input"),
    "graph-no-action": lambda a: Case(["graph"], "the following arguments are required: ACTION"),
    "stylize-numpy-power-difference": lambda a: Case(_stylize(a, "--engine", "numpy", "--power-difference"), "NumPy engine"),
    # --- the web service (issue 12): refused before anything listens or is written
    "serve-config-missing": lambda a: Case(["serve", "--config", str(a.root / "none.toml")], "no such file"),
    "serve-config-not-toml": lambda a: Case(["serve", "--config", str(a.text_jpg)], "not a valid TOML file"),
    "serve-config-unknown-key": lambda a: Case(["serve", "--config", str(a.service_unknown_key)], "unknown setting 'colour'"),
    "serve-config-bad-value": lambda a: Case(["serve", "--config", str(a.service_bad_value)], "'max_queued' has a bad value 'many'"),
    "serve-env-bad-value": lambda a: Case(["serve"], "setting 'rate_limit' has a bad value", env={"STYLEFORGE_RATE_LIMIT": "lots"}),
    "serve-env-negative": lambda a: Case(["serve"], "'max_upload_bytes' must be positive", env={"STYLEFORGE_MAX_UPLOAD_BYTES": "-1"}),
    "serve-env-smtp-security": lambda a: Case(["serve"], "'smtp.security' must be one of", env={"STYLEFORGE_SMTP_SECURITY": "tls"}),
    "serve-bad-broker": lambda a: Case(["serve", "--broker", "amqp://localhost"], "must be a redis://"),
    "serve-port-out-of-range": lambda a: Case(["serve", "--port", "70000"], "0 (any free port) to 65535"),
    "serve-address-not-here": lambda a: Case(["serve", "--host", "203.0.113.7", "--port", "0"], "cannot listen on 203.0.113.7:0"),
    "serve-data-is-file": lambda a: Case(["serve", "--port", "0", "--data", str(a.a_file)], "cannot create the data folder"),
    "worker-no-broker": lambda a: Case(["worker"], "a worker needs a broker"),
    "worker-bad-concurrency": lambda a: Case(["worker", "--broker", "redis://localhost", "--concurrency", "0"], "--concurrency: 0 must be"),
    # --- community models (issue 13)
    "models-import-text-t7": lambda a: Case(["models", "import", str(a.text_t7)], "cannot read Torch7 file", instant=False),
    "transfer-style-weights-range": lambda a: Case(_transfer(a) + ["--style-weights", "3"],
                                                   "style 3 is out of range: this model has 1 style(s)", instant=False),
    "transfer-style-weights-unknown": lambda a: Case(_transfer(a) + ["--style-weights", "monet:1"], "no style 'monet'", instant=False),
    "transfer-strength-mode-bad": lambda a: Case(_transfer(a) + ["--strength-mode", "blur"], "invalid choice: 'blur'"),
    "train-extend-missing": lambda a: Case(_train(a, "--extend", str(a.root / "none.safetensors")), "no such file"),
    "train-extend-not-a-model": lambda a: Case(_train(a, "--extend", str(a.text_t7)), "converted once with 'styleforge models import", instant=False),
    # --- any painting as a style: AdaIN (issue 14)
    "transfer-adain-no-style": lambda a: Case(_transfer(a, model=a.adain_model), "give one or more with --style IMAGE", instant=False),
    "transfer-adain-alpha-range": lambda a: Case(_transfer(a, model=a.adain_model) + ["--style", str(a.style), "--alpha", "1.5"],
                                                 "alpha must be from 0 to 1, got 1.5"),
    "transfer-adain-alpha-nan": lambda a: Case(_transfer(a, model=a.adain_model) + ["--style", str(a.style), "--alpha", "nan"],
                                               "alpha must be from 0 to 1"),
    "transfer-adain-style-unreadable": lambda a: Case(_transfer(a, model=a.adain_model) + ["--style", str(a.text_jpg)],
                                                      "cannot read image", instant=False),
    "transfer-adain-style-missing": lambda a: Case(_transfer(a, model=a.adain_model) + ["--style", str(a.root / "none.jpg")],
                                                   "no such file"),
    "transfer-adain-weight-range": lambda a: Case(_transfer(a, model=a.adain_model) + ["--style", str(a.style), "--style-weights", "1"],
                                                  "style 1 is out of range: 1 --style image(s) were given", instant=False),
    "transfer-adain-weights-zero": lambda a: Case(_transfer(a, model=a.adain_model) + ["--style", str(a.style), "--style-weights", "0:0"],
                                                  "must be numbers >= 0 with a positive sum", instant=False),
    "transfer-adain-norm-strength": lambda a: Case(_transfer(a, model=a.adain_model) + ["--style", str(a.style), "--strength-mode", "norm"],
                                                   "--strength-mode norm is for instance-norm networks", instant=False),
    "transfer-style-on-fixed-model": lambda a: Case(_transfer(a) + ["--style", str(a.style)], "has its style built in", instant=False),
    "transfer-alpha-on-fixed-model": lambda a: Case(_transfer(a) + ["--alpha", "0.5"], "use --strength", instant=False),
    "train-adain-missing-styles": lambda a: Case(["train-adain", "--styles", str(a.root / "none"), "--data", str(a.data), "--out", "ad",
                                                  *_weights(a), *TINY], "does not exist"),
    "train-adain-image-size": lambda a: Case(["train-adain", "--styles", str(a.data), "--data", str(a.data), "--out", "ad",
                                              "--image-size", "8", *_weights(a), *TINY], "image size must be >= 16"),
    "train-adain-unreadable-styles": lambda a: Case(["train-adain", "--styles", str(a.unreadable_data), "--data", str(a.data), "--out", "ad",
                                                     "--image-size", "32", "--batch-size", "2", "--workers", "0", "--quiet", *_weights(a), *TINY],
                                                    "no batch of readable images", instant=False),
    "models-import-missing": lambda a: Case(["models", "import", str(a.root / "none.pth")], "no such file"),
    "models-import-bad-suffix": lambda a: Case(["models", "import", str(a.photo)], "expected a pytorch/examples .pth"),
    "models-import-vgg-weights": lambda a: Case(["models", "import", str(a.pth)], "does not fit pytorch/examples' TransformerNet", instant=False),
    "models-import-evil-pth": lambda a: Case(["models", "import", str(a.evil_pth)], "cannot read", instant=False),
    "models-import-text-onnx": lambda a: Case(["models", "import", str(a.text_pth.with_name("text.onnx"))], "no such file"),
    "models-import-bad-name": lambda a: Case(["models", "import", str(a.pth), "--name", "../x"], "invalid model name"),
    "models-download-unknown": lambda a: Case(["models", "download", "starry"], "no download is known for style 'starry'"),
    "models-path-missing": lambda a: Case(["models", "path", "candy"], "run 'styleforge models download candy'"),
    "models-remove-missing": lambda a: Case(["models", "remove", "mine"], "styleforge models import PATH --name NAME"),
    "video-not-a-video": lambda a: Case(_transfer(a, str(a.text_mp4), out="res.mp4"), "cannot read video", instant=False),
    "video-truncated": lambda a: Case(_transfer(a, str(a.truncated_mp4), out="res.mp4"), "cannot read video", instant=False),
    "video-output-suffix": lambda a: Case(_transfer(a, str(a.clip), out="res.gif"), "use one of .mp4"),
    "video-two-clips": lambda a: Case(_transfer(a, str(a.clip), str(a.clip), out="res.mp4"), "give one video at a time"),
    "video-smoothing-one": lambda a: Case(_transfer(a, str(a.clip), out="res.mp4") + ["--temporal-smoothing", "1"],
                                          "temporal smoothing must be from 0 to below 1"),
    "video-crf-huge": lambda a: Case(_transfer(a, str(a.clip), out="res.mp4") + ["--crf", "70"], "crf must be from 0 to 51"),
    "video-output-is-input": lambda a: Case(_transfer(a, str(a.clip), out=str(a.clip)), "is also an input"),
    "transfer-unknown-installed-name": lambda a: Case(_transfer(a, str(a.photo), model=Path("candy")), "no installed style model 'candy'"),
    # --- full disk (RLIMIT_FSIZE) and a full stdout: no truncated file, exit 2 (root causes 4, 6)
    "disk-full-weights-import": lambda a: Case(["weights", "import", str(a.pth), "--name", "t"], "File too large", fsize=4096, instant=False),
    "disk-full-stylize-png": lambda a: Case(_stylize(a), "cannot write 'out.png'", fsize=512, instant=False),
    "disk-full-stylize-jpg": lambda a: Case(_stylize(a, "-o", "out.jpg"), "cannot write 'out.jpg'", fsize=512, instant=False),
    "disk-full-stylize-bmp": lambda a: Case(_stylize(a, "-o", "out.bmp"), "cannot write 'out.bmp'", fsize=512, instant=False),
    "disk-full-transfer": lambda a: Case(_transfer(a, str(a.photo), out="res.jpg"), "cannot write 'res.jpg'", fsize=512, instant=False),
    "disk-full-video": lambda a: Case(_transfer(a, str(a.clip), out="res.mp4"), "cannot write video 'res.mp4'", fsize=4096, instant=False),
    "disk-full-train-checkpoint": lambda a: Case(_train(a), "cannot write", fsize=65536, instant=False),
    # a refusal leaves no folder behind: the output folders made for a write that failed,
    # the run folder of a training that never checkpointed, the cache's download folder
    "disk-full-transfer-folder": lambda a: Case(_transfer(a, str(a.data), out="res"), "cannot write", fsize=512, instant=False),
    # the loss log (about 6 kB after 80 steps) no longer fits, the 32-px JPEG (about 1 kB) would: neither is written
    "disk-full-stylize-log": lambda a: Case(_stylize(a, "-o", "out.jpg", "--iterations", "80", "--log", "loss.csv"),
                                            "cannot write 'loss.csv'", fsize=4096, instant=False),
    "weights-download-offline": lambda a: Case(["weights", "download", "vgg19", "--url", "http://127.0.0.1:9/vgg19.pth"],
                                               "if this machine is offline", instant=False),
    "stdout-full-classify": lambda a: Case(_classify(a), "cannot write standard output", stdout_full=True, instant=False),
    "stdout-full-weights-list": lambda a: Case(["weights", "list"], "cannot write standard output", stdout_full=True),
}


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    return build_assets(tmp_path_factory.mktemp("bad-input-assets"))


def _snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file (and FIFO) under ``roots`` with its size and modification time, and every
    folder (size -1: a refusal must not leave an empty folder behind either)."""
    found = {}
    for root in roots:
        for dirpath, folders, files in os.walk(root):
            found.update({str(Path(dirpath) / name): (-1, 0) for name in folders})
            for name in files:
                path = Path(dirpath) / name
                info = path.lstat()
                found[str(path)] = (info.st_size, info.st_mtime_ns)
    return found


def run_case(case: Case, cwd: Path) -> CliResult:
    """Run ``styleforge`` with the case's arguments in ``cwd``: an instant case in a fresh
    interpreter under ``python -X importtime`` (see :func:`imported_modules`), the others
    forked from the warm CLI server (tests/warm_cli.py), which has imported PyTorch already."""
    return run_styleforge(case.argv, cwd=cwd, env={**os.environ, **case.env}, timeout=180,
                          stdout_path="/dev/full" if case.stdout_full else None, file_size_limit=case.fsize,
                          python_flags=("-X", "importtime") if case.instant else ())


IMPORT_TIME_LINE = "import time:"


def imported_modules(stderr: str) -> set[str]:
    """The modules ``python -X importtime`` reported importing (lines ``import time: self |
    cumulative | name``, the name indented by its depth)."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith(IMPORT_TIME_LINE)}


def command_stderr(stderr: str) -> list[str]:
    """The command's own stderr lines, without ``-X importtime``'s."""
    return [line for line in stderr.strip().splitlines() if not line.startswith(IMPORT_TIME_LINE)]


def test_there_are_at_least_100_cases() -> None:
    assert len(CASES) >= 100


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_refused_in_one_line_and_leaves_nothing(name: str, assets: Assets, tmp_path: Path,
                                                              isolated_home: Path) -> None:
    case = CASES[name](assets)
    (tmp_path / "dir.png").mkdir()
    before = _snapshot(tmp_path, assets.root, isolated_home)
    result = run_case(case, tmp_path)
    lines = command_stderr(result.stderr)
    assert result.returncode == 2, (result.returncode, lines)
    assert len(lines) == 1, lines
    assert lines[0].startswith("styleforge: error: "), lines[0]
    assert "Traceback" not in result.stderr and "weights_only=False" not in result.stderr
    assert case.fragment in lines[0], (case.fragment, lines[0])
    assert _snapshot(tmp_path, assets.root, isolated_home) == before
    if case.instant:
        assert "torch" not in imported_modules(result.stderr), "refused only after PyTorch was imported"


def test_a_1x1_image_stylises_with_a_trained_model(assets: Assets, tmp_path: Path) -> None:
    """Too small for the network's padding once; now padded and cropped back (also compiled
    models take the same path)."""
    from PIL import Image

    Image.new("RGB", (1, 1), (10, 200, 30)).save(tmp_path / "dot.png")
    Image.new("RGB", (3, 2), (10, 200, 30)).save(tmp_path / "small.png")
    result = run_case(Case(_transfer(assets, str(tmp_path / "dot.png"), str(tmp_path / "small.png"), out="res"), "", instant=False), tmp_path)
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "res" / "dot.png").size == (1, 1)
    assert Image.open(tmp_path / "res" / "small.png").size == (3, 2)


def test_outputs_get_the_umask_permissions(assets: Assets, tmp_path: Path) -> None:
    result = subprocess.run(
        ["sh", "-c", f"umask 022 && exec {shlex.quote(sys.executable)} -m styleforge "
                     + " ".join(map(shlex.quote, _transfer(assets, str(assets.photo), out="res.png")))],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "res.png").stat().st_mode & 0o777 == 0o644
