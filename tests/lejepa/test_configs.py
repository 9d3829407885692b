"""Every entry point's config composes (cpu default and gpu experiments) and bad values name the key."""

import pytest

from common.config import ConfigError, compose
from lejepa.collect import CollectConfig
from lejepa.plan import PlanConfig
from lejepa.pretrain import PretrainConfig
from lejepa.surprise import SurpriseConfig
from lejepa.train import TrainConfig

ENTRIES = {"pretrain": PretrainConfig, "collect": CollectConfig, "train": TrainConfig, "plan": PlanConfig,
           "surprise": SurpriseConfig}
GPU = {"pretrain": ["pretrain_gpu"], "collect": ["two_room_data_gpu", "push_t_data_gpu", "reacher_data_gpu"],
       "train": ["two_room_gpu", "push_t_gpu", "reacher_gpu"], "plan": ["plan_gpu"], "surprise": ["surprise_gpu"]}


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_default_and_gpu_configs_compose(entry):
    extra = ["ckpt=/nowhere"] if entry in ("plan", "surprise") else []
    cfg = compose("lejepa", entry, ENTRIES[entry], ["logger=jsonl", *extra])
    assert cfg.scale == "cpu"
    for experiment in GPU[entry]:
        gpu = compose("lejepa", entry, ENTRIES[entry], ["logger=jsonl", f"+experiment={experiment}", *extra])
        assert gpu.scale == "gpu"


@pytest.mark.parametrize("entry,experiment,env", [
    ("collect", "push_t_data_cpu", "push_t"), ("collect", "reacher_data_cpu", "reacher"),
    ("train", "push_t_cpu", "push_t"), ("train", "reacher_cpu", "reacher"),
])
def test_cpu_env_experiments_compose(entry, experiment, env):
    cfg = compose("lejepa", entry, ENTRIES[entry], ["logger=jsonl", f"+experiment={experiment}"])
    assert cfg.scale == "cpu"
    assert (cfg.env if entry == "collect" else cfg.data.env) == env


def test_paper_size_world_model_has_about_15m_parameters():
    from lejepa.models.encoder import count_parameters
    from lejepa.models.lewm import WorldModel

    cfg = compose("lejepa", "train", TrainConfig, ["logger=jsonl", "+experiment=two_room_gpu"])
    model = WorldModel(cfg.model)
    enc, pred = count_parameters(model.encoder), count_parameters(model.predictor)
    assert 5e6 < enc < 7e6  # ViT-Tiny (~5M) + BatchNorm projector
    assert 8e6 < pred < 13e6  # 6-layer AdaLN-zero predictor (~10M)
    assert 13e6 < enc + pred < 19e6


@pytest.mark.parametrize("entry,override,key", [
    ("train", "model.objective=byol", "model.objective"),
    ("train", "model.sigreg_lambda=-1", "model.sigreg_lambda"),
    ("train", "model.predictor.latent_dim=7", "model.predictor.latent_dim"),
    ("pretrain", "views=1", "views"),
    ("pretrain", "data.source=cifar", "data.source"),
    ("collect", "policy=greedy", "policy"),
    ("collect", "env=atari", "env"),
    ("plan", "planner.method=grid", "planner.method"),
    ("plan", "planner.elites=1", "planner.elites"),
    ("surprise", "events=[explode]", "events[]"),
])
def test_bad_values_name_the_key(entry, override, key):
    extra = ["ckpt=/nowhere"] if entry in ("plan", "surprise") else []
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        compose("lejepa", entry, ENTRIES[entry], ["logger=jsonl", override, *extra])
