#!/usr/bin/env bash
# One device lease, run detached (setsid): train our pair (pair=gpu), run the one-run benchmark (bench_gpu), then
# the skinny-GEMM sweep. Results land in experiments/ssd/results/ of the machine's tree; logs and a `done` marker
# in $JOB (default /tmp/ssd_job), with $JOB/results.tgz: the results files written since the start (a later call's
# tree sync may overwrite the tracked files in experiments/, so a later call of the same lease copies the tarball).
# The whole job takes ~11 min: start it with `setsid` in a first call that then sleeps ~570 s, and make the collecting
# call (wait for $JOB/done, copy $JOB/*.log and results.tgz to $OUT) at once: the machine goes back 30 s after a call
# returns, with the trained pair and every result on it (2026-12-02: the bench ran, the collecting call came late).
# Carry: .commit, gpu_wheels (GPU_WHEELS=gpu_wheels), data/text/english/{manifest.json,tokenizer,
# shards/train_000.bin,shards/val_000.bin}.
set -u
JOB=${JOB:-/tmp/ssd_job}
mkdir -p "$JOB"
touch "$JOB/start"
snapshot() { find experiments/ssd/results -type f -newer "$JOB/start" | tar czf "$JOB/results.tgz" -T -; }
source tools/gpu/setup.sh
{ time python3 -m ssd.training.train_pair pair=gpu logger=jsonl hydra.run.dir="$JOB/train"; } > "$JOB/train.log" 2>&1
snapshot
{ time python3 -m ssd.bench experiment=bench_gpu logger=jsonl hydra.run.dir="$JOB/bench"; } > "$JOB/bench.log" 2>&1
snapshot
{ time python3 -m ssd.kernels.bench --only gemm; } > "$JOB/gemm.log" 2>&1
snapshot
touch "$JOB/done"
