# dmpc: Diffusion Model Predictive Control (JAX). SCALE=cpu (default) or gpu selects the size blocks in configs/dmpc.
DMPC_LOG ?= logger=wandb_offline
DMPC_DATA = $(CURDIR)/data/dmpc
DMPC_WALKER = $(DMPC_DATA)/walker2d_$(SCALE)
DMPC_ANKLE = $(DMPC_DATA)/walker2d_broken_ankle_$(SCALE)

REPRODUCE_TARGETS += reproduce-dmpc
FIG_TARGETS += fig-dmpc-d4rl fig-dmpc-jump fig-dmpc-broken-ankle

.PHONY: reproduce-dmpc fig-dmpc-d4rl fig-dmpc-d4rl-table fig-dmpc-jump fig-dmpc-broken-ankle dmpc-walker2d test-dmpc

reproduce-dmpc: $(STAMP)  ## dmpc: hopper-medium from our SAC -> D-MPC vs MBOP vs BC vs behaviour (results JSON + figure)
	$(PY) -m dmpc.collect task=hopper scale=$(SCALE) datasets=[random,medium,medium-replay,medium-expert] \
		export_policies=$(CURDIR)/experiments/dmpc/policies/hopper_$(SCALE) $(DMPC_LOG)
	$(PY) -m dmpc.train task=hopper dataset=medium scale=$(SCALE) $(DMPC_LOG)
	$(PY) -m dmpc.evaluate task=hopper dataset=medium scale=$(SCALE) methods=[dmpc,dmpc_1step,mbop,bc,behaviour] $(DMPC_LOG)
	$(PY) -m dmpc.plot

fig-dmpc-d4rl: $(STAMP)  ## dmpc: redraw the D4RL-style figures from experiments/dmpc/results
	$(PY) -m dmpc.plot

dmpc-walker2d: $(STAMP)
	$(PY) -m dmpc.collect task=walker2d scale=$(SCALE) datasets=[medium] $(DMPC_LOG)
	$(PY) -m dmpc.train task=walker2d dataset=medium scale=$(SCALE) models=[proposal,dynamics,reward,value,bc] $(DMPC_LOG)

fig-dmpc-jump: dmpc-walker2d  ## dmpc: Walker2d jump reward passed to the planner at run time (no retraining)
	$(PY) -m dmpc.evaluate experiment=jump scale=$(SCALE) $(DMPC_LOG)
	$(PY) -m dmpc.plot

fig-dmpc-broken-ankle: dmpc-walker2d  ## dmpc: broken-ankle Walker2d, D-MPC with vs without dynamics fine-tuning
	$(PY) -m dmpc.collect task=walker2d_broken_ankle mode=play scale=$(SCALE) $(DMPC_LOG)
	$(PY) -m dmpc.train task=walker2d_broken_ankle dataset=play scale=$(SCALE) models=[dynamics] \
		finetune_from=$(DMPC_WALKER)/models/medium model_dir=$(DMPC_ANKLE)/models/finetuned $(DMPC_LOG)
	$(PY) -m dmpc.evaluate experiment=broken_ankle scale=$(SCALE) \
		+extra_model_dirs.finetuned=$(DMPC_ANKLE)/models/finetuned $(DMPC_LOG)
	$(PY) -m dmpc.plot

test-dmpc: $(STAMP)  ## dmpc: the package's tests (CPU, < 90 s)
	$(PY) -m pytest tests/dmpc -q

DMPC_TASKS ?= hopper halfcheetah walker2d
DMPC_DATASETS ?= medium medium-replay medium-expert
FIG_TARGETS += fig-dmpc-d4rl-table

fig-dmpc-d4rl-table: $(STAMP)  ## dmpc: the D4RL-style table (3 tasks x 3 datasets; meant for SCALE=gpu, hours on a CPU)
	for task in $(DMPC_TASKS); do \
		$(PY) -m dmpc.collect task=$$task scale=$(SCALE) datasets=[random,medium,medium-replay,medium-expert,expert] \
			export_policies=$(CURDIR)/experiments/dmpc/policies/$${task}_$(SCALE) $(DMPC_LOG) || exit 1; \
		for ds in $(DMPC_DATASETS); do \
			$(PY) -m dmpc.train task=$$task dataset=$$ds scale=$(SCALE) $(DMPC_LOG) || exit 1; \
			$(PY) -m dmpc.evaluate task=$$task dataset=$$ds scale=$(SCALE) methods=[dmpc,dmpc_1step,mbop,bc,behaviour] \
				$(DMPC_LOG) || exit 1; \
		done; \
	done
	$(PY) -m dmpc.plot
