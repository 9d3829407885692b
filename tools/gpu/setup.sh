#!/usr/bin/env bash
# Source at the start of a device command: put the carried wheels (folder GPU_WHEELS, default wheelhouse/) on
# PYTHONPATH (the GPU image has torch/triton/jax/transformers but not hydra/omegaconf/...), and stamp results with
# the commit recorded in .commit (carried; `git rev-parse HEAD > .commit` before the call).
#   source tools/gpu/setup.sh        (the repository root is the working directory)
set -e
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "${GPU_WHEELS:-wheelhouse}"/*.whl \
  >/tmp/pip-wheelhouse.log 2>&1 || { cat /tmp/pip-wheelhouse.log; exit 1; }
export PYTHONPATH=/tmp/site:$PWD
export PYTHONUNBUFFERED=1 WANDB_MODE=offline
export PAPERCLUB_GIT_COMMIT=${PAPERCLUB_GIT_COMMIT:-$(cat .commit 2>/dev/null || echo unknown)}
set +e
