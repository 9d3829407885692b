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
