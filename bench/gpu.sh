#!/usr/bin/env bash
# symgrad's JAX backend vs PyTorch CUDA on one GPU, in one run (a few minutes, most of it installing):
#   big MLP 784-256-256-10 and a LeNet-sized CNN, Adam step, float32, batch 128; ratio symgrad / PyTorch
#   (target <= 1.2).  Needs a CUDA GPU; from the repository root:
#       bash bench/gpu.sh              (installs jax[cuda12] and torch into the current Python first)
#       SKIP_INSTALL=1 bash bench/gpu.sh
#   Extra arguments go to bench/gpu_step.py (--steps, --rounds, --batch; --device cpu runs the same on the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
if [ -z "${SKIP_INSTALL:-}" ]; then
  "$PY" -m pip install -q -e . 'jax[cuda12]' torch
fi
"$PY" -c "import jax; print('JAX devices:', jax.devices())"
"$PY" bench/gpu_step.py "$@"
