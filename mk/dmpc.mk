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
		export_policies=experiments/dmpc/policies/hopper_$(SCALE) $(DMPC_LOG)
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

# distillation (issue 15): reproduce-dmpc's hopper-medium models -> the planner distilled into an MLP policy (DAgger
# rounds), results/distill_<scale>.json, then dmpc.evaluate of planner, student and BC under the same protocol
DMPC_HOPPER_MODELS = $(DMPC_DATA)/hopper_$(SCALE)/models/medium
FIG_TARGETS += fig-dmpc-distill
.PHONY: fig-dmpc-distill

fig-dmpc-distill: $(STAMP)  ## dmpc: the planner distilled into a fast MLP policy, scored (after reproduce-dmpc)
	@test -f $(DMPC_HOPPER_MODELS)/model_set.json || { echo "error: no hopper-medium models:" \
		"$(DMPC_HOPPER_MODELS)/model_set.json is missing; run \`make reproduce-dmpc SCALE=$(SCALE)\` first" >&2; exit 2; }
	$(PY) -m dmpc.distill task=hopper dataset=medium scale=$(SCALE) write_results=true $(DMPC_LOG)
	$(PY) -m dmpc.evaluate experiment=distill_eval scale=$(SCALE) $(DMPC_LOG)
	$(PY) -m dmpc.plot

test-dmpc: $(STAMP)  ## dmpc: the package's tests (CPU, ~2 min on 2 cores)
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

# --- the data factory (issue 14): behaviour policies + 15 D4RL-shaped datasets ------------------------------------
# configs/dmpc/experiment/data_factory.yaml; at SCALE=cpu a smoke-sized run of the same pipeline (minutes).
BENCH_TARGETS += bench-dmpc
.PHONY: bench-dmpc dmpc-data-factory dmpc-sbx-site dmpc-gpu-wheels dmpc-gpu-bench dmpc-gpu-train dmpc-gpu-datasets \
	dmpc-gpu-unpack

# cpu: its own workspace, policies not exported (the committed cpu policies are reproduce-dmpc's hopper_cpu)
DMPC_FACTORY_ARGS_cpu = "workspace='data/dmpc/factory_cpu/{task}'" export_policies=
dmpc-data-factory: $(STAMP)  ## dmpc: SAC for hopper+walker2d+halfcheetah in one run, 15 datasets, results/datasets.json
	$(PY) -m dmpc.collect experiment=data_factory scale=$(SCALE) mode=train time_budget_s=0 \
		$(DMPC_FACTORY_ARGS_$(SCALE)) $(DMPC_LOG)
	$(PY) -m dmpc.collect experiment=data_factory scale=$(SCALE) mode=datasets $(DMPC_FACTORY_ARGS_$(SCALE)) $(DMPC_LOG)

DMPC_SBX_SITE = data/dmpc/sbx_site
dmpc-sbx-site: $(STAMP)  ## dmpc: sbx-rl 0.28.0 + stable-baselines3 + tfp-nightly into data/dmpc/sbx_site (not into .venv)
	$(PY) -m pip install -q --no-deps --target $(DMPC_SBX_SITE) sbx-rl==0.28.0 stable-baselines3==2.9.2 \
		tfp-nightly==0.26.0.dev20261027 decorator==5.3.1 gast==0.7.0

bench-dmpc: $(STAMP)  ## dmpc: ms per SAC update / us per env step, ours vs sbx-rl -> results/trainer_costs_$(SCALE).json
	PYTHONPATH=$(CURDIR)/$(DMPC_SBX_SITE) $(PY) -m dmpc.bench scale=$(SCALE)

# On the GPU node (one H200, the image's python3, no .venv): each command below is one `run` of < 9 minutes that
# carries data/dmpc/wheels and the run folder, and returns its state as <= 15 MiB parts in $(OUT). Here, after
# each run: `make dmpc-gpu-unpack FROM=<files_at>`. dmpc/README.md "GPU data factory" has the sequence. A pack
# replaces the parts an earlier target of the same call left in $(OUT), so targets chain (the last one's state wins).
DMPC_WHEELS = data/dmpc/wheels
DMPC_GPU_RUN = data/dmpc/sac_gpu_hopper-walker2d-halfcheetah_s0
DMPC_GPU_PY ?= python3
DMPC_XLA_FLAGS ?= --xla_gpu_autotune_level=0
DMPC_GPU_ENV = PYTHONPATH=/tmp/dmpc-site:$(CURDIR) PYTHONUNBUFFERED=1 XLA_FLAGS=$(DMPC_XLA_FLAGS) \
	XLA_PYTHON_CLIENT_PREALLOCATE=false WANDB_MODE=disabled
