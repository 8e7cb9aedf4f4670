#!/usr/bin/env bash
# Everything a short GPU loan should run: the CUDA-only tests, then the GPU rows of the
# fair benchmarks. Each step has its own time limit, so one slow step cannot use up the
# loan; results go to $OUT (JSON, logs). Name the steps to run (default: all four, about
# 11 minutes); two calls fit a 10-minute command limit:
#
#   OUT=bench-results/gpu bash benchmarks/gpu_session.sh tests transfer
#   OUT=bench-results/gpu bash benchmarks/gpu_session.sh gatys train
#
# Then copy the JSON into docs/benchmarks/ under a name with the GPU in it, add a
# <!-- table: NAME --> block to docs/benchmarks.md and run python benchmarks/report.py.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-bench-results/gpu}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src:$PWD" PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"

STEPS=" ${*:-tests transfer gatys train} "

step() {  # step SECONDS NAME COMMAND...: run with a limit if NAME was asked for, log to $OUT/NAME.log
  local limit=$1 name=$2
  shift 2
  [[ "$STEPS" == *" $name "* ]] || return 0
  echo "== $name (limit ${limit}s)"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "   exit $? ($(tail -n 1 "$OUT/$name.log"))"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
"$PY" -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" >> "$OUT/gpu.txt" 2>&1

# CUDA-only tests: graph replay, the operator's CUDA kernel, fp16 stylising, devices.
step 150 tests "$PY" -m pytest -q -x -p no:cacheprovider tests/test_cuda_graphs.py tests/ops/test_power_difference.py \
  tests/test_transfer.py tests/test_vgg.py tests/test_gatys.py -k "cuda or graph"

# Feed-forward transfer: the examples baselines, styleforge's paths, and --compile
# (one static graph per size) at 512 px and 1080p.
step 300 transfer "$PY" benchmarks/transfer.py --device cuda --sizes 512,1920x1080 --compile --repeats 20 --warmup 3 \
  --json "$OUT/transfer-fair-cuda.json"

# Gatys against the PyTorch tutorial (fp32, bf16, fp16), training against pytorch/examples.
step 120 gatys "$PY" benchmarks/gatys.py --device cuda --sizes 512 --iterations 40 --json "$OUT/gatys-fair-cuda.json"
step 120 train "$PY" benchmarks/train.py --device cuda --steps 20 --json "$OUT/train-fair-cuda.json"
