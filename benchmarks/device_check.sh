#!/usr/bin/env bash
# The checks that need a GPU, as one command for a lent GPU machine (README "Cost model", "GPU"):
#   1. the tests that run only on CUDA or with torchvision / timm (AMP training, ridge on torch CUDA, the zoo's
#      torchvision and timm networks), which skip on a CPU-only machine;
#   2. the cost model's GPU terms (benchmarks/bench_gpu.py --field): each GPU stage's speed-up over a laptop
#      job's CPU threads and the CUDA start, written to $OUT/gpu_terms.json.
# That machine has torch, torchvision, timm, transformers, numpy, scipy, pandas, xarray, h5py and matplotlib
# and cannot fetch anything: the rest travels as wheels in .wheels/ (ignored by git), fetched here first with
#   python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .wheels h5netcdf==1.8.3
# Run (the device tool): command `bash benchmarks/device_check.sh`, carry [".wheels"], timeout about 540 s.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/neurofit-device-check}"
mkdir -p "$out"
site=/tmp/neurofit-site
if compgen -G ".wheels/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .wheels/*.whl || exit 1
fi
export PYTHONPATH="$PWD/src:$site" DANDI_NO_ET=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/gpu.txt"
python3 -c "import torch, torchvision, timm, transformers; print(torch.__version__, torch.version.cuda, \
torchvision.__version__, timm.__version__, transformers.__version__, torch.cuda.is_available())" 2>&1 \
    | tee "$out/versions.txt"
status=0
timeout 240 python3 -m pytest -q -p no:cacheprovider -rs tests/models/test_train.py tests/models/test_zoo.py \
    tests/models/test_tasks.py tests/encoding/test_ridge.py 2>&1 | tee "$out/tests.log" || status=1
timeout 240 python3 benchmarks/bench_gpu.py --field --repeats 2 --out "$out/gpu_terms.json" 2>&1 \
    | tee "$out/bench_gpu.log" || status=1
exit "$status"