DMPC_GPU_SETUP = $(DMPC_GPU_PY) -m pip install -q --no-index --no-deps --no-compile --target /tmp/dmpc-site \
	$(DMPC_WHEELS)/*.whl
DMPC_GPU_PACK = rm -f $(OUT)/dmpc.tar.*; ls -d $(DMPC_GPU_RUN) experiments/dmpc/policies/*_gpu experiments/dmpc/results/datasets.json \
	experiments/dmpc/results/trainer_costs_gpu.json 2>/dev/null | tar -c -T - | split -b 15m -d - $(OUT)/dmpc.tar.

dmpc-gpu-wheels:  ## dmpc: the 8 wheels (11 MB) the GPU image lacks for collect (mujoco, gymnasium, hydra) -> data/dmpc/wheels
	mkdir -p $(DMPC_WHEELS)
	cp wheelhouse/mujoco-4.0.0-py3-none-any.whl wheelhouse/mujoco_core-4.0.0-cp312-*.whl \
		wheelhouse/glfw-2.11.0-*.whl wheelhouse/gymnasium-1.4.0-*.whl wheelhouse/farama_notifications-0.0.6-*.whl \
		wheelhouse/hydra_core-1.3.8-*.whl wheelhouse/omegaconf-2.3.1-*.whl \
		wheelhouse/antlr4_python3_runtime-4.9.3-*.whl $(DMPC_WHEELS)/

dmpc-gpu-bench:  ## dmpc [GPU node]: results/trainer_costs_gpu.json (our fused update at 1 and 3 tasks, env steps)
	set -o pipefail; $(DMPC_GPU_SETUP) && $(DMPC_GPU_ENV) $(DMPC_GPU_PY) -m dmpc.bench scale=gpu 2>&1 \
		| tee $(OUT)/bench.log; status=$$?; $(DMPC_GPU_PACK); exit $$status

dmpc-gpu-train:  ## dmpc [GPU node]: one chunk (time_budget_s=420) of the 3-task SAC run; repeat until "done": true
	set -o pipefail; $(DMPC_GPU_SETUP) && $(DMPC_GPU_ENV) $(DMPC_GPU_PY) -m dmpc.collect experiment=data_factory \
		mode=train logger=jsonl $(DMPC_ARGS) 2>&1 | tee $(OUT)/train.log; status=$$?; $(DMPC_GPU_PACK); exit $$status

dmpc-gpu-datasets:  ## dmpc [GPU node]: the 15 datasets from the committed policies, manifests + results/datasets.json
	set -o pipefail; $(DMPC_GPU_SETUP) && $(DMPC_GPU_ENV) $(DMPC_GPU_PY) -m dmpc.collect experiment=data_factory \
		mode=datasets logger=jsonl scales.gpu.workers=15 $(DMPC_ARGS) 2>&1 | tee $(OUT)/datasets.log; \
		status=$$?; $(DMPC_GPU_PACK); exit $$status

# Planner models on the GPU node, one model per run (dmpc.train resumes: dmpc/README.md "Planner hardening"), all
# into one model dir per dataset: DMPC_MODEL=proposal, then dynamics, dynamics_1step, reward, value, bc, ensemble,
# each repeated until its log says "done": true. DMPC_DATASET is one dataset or several of the task ("medium
# medium-replay medium-expert": trained side by side, one vmapped fit per model). The datasets (> 64 MiB: they
# cannot travel) are regenerated on the node from the committed gpu policies when one is not there. A run carries
# data/dmpc/wheels and the model dirs' train_state/ (one FitState: 37 MiB for a gpu diffusion model with its Adam
# moments) and returns model_set.json, the finished <model>/ and the newest checkpoint of train_state/<model> of
# each dataset; checkpoints of more than 44 MiB in all do not travel (the log says so): they stay on the node, and
# the next call of the same lease continues from them. Earlier models stay here.
DMPC_TASK ?= hopper
DMPC_DATASET ?= medium
DMPC_MODEL ?= proposal
dmpc_comma := ,
dmpc_space := $(subst ,, )
DMPC_GPU_MODELS = $(foreach d,$(DMPC_DATASET),data/dmpc/$(DMPC_TASK)_gpu/models/$(d))
DMPC_GPU_DATASET = $(foreach d,$(DMPC_DATASET),data/dmpc/$(DMPC_TASK)_gpu/datasets/$(DMPC_TASK)-$(d).npz)
dmpc_datasets = [$(subst $(dmpc_space),$(dmpc_comma),$(strip $(DMPC_DATASET)))]
dmpc_several = $(word 2,$(DMPC_DATASET))
DMPC_GPU_MODELS_PACK = rm -f $(OUT)/dmpc.tar.*; \
	list=$$(ls -d $(foreach m,$(DMPC_GPU_MODELS),$(m)/model_set.json $(m)/$(DMPC_MODEL) $(m)/train_state/run_config.json) \
		2>/dev/null); \
	ckpts=$$(for m in $(DMPC_GPU_MODELS); do ls -d $$m/train_state/$(DMPC_MODEL)/step_*.safetensors 2>/dev/null | tail -n 1; done); \
	if [ -n "$$ckpts" ] && [ $$(du -cm $$ckpts | tail -n 1 | cut -f1) -gt 44 ]; then \
		echo "dmpc: the checkpoints ($$(du -cm $$ckpts | tail -n 1 | cut -f1) MiB) stay on the node for the next call of this lease"; \
		ckpts=; fi; \
	printf '%s\n' $$list $$ckpts | grep . | tar -c -T - | split -b 15m -d - $(OUT)/dmpc.tar.
.PHONY: dmpc-gpu-models

dmpc-gpu-models:  ## dmpc [GPU node]: one 420 s chunk of one model (DMPC_MODEL=proposal, ...) on DMPC_DATASET (one or several); repeat until "done": true
	set -o pipefail; $(DMPC_GPU_SETUP) && { ls $(DMPC_GPU_DATASET) >/dev/null 2>&1 || $(DMPC_GPU_ENV) $(DMPC_GPU_PY) \
		-m dmpc.collect task=$(DMPC_TASK) scale=gpu mode=datasets datasets=$(dmpc_datasets) \
		policies_dir=experiments/dmpc/policies/$(DMPC_TASK)_gpu scales.gpu.workers=15 logger=jsonl; } 2>&1 \
		| tee $(OUT)/datasets.log && $(DMPC_GPU_ENV) $(DMPC_GPU_PY) -m dmpc.train task=$(DMPC_TASK) \
		$(if $(dmpc_several),datasets=$(dmpc_datasets),dataset=$(DMPC_DATASET)) scale=gpu models=[$(DMPC_MODEL)] \
		$(if $(dmpc_several),,model_dir=$(DMPC_GPU_MODELS)) time_budget_s=420 \
		logger=jsonl $(DMPC_ARGS) 2>&1 | tee $(OUT)/train_$(DMPC_MODEL).log; status=$$?; $(DMPC_GPU_MODELS_PACK); \
		exit $$status

# the SAC run dir is replaced whole; of a model dir, train_state/ and the model folders the archive holds
dmpc-gpu-unpack:  ## dmpc: unpack what a dmpc-gpu-* run returned (FROM=<files_at>) into data/dmpc and experiments/dmpc
	@test -n "$(FROM)" || { echo "usage: make dmpc-gpu-unpack FROM=<the run's files_at folder>" >&2; exit 2; }
	list=$$(cat $(FROM)/dmpc.tar.* | tar -t); \
	if grep -q '^$(DMPC_GPU_RUN)/' <<< "$$list"; then rm -rf $(DMPC_GPU_RUN); fi; \
	for dir in $$(grep -oE '^data/dmpc/[^/]+_gpu/models/[^/]+/' <<< "$$list" | sort -u); do \
		rm -rf $${dir}train_state $$(grep -xE "$${dir}[^/]+/" <<< "$$list"); done
	cat $(FROM)/dmpc.tar.* | tar -x
	@ls -la $(DMPC_GPU_RUN) 2>/dev/null; ls experiments/dmpc/policies
