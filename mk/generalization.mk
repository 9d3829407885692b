# generalization: Wilson (2025) Fig. 1 panels + Lotfi et al. (2022) compression bounds.
# SCALE=cpu (default) runs configs/generalization/experiment/<name>.yaml, SCALE=gpu runs <name>_gpu.yaml.
GEN_RUN = $(PY) -m generalization.run
GEN_EXP = $(1)$(if $(filter gpu,$(SCALE)),_gpu,)
GEN_ARGS ?=

.PHONY: reproduce-generalization fig-generalization-polynomial fig-generalization-benign \
	fig-generalization-double_descent fig-generalization-bound fig-generalization-flatness test-generalization \
	fig-generalization-benign_resnet fig-generalization-double_descent_resnet reproduce-generalization-resnet \
	fig-generalization-bound_resnet fig-generalization-bound_width

fig-generalization-polynomial: $(STAMP)  ## Fig. 1a-c: order-penalised 150th-order polynomial on simple/complex/noise data
	$(GEN_RUN) experiment=$(call GEN_EXP,polynomial) $(GEN_ARGS)
	$(PY) -m generalization.plot --only polynomial --scale $(SCALE)

fig-generalization-benign: $(STAMP)  ## Fig. 1d-e: GP + residual net on Fashion-MNIST with altered labels, marginal likelihood
	$(GEN_RUN) experiment=$(call GEN_EXP,benign) $(GEN_ARGS)
	$(PY) -m generalization.plot --only benign --scale $(SCALE)

fig-generalization-double_descent: $(STAMP)  ## Fig. 1f-g: double descent (nets, random features) + effective dimensionality
	$(GEN_RUN) experiment=$(call GEN_EXP,double_descent) $(GEN_ARGS)
	$(PY) -m generalization.plot --only double_descent --scale $(SCALE)

fig-generalization-bound: $(STAMP)  ## Lotfi et al.: subspace + quantization + arithmetic coding -> PAC-Bayes bound vs d and width
	$(GEN_RUN) experiment=$(call GEN_EXP,bound) $(GEN_ARGS)
	$(PY) -m generalization.plot --only bound --scale $(SCALE)

fig-generalization-flatness: $(STAMP)  ## flat-minima radius / log-volume proxy vs parameter count
	$(GEN_RUN) experiment=$(call GEN_EXP,flatness) $(GEN_ARGS)
	$(PY) -m generalization.plot --only flatness --scale $(SCALE)

# Conv-ResNet (models.ResNet, width-k) variants of panels e and f at cpu scale; the gpu configs already use it.
fig-generalization-benign_resnet: $(STAMP)  ## Fig. 1e with a small conv ResNet (cpu): altered labels, Laplace proxy
	$(GEN_RUN) experiment=benign_resnet_cpu $(GEN_ARGS)
	$(PY) -m generalization.plot --only benign --scale cpu

fig-generalization-double_descent_resnet: $(STAMP)  ## Fig. 1f with a width-k conv ResNet family (cpu), 20% label noise
	$(GEN_RUN) experiment=double_descent_resnet_cpu $(GEN_ARGS)
	$(PY) -m generalization.plot --only double_descent --scale cpu

fig-generalization-bound_resnet: $(STAMP)  ## compression bounds for the conv-ResNet width family (GPU config, one H100: minutes)
	$(GEN_RUN) experiment=bound_resnet_gpu $(GEN_ARGS)
	$(PY) -m generalization.plot --only bound --scale gpu

fig-generalization-bound_width: $(STAMP)  ## bound vs MLP width 32..2048 at d=2000, 60 passes + cosine decay (GPU config, one H100)
	$(GEN_RUN) experiment=bound_width_gpu $(GEN_ARGS)
	$(PY) -m generalization.plot --only bound --scale gpu

reproduce-generalization-resnet: fig-generalization-benign_resnet fig-generalization-double_descent_resnet  ## both conv-ResNet cpu variants

reproduce-generalization: fig-generalization-polynomial fig-generalization-benign fig-generalization-double_descent fig-generalization-bound fig-generalization-flatness  ## every generalization figure at SCALE (cpu by default)

test-generalization: $(STAMP)  ## the generalization package's tests
	$(PY) -m pytest tests/generalization -q

REPRODUCE_TARGETS += reproduce-generalization
FIG_TARGETS += fig-generalization-polynomial fig-generalization-benign fig-generalization-double_descent \
	fig-generalization-bound fig-generalization-flatness fig-generalization-benign_resnet \
	fig-generalization-double_descent_resnet
