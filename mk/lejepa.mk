# lejepa: SIGReg (LeJEPA) + LeWorldModel. SCALE=cpu (default) or gpu selects the configs.
#
# World-model runs are named <model>_s<seed> (model: lewm, lambda0, pldm, pixel, patch_wm, lam<lambda> for the
# collapse sweep) and write experiments/lejepa/results/{train,plan,surprise}_<env>_<model>_s<seed>_<scale>.json;
# `python -m lejepa.summarize` collects them into worldmodel_<scale>.json (the README claims and figures read it).
LEJEPA_RUNS := data/lejepa/runs
LEJEPA_LOG := logger=jsonl
# dm_control 1.0.50 (Reacher, and OGBench Cube's scene builder) needs mujoco 3.17.0; the venv keeps mujoco 4.0.0
LEJEPA_MUJOCO_SITE := data/lejepa/mujoco_site
# one intra-op thread at cpu scale: on a shared 2-core machine two threads spin-wait and run 5-30x slower
LEJEPA_THREADS := $(if $(filter gpu,$(SCALE)),,OMP_NUM_THREADS=1)
LEJEPA_ENV := SDL_VIDEODRIVER=dummy MUJOCO_GL=egl $(LEJEPA_THREADS)
LEJEPA_DMC := PYTHONPATH=$(LEJEPA_MUJOCO_SITE)
# per model: the train overrides (lam<x>: the collapse sweep at sigreg_lambda=<x>)
lejepa_ov = $(if $(filter lewm,$(1)),,$(if $(filter lambda0,$(1)),model.sigreg_lambda=0,$(if $(filter pldm,$(1)),model.objective=pldm,$(if $(filter pixel,$(1)),model.objective=pixel,$(if $(call lejepa_sweep,$(1)),model.sigreg_lambda=$(patsubst lam%,%,$(1)),))))) $(if $(filter lewm lambda0 lam%,$(1)),diagnostics.every=$(LEJEPA_DIAG),)
# collapse-sweep runs (lam<x>, not lambda0) are trained only
lejepa_sweep = $(filter-out lambda%,$(filter lam%,$(1)))
lejepa_comma := ,
lejepa_exp = $(if $(filter patch_wm,$(2)),'+experiment=[$(1)_$(SCALE)$(lejepa_comma)patch_wm_$(SCALE)]' model.patch_encoder_ckpt=$(LEJEPA_RUNS)/$(1)/lewm_s$(3),+experiment=$(1)_$(SCALE))
lejepa_site = $(if $(filter reacher cube,$(1)),$(LEJEPA_DMC))
LEJEPA_DIAG = $(if $(filter gpu,$(SCALE)),500,100)

.PHONY: reproduce-lejepa fig-lejepa-collapse fig-lejepa-worldmodel fig-lejepa-baselines fig-lejepa-surprise \
        fig-lejepa-planning fig-lejepa-pusht fig-lejepa-reacher fig-lejepa-cube fig-lejepa-patchwm bench-lejepa \
        lejepa-report lejepa-cube-run lejepa-patchwm-run lejepa-mujoco-site lejepa-gpu-wheels lejepa-gpu-site lejepa-gpu-chunk lejepa-gpu-data lejepa-gpu-import

reproduce-lejepa: $(STAMP) fig-lejepa-collapse fig-lejepa-worldmodel fig-lejepa-baselines fig-lejepa-pusht fig-lejepa-reacher fig-lejepa-patchwm  ## lejepa: SIGReg vs lambda=0 (Fashion-MNIST); LeWM, its baselines and the collapse sweep on Two-Room; LeWM on Push-T and DMC Reacher: planning, probing, surprise
	$(MAKE) lejepa-report

