# data_constrained: pre-training under a fixed token budget (Kim, Kotha, Liang, Hashimoto 2025).
DC_SCALE_EXP = $(if $(filter gpu,$(SCALE)),asymptote_gpu,asymptote_cpu)

.PHONY: reproduce-data_constrained fig-data-asymptote fig-data_constrained-asymptote data_constrained-pack test-data_constrained

# cpu: start afresh (runs resume from their checkpoints in a kept run dir, which is what a long gpu sweep wants).
reproduce-data_constrained: $(STAMP)  ## data_constrained: recipes x sizes, data law, ensembles, distillation; fits + figures at SCALE
	$(if $(filter cpu,$(SCALE)),rm -rf outputs/data_constrained/sweep_cpu)
	$(PY) -m data_constrained.sweep experiment=$(DC_SCALE_EXP) hydra.run.dir=outputs/data_constrained/sweep_$(SCALE)
	$(PY) -m data_constrained.fit scale=$(SCALE) hydra.run.dir=outputs/data_constrained/fit_$(SCALE)
	$(PY) -m data_constrained.plot --scale $(SCALE)

fig-data-asymptote: reproduce-data_constrained  ## data_constrained: the asymptote / data-efficiency figure (alias of reproduce)

fig-data_constrained-asymptote: fig-data-asymptote  ## data_constrained: same as fig-data-asymptote

data_constrained-pack: $(STAMP)  ## data_constrained: pack 20M English + 4M code tokens into data/packed/ for a GPU machine
	$(PY) -m data_constrained.data pack --corpus english --train-tokens 20000000 --out data/packed/english_20m
	$(PY) -m data_constrained.data pack --corpus code --train-tokens 4000000 --eval-tokens 500000 --out data/packed/code_4m

test-data_constrained: $(STAMP)  ## data_constrained: its tests only
	$(PY) -m pytest tests/data_constrained -q

REPRODUCE_TARGETS += reproduce-data_constrained
FIG_TARGETS += fig-data-asymptote

# ---------------------------------------------------------------------------------------------------------------
# The GPU campaign (issue #16): configs/data_constrained/experiment/campaign_gpu.yaml as chunks of <= 9 minutes
# on one H200, each on a bare machine. The campaign is adaptive (coordinate descent per recipe and budget, then
# replicates, distillation, continued pre-training), so every chunk is the same command: it runs whatever the
# committed state asks for next. `make dc-gpu-estimate` replays the whole campaign on a synthetic loss surface
# with the cost model's priors (MFU 12% m6 .. 38% m150 of 989 TFLOP/s, 60 s compile per shape per chunk, 45 s
# machine start); at the time of writing it says 41 chunks, ~239 runs, ~340 device-minutes (~5.7 h). The real
# count follows the real losses; `make dc-gpu-plan` lists what is pending now.
#
#   1. here, once:  make wheelhouse && make dc-gpu-pack      (data/dc_gpu: xz-packed tokens + 3 wheels, <= 40 MiB)
#   2. per chunk:   run on the device, carry [data/dc_gpu], timeout 600:
#                       make dc-gpu-chunk PY=python3
#                   the files under $OUT come back: dc_<chunk>_<n>.tar (the runs), chunk.log, inductor_cache.tar
#   3. here:        make dc-gpu-ingest FROM=<files_at>       (unpacks the runs into results/gpu_runs, rewrites
#                                                             index.json; commit both; optionally copy
#                                                             inductor_cache.tar to data/dc_gpu/ for the next chunk)
#   repeat 2-3 until `make dc-gpu-plan` says complete, then: make dc-gpu-report  (fit + figures)
DC_GPU = data/dc_gpu
DC_GPU_EXP = experiment=campaign_gpu
DC_GPU_MAX_MIB ?= 40
DC_WHEELS = hydra_core-1.3.8 omegaconf-2.3.1 antlr4_python3_runtime-4.9.3
DC_CHUNK_S ?= 540

.PHONY: dc-gpu-pack dc-gpu-chunk dc-gpu-ingest dc-gpu-plan dc-gpu-estimate dc-gpu-report

