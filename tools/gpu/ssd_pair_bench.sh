#!/usr/bin/env bash
# One device lease, run detached (setsid): train our pair (pair=gpu), run the one-run benchmark (bench_gpu), then
# the skinny-GEMM sweep. Results land in experiments/ssd/results/ of the machine's tree; logs and a `done` marker
# in $JOB (default /tmp/ssd_job). A later call of the same lease copies them to $OUT.
# Carry: .commit, gpu_wheels (GPU_WHEELS=gpu_wheels), data/text/english/{manifest.json,tokenizer,
# shards/train_000.bin,shards/val_000.bin}.
set -u
JOB=${JOB:-/tmp/ssd_job}
mkdir -p "$JOB"
source tools/gpu/setup.sh
{ time python3 -m ssd.training.train_pair pair=gpu logger=jsonl hydra.run.dir="$JOB/train"; } > "$JOB/train.log" 2>&1
{ time python3 -m ssd.bench experiment=bench_gpu logger=jsonl hydra.run.dir="$JOB/bench"; } > "$JOB/bench.log" 2>&1
{ time python3 -m ssd.kernels.bench --only gemm; } > "$JOB/gemm.log" 2>&1
touch "$JOB/done"