fig-lejepa-collapse: $(STAMP)  ## lejepa: LeJEPA with SIGReg vs lambda=0 on Fashion-MNIST (probe accuracy, embedding rank)
	$(LEJEPA_THREADS) $(PY) -m lejepa.pretrain $(if $(filter gpu,$(SCALE)),+experiment=pretrain_gpu) $(LEJEPA_LOG) scale=$(SCALE) result_name=pretrain_sigreg
	$(LEJEPA_THREADS) $(PY) -m lejepa.pretrain $(if $(filter gpu,$(SCALE)),+experiment=pretrain_gpu) $(LEJEPA_LOG) scale=$(SCALE) result_name=pretrain_lambda0 sigreg_lambda=0
	$(PY) -m lejepa.plot --scale $(SCALE) --only pretrain

# collect an env's dataset: $(call lejepa_data,<env>)
define lejepa_data
	$(call lejepa_site,$(1)) $(LEJEPA_ENV) $(PY) -m lejepa.collect +experiment=$(1)_data_$(SCALE) $(LEJEPA_LOG)
endef

# train (fresh), plan and probe/surprise one world model: $(call lejepa_model,<env>,<model>,<seed>[,<stages>])
define lejepa_model
	rm -rf $(LEJEPA_RUNS)/$(1)/$(2)_s$(3)
	$(LEJEPA_ENV) $(PY) -m lejepa.train $(call lejepa_exp,$(1),$(2),$(3)) $(LEJEPA_LOG) seed=$(3) name=$(2)_s$(3) $(call lejepa_ov,$(2))
	$(if $(call lejepa_sweep,$(2)),,$(call lejepa_site,$(1)) $(LEJEPA_ENV) $(PY) -m lejepa.plan $(if $(filter gpu,$(SCALE)),+experiment=plan_gpu) $(LEJEPA_LOG) seed=$(3) ckpt=$(LEJEPA_RUNS)/$(1)/$(2)_s$(3) $(LEJEPA_PLAN_OV))
	$(if $(call lejepa_sweep,$(2)),,$(call lejepa_site,$(1)) $(LEJEPA_ENV) $(PY) -m lejepa.surprise $(if $(filter gpu,$(SCALE)),+experiment=surprise_gpu) $(LEJEPA_LOG) seed=$(3) ckpt=$(LEJEPA_RUNS)/$(1)/$(2)_s$(3) $(LEJEPA_SUR_OV))
endef

fig-lejepa-worldmodel: $(STAMP)  ## lejepa: LeWM vs lambda=0 on Two-Room + the collapse sweep (lambda 0, 0.01, 0.1, 1): CEM success, probes, surprise, collapse curves
	$(call lejepa_data,two_room)
	$(call lejepa_model,two_room,lewm,0)
	$(call lejepa_model,two_room,lambda0,0)
	$(call lejepa_model,two_room,lam0.01,0)
	$(call lejepa_model,two_room,lam0.1,0)
	$(call lejepa_model,two_room,lam1,0)
	$(MAKE) lejepa-report

fig-lejepa-baselines: $(STAMP)  ## lejepa: PLDM (its 7-term loss) and pixel-reconstruction baselines on Two-Room (after fig-lejepa-worldmodel's data)
	$(call lejepa_model,two_room,pldm,0)
	$(call lejepa_model,two_room,pixel,0)
	$(MAKE) lejepa-report

fig-lejepa-surprise: fig-lejepa-worldmodel  ## lejepa: surprise (prediction error with 3 frames of history) at teleport / colour-change events, AUROC

fig-lejepa-planning: fig-lejepa-worldmodel  ## lejepa: latent CEM planning success on held-out Two-Room trajectories

fig-lejepa-pusht: $(STAMP)  ## lejepa: LeWM on Push-T (gym-pusht, scripted demonstrations): collect, train, CEM planning, probes, surprise
	$(call lejepa_data,push_t)
	$(call lejepa_model,push_t,lewm,0)
	$(MAKE) lejepa-report