dc-gpu-pack: $(STAMP)  ## data_constrained: the campaign's carried folder data/dc_gpu (uncapped corpus, code, wheels)
	$(PY) -m common.data.text build --corpus english --max-bytes 0 --out data/text/english_full
	$(PY) -m common.data.text build --corpus code --max-bytes 0 --tokenizer-from data/text/english_full --out data/text/code_en
	$(PY) -m data_constrained.data pack --corpus english --source data/text/english_full --train-tokens 24000000 --eval-tokens 0 --compress --out $(DC_GPU)/english
	$(PY) -m data_constrained.data pack --corpus code --source data/text/code_en --train-tokens 4000000 --eval-tokens 0 --compress --out $(DC_GPU)/code
	mkdir -p $(DC_GPU)/wheels && for w in $(DC_WHEELS); do cp wheelhouse/$$w-*.whl $(DC_GPU)/wheels/ || exit 1; done
	@size=$$(du -sm $(DC_GPU) | cut -f1); echo "$(DC_GPU): $$size MiB (limit $(DC_GPU_MAX_MIB): the tree travels too)"; \
	  test $$size -le $(DC_GPU_MAX_MIB) || { echo "ERROR: $(DC_GPU) is larger than $(DC_GPU_MAX_MIB) MiB" >&2; exit 1; }

# On the device (bare): install the 3 wheels the image lacks, reuse a carried compile cache, run one chunk, send the
# compile cache back when it is small enough to carry (<= 15 MiB; $OUT takes 64 MiB in all, the bundles <= 45).
dc-gpu-chunk:  ## data_constrained: ONE chunk of the GPU campaign (on the device; results to $OUT)
	test -n "$$OUT" || { echo "ERROR: OUT is not set (the device's output folder)" >&2; exit 2; }
	$(PY) -m pip install -q --no-index --no-deps --no-compile --target /tmp/dc_site $(DC_GPU)/wheels/*.whl
	mkdir -p /tmp/dc_inductor && if [ -f $(DC_GPU)/inductor_cache.tar ]; then tar -xf $(DC_GPU)/inductor_cache.tar -C /tmp/dc_inductor; fi
	set -o pipefail; PYTHONPATH=/tmp/dc_site PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/dc_inductor DC_RESULTS_OUT=$$OUT \
	  $(PY) -m data_constrained.sweep $(DC_GPU_EXP) time_budget_s=$(DC_CHUNK_S) hydra.run.dir=/tmp/dc_chunk 2>&1 | tee $$OUT/chunk.log
	tar -cf /tmp/inductor_cache.tar -C /tmp/dc_inductor . && if [ $$(stat -c %s /tmp/inductor_cache.tar) -le 15728640 ]; then cp /tmp/inductor_cache.tar $$OUT/inductor_cache.tar; fi

dc-gpu-ingest: $(STAMP)  ## data_constrained: unpack chunk bundles (FROM=<folder with dc_*.tar>) into results/gpu_runs
	test -n "$(FROM)" || { echo "usage: make dc-gpu-ingest FROM=<folder holding dc_*.tar>" >&2; exit 2; }
	$(PY) -m data_constrained.campaign ingest $(DC_GPU_EXP) $(FROM)

dc-gpu-plan: $(STAMP)  ## data_constrained: the GPU campaign's pending runs and estimates (writes results/gpu_runs/index.json)
	$(PY) -m data_constrained.campaign plan $(DC_GPU_EXP)

dc-gpu-estimate: $(STAMP)  ## data_constrained: chunks and device-minutes of the whole GPU campaign (synthetic dry run)
	$(PY) -m data_constrained.campaign simulate $(DC_GPU_EXP) time_budget_s=$(DC_CHUNK_S)

dc-gpu-report: $(STAMP)  ## data_constrained: fit the GPU campaign -> results/campaign_gpu.json + figures
	$(PY) -m data_constrained.campaign fit $(DC_GPU_EXP)
	$(PY) -m data_constrained.campaign plot $(DC_GPU_EXP)
