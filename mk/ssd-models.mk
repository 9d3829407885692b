# ssd: our own target/draft pair and the Triton kernel benchmark (see ssd/training/, ssd/kernels/).

.PHONY: ssd-models ssd-pair-and-bench bench-ssd-kernels

ssd-models: $(STAMP)  ## train our target/draft pair at $(SCALE) into data/ssd/pair_$(SCALE)/{target,draft}
	$(PY) -m ssd.training.train_pair pair=$(SCALE)

ssd-pair-and-bench: $(STAMP)  ## ssd: train the pair, then the one benchmark run (SCALE=gpu: one device call, < 10 minutes)
	$(MAKE) ssd-models
	$(MAKE) bench-ssd

bench-ssd-kernels: $(STAMP)  ## time the Triton kernels against their torch references (needs CUDA)
	$(PY) -m ssd.kernels.bench

BENCH_TARGETS += bench-ssd-kernels