fig-lejepa-reacher: $(STAMP) lejepa-mujoco-site  ## lejepa: LeWM on DeepMind Control Reacher (dm_control, EGL): collect, train, CEM planning, probes, surprise
	$(call lejepa_data,reacher)
	$(call lejepa_model,reacher,lewm,0)
	$(MAKE) lejepa-report

# cpu scale: the cube scene renders a few frames per second on our CPUs, so fewer problems and surprise episodes
fig-lejepa-cube: $(STAMP) lejepa-mujoco-site  ## lejepa: LeWM on OGBench Cube (ogbench env, oracle data; slow on CPU)
	$(call lejepa_data,cube)
	$(MAKE) lejepa-cube-run $(if $(filter gpu,$(SCALE)),,LEJEPA_PLAN_OV="episodes=5" LEJEPA_SUR_OV="episodes=6 steps=6 probe_train_episodes=16")
	$(MAKE) lejepa-report

lejepa-cube-run:
	$(call lejepa_model,cube,lewm,0)

# the patch-token model plans over 3 x 16 patch tokens per candidate at cpu scale: 2 problems keep it to minutes
fig-lejepa-patchwm: $(STAMP)  ## lejepa: patch-token world model (DINO-WM kind) on the frozen Two-Room LeWM encoder: success and time per plan at the same CEM budget
	$(MAKE) lejepa-patchwm-run LEJEPA_PLAN_OV="$(if $(filter gpu,$(SCALE)),,episodes=2)"
	$(MAKE) lejepa-report

lejepa-patchwm-run:
	$(call lejepa_model,two_room,patch_wm,0)

lejepa-report: $(STAMP)  ## lejepa: worldmodel_<scale>.json from the per-run results, then the figures
	$(PY) -m lejepa.summarize --scale $(SCALE)
	$(PY) -m lejepa.plot --scale $(SCALE)

bench-lejepa: $(STAMP)  ## lejepa: SIGReg forward+backward time vs batch size and directions
	$(PY) -m lejepa.bench

# dm_control and OGBench with the packages of theirs the venv lacks (--no-deps: the venv's mujoco 4.0.0 stays)
LEJEPA_MUJOCO_PKGS := mujoco==3.17.0 dm-control==1.0.50 dm-env==1.6 dm-tree==0.1.10 ogbench==1.2.2 labmaze==1.0.6 \
  lxml==6.1.3
$(LEJEPA_MUJOCO_SITE)/.installed: mk/lejepa.mk
	rm -rf $(LEJEPA_MUJOCO_SITE)
	$(PY) -m pip install -q --no-deps --target $(LEJEPA_MUJOCO_SITE) $(LEJEPA_MUJOCO_PKGS)
	@echo "$(LEJEPA_MUJOCO_PKGS)" > $@

lejepa-mujoco-site: $(STAMP) $(LEJEPA_MUJOCO_SITE)/.installed  ## lejepa: mujoco 3.17.0 + dm_control + ogbench in data/lejepa/mujoco_site (PyPI, once)
# `make test` installs it too, so that the DMC Reacher and OGBench Cube env tests run in CI instead of skipping
test: $(LEJEPA_MUJOCO_SITE)/.installed

# ---- GPU runs (README "GPU runs"): a bare H200 node without PyPI; the wheels travel in data/lejepa/gpu_wheels ----
LEJEPA_GPU_PY ?= python3
LEJEPA_GPU_SITE ?= /tmp/lejepa_site
LEJEPA_WHEELS := data/lejepa/gpu_wheels
LEJEPA_PLAT := --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
  --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64
LEJEPA_W_BASE := hydra-core==1.3.8 omegaconf==2.3.1
LEJEPA_W_PUSH_T := gymnasium==1.4.0 farama-notifications==0.0.4 gym-pusht==0.1.8 pygame==2.6.1 pymunk==6.11.1 \
  cffi==2.1.1 pycparser==3.12 shapely==2.2.0
