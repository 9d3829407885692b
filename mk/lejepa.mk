# lejepa: SIGReg (LeJEPA) + LeWorldModel. SCALE=cpu (default) or gpu selects the configs.
LEJEPA_RUNS := data/lejepa/runs
LEJEPA_LOG := logger=jsonl
ifeq ($(SCALE),gpu)
LEJEPA_PRE := +experiment=pretrain_gpu
LEJEPA_TR := +experiment=two_room_gpu
LEJEPA_PLAN := +experiment=plan_gpu
LEJEPA_SUR := +experiment=surprise_gpu
LEJEPA_COL := +experiment=two_room_data_gpu
LEJEPA_LOG := logger=wandb_offline
endif
LEJEPA_ENV := SDL_VIDEODRIVER=dummy MUJOCO_GL=egl

.PHONY: reproduce-lejepa fig-lejepa-collapse fig-lejepa-worldmodel fig-lejepa-baselines fig-lejepa-surprise \
        fig-lejepa-planning bench-lejepa lejepa-data-two-room fig-lejepa-pusht fig-lejepa-reacher

reproduce-lejepa: $(STAMP) fig-lejepa-collapse fig-lejepa-worldmodel fig-lejepa-baselines fig-lejepa-pusht fig-lejepa-reacher  ## lejepa: SIGReg vs lambda=0 (Fashion-MNIST) + LeWM (and PLDM, pixel baselines) on Two-Room, LeWM on Push-T, Reacher: planning, probing, surprise

fig-lejepa-collapse: $(STAMP)  ## lejepa: LeJEPA with SIGReg vs lambda=0 on Fashion-MNIST (probe accuracy, embedding rank)
	$(PY) -m lejepa.pretrain $(LEJEPA_PRE) $(LEJEPA_LOG) scale=$(SCALE) result_name=pretrain_sigreg
	$(PY) -m lejepa.pretrain $(LEJEPA_PRE) $(LEJEPA_LOG) scale=$(SCALE) result_name=pretrain_lambda0 sigreg_lambda=0
	$(PY) -m lejepa.plot --scale $(SCALE) --only pretrain

lejepa-data-two-room: $(STAMP)
	$(PY) -m lejepa.collect $(LEJEPA_COL) $(LEJEPA_LOG) scale=$(SCALE)

# train (fresh), plan and probe/surprise one world model: $(call lejepa_model,<name>,<train overrides>)
define lejepa_model
	rm -rf $(LEJEPA_RUNS)/two_room/$(1)
	$(LEJEPA_ENV) $(PY) -m lejepa.train $(LEJEPA_TR) $(LEJEPA_LOG) scale=$(SCALE) name=$(1) $(2)
	$(LEJEPA_ENV) $(PY) -m lejepa.plan $(LEJEPA_PLAN) $(LEJEPA_LOG) scale=$(SCALE) ckpt=$(LEJEPA_RUNS)/two_room/$(1) result_name=plan_$(1)
	$(LEJEPA_ENV) $(PY) -m lejepa.surprise $(LEJEPA_SUR) $(LEJEPA_LOG) scale=$(SCALE) ckpt=$(LEJEPA_RUNS)/two_room/$(1) result_name=surprise_$(1)
endef

fig-lejepa-worldmodel: $(STAMP) lejepa-data-two-room  ## lejepa: LeWM (lambda=0.1) vs lambda=0 on Two-Room: CEM success, probes, surprise AUROC
	$(call lejepa_model,lewm,model.sigreg_lambda=0.1)
	$(call lejepa_model,lewm_lambda0,model.sigreg_lambda=0)
	$(PY) -m lejepa.plot --scale $(SCALE) --only planning,surprise,probing

fig-lejepa-baselines: $(STAMP) lejepa-data-two-room  ## lejepa: PLDM-style VICReg JEPA and pixel-reconstruction baselines on Two-Room
	$(call lejepa_model,pldm,model.objective=pldm)
	$(call lejepa_model,pixel,model.objective=pixel)
	$(PY) -m lejepa.plot --scale $(SCALE) --only planning,surprise,probing

fig-lejepa-surprise: fig-lejepa-worldmodel  ## lejepa: surprise (prediction error) at teleport / colour-change events, AUROC

fig-lejepa-planning: fig-lejepa-worldmodel  ## lejepa: latent CEM planning success on held-out Two-Room start/goal pairs

# LeWM end to end on one more env (cpu scale ~2 min each, so not in reproduce-lejepa): collect in its own process
# (EGL rendering and torch training once segfaulted together), train, CEM planning, probes + surprise.
# $(call lejepa_env,<env>,<experiment prefix>,<plan overrides>)
define lejepa_env
	$(LEJEPA_ENV) $(PY) -m lejepa.collect +experiment=$(2)_data_$(SCALE) $(LEJEPA_LOG)
	rm -rf $(LEJEPA_RUNS)/$(1)/lewm
	$(PY) -m lejepa.train +experiment=$(2)_$(SCALE) $(LEJEPA_LOG) name=lewm
	$(LEJEPA_ENV) $(PY) -m lejepa.plan $(if $(filter gpu,$(SCALE)),+experiment=plan_gpu) $(LEJEPA_LOG) scale=$(SCALE) ckpt=$(LEJEPA_RUNS)/$(1)/lewm result_name=plan_$(1)_lewm $(3)
	$(LEJEPA_ENV) $(PY) -m lejepa.surprise $(if $(filter gpu,$(SCALE)),+experiment=surprise_gpu) $(LEJEPA_LOG) scale=$(SCALE) ckpt=$(LEJEPA_RUNS)/$(1)/lewm result_name=surprise_$(1)_lewm
endef

fig-lejepa-pusht: $(STAMP)  ## lejepa: LeWM on Push-T (gym-pusht): collect, train, CEM planning success + time per plan, probes, surprise
	$(call lejepa_env,push_t,push_t)

# 40 env steps per plan: our noisy expert reaches 35% of targets in 20 steps, 80% in 40
fig-lejepa-reacher: $(STAMP)  ## lejepa: LeWM on Reacher-v5 (MuJoCo, EGL): collect, train, CEM planning success + time per plan, probes, surprise
	$(call lejepa_env,reacher,reacher,$(if $(filter gpu,$(SCALE)),,planner.max_steps=40))

bench-lejepa: $(STAMP)  ## lejepa: SIGReg forward+backward time vs batch size and directions
	$(PY) -m lejepa.bench

REPRODUCE_TARGETS += reproduce-lejepa
FIG_TARGETS += fig-lejepa-collapse fig-lejepa-worldmodel fig-lejepa-baselines fig-lejepa-pusht fig-lejepa-reacher
BENCH_TARGETS += bench-lejepa
