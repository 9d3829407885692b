"""Every entry point's config composes (cpu default and gpu experiments), the GPU configs carry the authors'
settings, and bad values name the key."""

import pytest

from common.config import ConfigError, compose
from lejepa.collect import CollectConfig
from lejepa.plan import PlanConfig
from lejepa.pretrain import PretrainConfig
from lejepa.surprise import SurpriseConfig
from lejepa.train import TrainConfig

ENVS = ("two_room", "push_t", "reacher", "cube")
ENTRIES = {"pretrain": PretrainConfig, "collect": CollectConfig, "train": TrainConfig, "plan": PlanConfig,
           "surprise": SurpriseConfig}
GPU = {"pretrain": ["pretrain_gpu"], "collect": [f"{e}_data_gpu" for e in ENVS],
       "train": [f"{e}_gpu" for e in ENVS], "plan": ["plan_gpu"], "surprise": ["surprise_gpu"]}
CPU = {"collect": [f"{e}_data_cpu" for e in ENVS], "train": [f"{e}_cpu" for e in ENVS]}


def extra(entry):
    return ["ckpt=/nowhere"] if entry in ("plan", "surprise") else []


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_default_cpu_and_gpu_configs_compose(entry):
    cfg = compose("lejepa", entry, ENTRIES[entry], ["logger=jsonl", *extra(entry)])
    assert cfg.scale == "cpu"
    for experiment in GPU[entry]:
        assert compose("lejepa", entry, ENTRIES[entry], ["logger=jsonl", f"+experiment={experiment}",
                                                         *extra(entry)]).scale == "gpu"
    for experiment in CPU.get(entry, []):
        compose("lejepa", entry, ENTRIES[entry], ["logger=jsonl", f"+experiment={experiment}"])


@pytest.mark.parametrize("env", ENVS)
def test_gpu_training_is_the_authors_setup(env):
    """le-wm config/train/{lewm,model/lewm,data/*}.yaml and train.py."""
    cfg = compose("lejepa", "train", TrainConfig, ["logger=jsonl", f"+experiment={env}_gpu"])
    assert cfg.data.env == env and (cfg.data.frameskip, cfg.data.history, cfg.data.num_preds) == (5, 3, 1)
    m = cfg.model
    assert (m.sigreg_lambda, m.sigreg_directions, m.sigreg_knots, m.sigreg_per_step) == (0.09, 1024, 17, True)
    assert (m.encoder.image_size, m.encoder.patch_size, m.encoder.width, m.encoder.depth) == (224, 14, 192, 12)
    assert m.encoder.latent_dim == 192 and m.encoder.pixel_norm == "imagenet"
    assert (m.predictor.depth, m.predictor.heads, m.predictor.dim_head, m.predictor.dropout) == (6, 16, 64, 0.1)
    assert round(m.predictor.width * m.predictor.mlp_ratio) == 2048 and m.predictor.pred_proj_hidden == 2048
    assert m.predictor.action_dim == 5 * {"cube": 5}.get(env, 2)  # frameskip x env action dim
    o = cfg.optim
    assert (o.lr, o.weight_decay, o.batch_size, o.grad_clip, o.min_lr_ratio) == (5e-5, 1e-3, 128, 1.0, 0.0)
    assert o.warmup == max(1, int(0.01 * o.steps)) and cfg.dtype == "bf16"
    assert m.pldm_coeffs == {"pred": 1.0, "std": 18.0, "std_t": 0.7, "cov": 12.0, "cov_t": 0.0,
                             "temp_align": 0.2, "idm": 0.0}  # swm scripts/train/config/pldm.yaml


def test_gpu_evaluation_is_the_authors_protocol():
    """swm scripts/plan/config/*.yaml (eval, plan_config) and solver/cem.yaml."""
    cfg = compose("lejepa", "plan", PlanConfig, ["logger=jsonl", "ckpt=/x", "+experiment=plan_gpu"])
    p = cfg.planner
    assert (cfg.episodes, cfg.goal_offset, cfg.eval_budget) == (50, 25, 50)
    assert (p.method, p.samples, p.iterations, p.elites, p.init_std, p.min_std) == ("cem", 300, 30, 30, 1.0, 0.0)
    assert (p.horizon, p.receding, p.history, p.warm_start) == (5, 5, 3, True)


def test_paper_size_world_model_parameter_counts():
    from lejepa.models.encoder import count_parameters
    from lejepa.models.lewm import build_world_model

    cfg = compose("lejepa", "train", TrainConfig, ["logger=jsonl", "+experiment=two_room_gpu"])
    model = build_world_model(cfg.model)
    enc, pred = count_parameters(model.encoder), count_parameters(model.predictor)
    assert 5e6 < enc < 7e6  # ViT-Tiny (~5.5M) + BatchNorm projector (~0.8M)
    assert 10e6 < pred < 13e6  # 6 AdaLN-zero layers (16 x 64 heads, MLP 2048) + BatchNorm head
    assert 15e6 < enc + pred < 19e6  # the paper's "~15M"; the authors' layout counts ~18M


def test_patch_model_composes_after_the_env():
    cfg = compose("lejepa", "train", TrainConfig, ["logger=jsonl", "+experiment=[push_t_gpu,patch_wm_gpu]",
                                                   "model.patch_encoder_ckpt=/x"])
    assert cfg.model.objective == "patch_wm" and cfg.model.predictor.latent_dim == cfg.model.encoder.width
    with pytest.raises(ConfigError, match="model.patch_encoder_ckpt"):
        compose("lejepa", "train", TrainConfig, ["logger=jsonl", "+experiment=[push_t_gpu,patch_wm_gpu]"])


@pytest.mark.parametrize("entry,override,key", [
    ("train", "model.objective=byol", "model.objective"),
    ("train", "model.sigreg_lambda=-1", "model.sigreg_lambda"),
    ("train", "model.predictor.latent_dim=7", "model.predictor.latent_dim"),
    ("train", "model.predictor.action_dim=0", "model.predictor.action_dim"),
    ("train", "model.encoder.pixel_norm=zca", "model.encoder.pixel_norm"),
    ("train", "data.frameskip=0", "data.frameskip"),
    ("pretrain", "views=1", "views"),
    ("pretrain", "data.source=cifar", "data.source"),
    ("collect", "policy=greedy", "policy"),
    ("collect", "env=atari", "env"),
    ("plan", "planner.method=grid", "planner.method"),
    ("plan", "planner.elites=1", "planner.elites"),
    ("plan", "planner.receding=9", "planner.receding"),
    ("surprise", "events=[explode]", "events[]"),
])
def test_bad_values_name_the_key(entry, override, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        compose("lejepa", entry, ENTRIES[entry], ["logger=jsonl", override, *extra(entry)])