LEJEPA_W_DMC := gymnasium==1.4.0 farama-notifications==0.0.4 mujoco==3.17.0 glfw==2.11.0 pyopengl==3.1.10 \
  dm-env==1.6 dm-tree==0.1.10 ogbench==1.2.2

# three sets (each <= 45 MiB, so one set plus the tree stays under the 64 MiB a call carries): two_room, push_t, dmc
lejepa-gpu-wheels: $(STAMP)  ## lejepa: cp312 wheels for the GPU node: data/lejepa/gpu_wheels/{two_room,push_t,dmc} (+ dm_control without its locomotion/dog assets)
	rm -rf $(LEJEPA_WHEELS) && mkdir -p $(LEJEPA_WHEELS)/two_room $(LEJEPA_WHEELS)/push_t $(LEJEPA_WHEELS)/dmc
	test -f wheelhouse/antlr4_python3_runtime-4.9.3-py3-none-any.whl || bash tools/wheelhouse.sh --minimal
	for set in two_room push_t dmc; do \
	  cp wheelhouse/antlr4_python3_runtime-4.9.3-py3-none-any.whl $(LEJEPA_WHEELS)/$$set/ && \
	  $(PY) -m pip download -q --no-deps $(LEJEPA_PLAT) -d $(LEJEPA_WHEELS)/$$set $(LEJEPA_W_BASE) || exit 1; done
	$(PY) -m pip download -q --no-deps $(LEJEPA_PLAT) -d $(LEJEPA_WHEELS)/push_t $(LEJEPA_W_PUSH_T)
	$(PY) -m pip download -q --no-deps $(LEJEPA_PLAT) -d $(LEJEPA_WHEELS)/dmc $(LEJEPA_W_DMC)
	rm -rf $(LEJEPA_WHEELS)/.dmc && $(PY) -m pip install -q --no-deps --target $(LEJEPA_WHEELS)/.dmc dm-control==1.0.50
	tar -C $(LEJEPA_WHEELS)/.dmc --exclude='dm_control/locomotion/walkers/assets' --exclude='dm_control/locomotion/soccer' \
	  --exclude='dm_control/suite/dog_assets' --exclude='dm_control/mujoco/testing' --exclude='dm_control/blender' \
	  --exclude='dm_control/mjcf/test_assets' --exclude='*/__pycache__' -cJf $(LEJEPA_WHEELS)/dmc/dm_control-1.0.50-trimmed.tar.xz \
	  dm_control dm_control-1.0.50.dist-info
	rm -rf $(LEJEPA_WHEELS)/.dmc && du -sh $(LEJEPA_WHEELS)/*

# on the GPU node (no $(STAMP): the image's python3 holds torch): install one carried wheel set into a site folder
lejepa-gpu-site:  ## lejepa (GPU node): pip-install the carried wheels of LEJEPA_SET=two_room|push_t|dmc into /tmp/lejepa_site
	test -n "$(LEJEPA_SET)" || { echo "set LEJEPA_SET=two_room|push_t|dmc"; exit 2; }
	test -f $(LEJEPA_GPU_SITE)/.$(LEJEPA_SET) || { $(LEJEPA_GPU_PY) -m pip install -q --no-index --no-deps --no-compile \
	  --target $(LEJEPA_GPU_SITE) $(LEJEPA_WHEELS)/$(LEJEPA_SET)/*.whl && \
	  { test ! -f $(LEJEPA_WHEELS)/$(LEJEPA_SET)/dm_control-1.0.50-trimmed.tar.xz || \
	    tar -xJf $(LEJEPA_WHEELS)/$(LEJEPA_SET)/dm_control-1.0.50-trimmed.tar.xz -C $(LEJEPA_GPU_SITE); } && \
	  touch $(LEJEPA_GPU_SITE)/.$(LEJEPA_SET); }

# one chunk on the GPU node: collect ENV's data if this node has none, then for each of MODELS: train (resuming a
# checkpoint left on this node), plan and surprise (STAGES selects), and tar the run's results into $(OUT)
ENV ?= push_t
MODELS ?= lewm
SEED ?= 0
STAGES ?= train plan surprise
TRAIN_ARGS ?=  # extra lejepa.train overrides of a chunk, e.g. "optim.steps=6000 max_wall_s=450"
OUT ?= data/lejepa/out
lejepa_gpu = PYTHONPATH=$(LEJEPA_GPU_SITE) SDL_VIDEODRIVER=dummy MUJOCO_GL=egl PAPERCLUB_GIT_COMMIT=$(PAPERCLUB_GIT_COMMIT) $(LEJEPA_GPU_PY)

# With `make -j<n>` the MODELS run side by side on the one GPU (each its own process; the data are memory-mapped, so
# their pages are shared); without it, one after the other.
lejepa-gpu-chunk lejepa-gpu-data lejepa-gpu-model-%: SCALE = gpu
lejepa-gpu-chunk: $(addprefix lejepa-gpu-model-,$(MODELS))  ## lejepa (GPU node): ENV=<env> MODELS="lewm pldm ..." SEED=<n> [STAGES="train plan surprise"] OUT=$OUT [-j3: side by side]

lejepa-gpu-data:
	test -f data/lejepa/$(ENV)/manifest.json || $(lejepa_gpu) -m lejepa.collect +experiment=$(ENV)_data_gpu $(LEJEPA_LOG)
	mkdir -p $(OUT)

lejepa-gpu-model-%: lejepa-gpu-data
	$(call lejepa_gpu_model,$*)

# patch_wm plans with the frozen encoder of this chunk's lewm: after it, also under -j
lejepa-gpu-model-patch_wm: $(if $(filter lewm,$(MODELS)),lejepa-gpu-model-lewm)

# one model of a chunk: train (resumes a checkpoint left on this node), plan, surprise, then a tar of its results
define lejepa_gpu_model
	$(if $(filter train,$(STAGES)),$(lejepa_gpu) -m lejepa.train $(call lejepa_exp,$(ENV),$(1),$(SEED)) $(LEJEPA_LOG) seed=$(SEED) name=$(1)_s$(SEED) $(call lejepa_ov,$(1)) $(TRAIN_ARGS))
	$(if $(call lejepa_sweep,$(1)),,$(if $(filter plan,$(STAGES)),$(lejepa_gpu) -m lejepa.plan +experiment=plan_gpu $(LEJEPA_LOG) seed=$(SEED) ckpt=$(LEJEPA_RUNS)/$(ENV)/$(1)_s$(SEED) $(if $(filter patch_wm,$(1)),planner.cost_chunk=1024)))
	$(if $(call lejepa_sweep,$(1)),,$(if $(filter surprise,$(STAGES)),$(lejepa_gpu) -m lejepa.surprise +experiment=surprise_gpu $(LEJEPA_LOG) seed=$(SEED) ckpt=$(LEJEPA_RUNS)/$(ENV)/$(1)_s$(SEED)))
	tar -cf $(OUT)/lejepa_$(ENV)_$(1)_s$(SEED).tar $$(ls experiments/lejepa/results/*_$(ENV)_$(1)_s$(SEED)_gpu.json)

endef

# back on this machine: unpack the tars a GPU call returned, then `make lejepa-report SCALE=gpu`
lejepa-gpu-import:  ## lejepa: unpack GPU result tars (TARS="path/*.tar") into experiments/lejepa/results
	for t in $(TARS); do tar -xf $$t || exit 1; done

REPRODUCE_TARGETS += reproduce-lejepa
FIG_TARGETS += fig-lejepa-collapse fig-lejepa-worldmodel fig-lejepa-baselines fig-lejepa-pusht fig-lejepa-reacher
BENCH_TARGETS += bench-lejepa
