"""Model training: exactly `steps` steps, a held-out loss, the value model's tables, and a killed / budget-stopped
run that resumes to the same parameters as an uninterrupted one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental.compilation_cache import compilation_cache

from common.config import LoggerConfig
from common.logging import RunLogger
from common.run_config import ResumeError
from dmpc.config import DiffusionSection, TrainConfig, TrainSizes
from dmpc.data.dataset import load_dataset, save_dataset, windows
from dmpc.data.rollouts import PolicySpec, collect_transitions
from dmpc.models.model_set import ModelSet, Normalizer
from dmpc.train import STATE_DIR, train, training_arrays
from dmpc.training import fit, fit_many

MODELS = ["reward", "bc"]  # small MLPs: XLA compilation is most of the time here; every model fits the same way
SIDE_BY_SIDE = ["bc", "value"]  # value: the model with per-episode tables (padded when datasets train side by side)

QUIET = LoggerConfig(backend="jsonl", mode="disabled", progress=False)
TINY = DiffusionSection(hidden=16, layers=1, train_steps=10, sample_steps=3)


def test_fit_runs_exactly_steps_and_reports_a_held_out_loss():
    """10 steps in chunks of 4 are 4 + 4 + 2 (the optimizer's step counters say 10, not 12)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    arrays = {"x": x, "y": x @ np.array([1.0, -2.0, 0.5], np.float32)}

    def loss(p, b, k):
        return jnp.mean((b["x"] @ p["w"] - b["y"]) ** 2)

    state = fit(loss, {"w": jnp.zeros(3)}, arrays, steps=10, batch_size=16, lr=0.1, key=jax.random.key(0),
                chunk=4, val_arrays={k: v[:20] for k, v in arrays.items()})
    assert state.step == 10 and state.history["step"] == [4, 8, 10]
    leaves = jax.tree_util.tree_leaves(state.opt_state)
    counts = [int(leaf) for leaf in leaves if jnp.issubdtype(leaf.dtype, jnp.integer)]
    assert counts and all(c == 10 for c in counts)
    val = state.history["val_loss"]
    assert len(val) == 3 and val[-1] < val[0]


def _data():
    return collect_transitions("hopper", PolicySpec("uniform", 3), 400, seed=0, stream=1, max_episode_steps=60)


def test_training_arrays_split_whole_episodes_and_normalize_the_value_tables():
    win = windows(_data(), history=2, horizon=4, gamma=0.99)
    norm = Normalizer(np.full(11, 0.5, np.float32), np.full(11, 2.0, np.float32), value_scale=4.0)
    rows, val, tables = training_arrays(win, norm, val_fraction=0.2, seed=0)
    assert len(rows["value"]) + len(val["value"]) == len(win["value"])
    assert not set(rows["episode"].tolist()) & set(val["episode"].tolist())
    assert len(set(val["episode"].tolist())) == round(0.2 * len(win["tail_future"]))
    np.testing.assert_allclose(tables["tail_future"], (win["tail_future"] - 0.5) / 2.0, rtol=1e-6)
    held = np.isin(win["episode"], val["episode"])
    np.testing.assert_allclose(val["value"], win["value"][held] / 4.0, rtol=1e-6)
    np.testing.assert_array_equal(val["bootstrap"], win["bootstrap"][held])
    assert rows["episode"].dtype == np.int32 and rows["hist"].dtype == np.float32


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A tiny random-policy dataset, and JAX's persistent compilation cache for this module (its runs compile the
    same programs; the cache is switched off again afterwards)."""
    ws = tmp_path_factory.mktemp("ws")
    save_dataset(ws / "datasets", "hopper", "medium", _data(), {"env": "Hopper-v5"})
    keys = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
            "jax_persistent_cache_min_entry_size_bytes")
    old = {k: getattr(jax.config, k) for k in keys}
    for k, v in zip(keys, (str(tmp_path_factory.mktemp("xla")), 0.0, 0), strict=True):
        jax.config.update(k, v)
    yield ws
    for k, v in old.items():
        jax.config.update(k, v)
    compilation_cache.reset_cache()


def _cfg(workspace, model_dir, **overrides) -> TrainConfig:
    sizes = TrainSizes(steps=21, batch_size=16, lr=1e-3, chunk=7, proposal=TINY, dynamics=TINY, mlp_hidden=[16],
                       value_hidden=8, value_layers=1, ensemble_members=2, val_fraction=0.2)
    fields = {"workspace": str(workspace), "model_dir": str(model_dir), "models": MODELS, "horizon": 4,
              "ckpt_every_s": 0.0, "scales": {"cpu": sizes, "gpu": TrainSizes()}, "logger": QUIET,
              **overrides}
    return TrainConfig(**fields)


class Killed(Exception):
    pass


class DyingLogger(RunLogger):
    """Raises on the n-th `log` call: after the chunk's training, before its checkpoint (that work is lost)."""

    def __init__(self, run_dir, n: int) -> None:
        super().__init__(QUIET, run_dir)
        self.calls, self.n = 0, n

    def log(self, metrics, step=None, series=None) -> None:
        self.calls += 1
        if self.calls == self.n:
            raise Killed(step)
        super().log(metrics, step, series)


def _params(model_dir, names=MODELS):
    models = ModelSet.load(model_dir)
    return {name: jax.tree_util.tree_leaves(models.params[name]) for name in names}


def test_killed_run_resumes_to_the_same_parameters(workspace, tmp_path):
    reference_dir, resumed_dir = tmp_path / "reference", tmp_path / "resumed"
    with RunLogger(QUIET, tmp_path / "log0") as log:
        reference = train(_cfg(workspace, reference_dir), log)
    assert reference["done"] and reference["n_val_windows"] > 0 and not (reference_dir / STATE_DIR).exists()
    assert reference["losses"]["bc"]["val_last"] is not None

    with pytest.raises(Killed):  # 3 chunks per model: dies in bc's 2nd chunk (reward is done)
        train(_cfg(workspace, resumed_dir), DyingLogger(tmp_path / "log1", n=5))
    assert (resumed_dir / STATE_DIR / "run_config.json").is_file()
    with pytest.raises(ResumeError, match="lr"), RunLogger(QUIET, tmp_path / "log2") as log:
        bad = _cfg(workspace, resumed_dir)
        bad.scales["cpu"].lr = 5e-3
        train(bad, log)
    with RunLogger(QUIET, tmp_path / "log3") as log:  # a budget that ends after one chunk: stops with a checkpoint
        partial = train(_cfg(workspace, resumed_dir, time_budget_s=1e-9), log)
    assert partial["resumed"] and not partial["done"]
    with RunLogger(QUIET, tmp_path / "log4") as log:
        resumed = train(_cfg(workspace, resumed_dir), log)
    assert resumed["done"] and resumed["losses"] == reference["losses"]
    want, got = _params(reference_dir), _params(resumed_dir)
    for name in want:
        for a, b in zip(want[name], got[name], strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_retraining_a_planner_model_drops_the_distilled_policy(workspace, tmp_path):
    """`distilled` imitated the planner the model dir held: stale once a planner model is retrained, not after BC."""
    model_dir = tmp_path / "models"
    (model_dir / "distilled").mkdir(parents=True)
    with RunLogger(QUIET, tmp_path / "log") as log:
        train(_cfg(workspace, model_dir, models=["bc"]), log)
        assert (model_dir / "distilled").is_dir()
        train(_cfg(workspace, model_dir, models=["reward"]), log)
    assert not (model_dir / "distilled").exists() and "reward" in ModelSet.load(model_dir).params


def test_fit_many_gives_each_dataset_the_fit_of_its_own(tmp_path):
    """Two datasets of different lengths (rows padded to the longer) in one vmapped fit: each gets the parameters,
    losses and held-out losses of `fit` on it alone."""
    rng = np.random.default_rng(1)

    def dataset(n):
        x = rng.standard_normal((n, 3)).astype(np.float32)
        return {"x": x, "y": x @ np.array([1.0, -2.0, 0.5], np.float32) + rng.normal(0, 0.1, n).astype(np.float32)}

    def loss(p, b, k):
        return jnp.mean((b["x"] @ p["w"] + 0.01 * jax.random.normal(k, b["y"].shape) - b["y"]) ** 2)

    arrays, keys = [dataset(50), dataset(83)], [jax.random.key(3), jax.random.key(4)]
    kwargs = {"steps": 12, "batch_size": 8, "lr": 0.05, "chunk": 5}
    alone = [fit(loss, {"w": jnp.zeros(3)}, a, key=k, val_arrays=a, **kwargs) for a, k in zip(arrays, keys, strict=True)]
    many = fit_many(loss, [{"w": jnp.zeros(3)}] * 2, arrays, keys=keys, val_arrays=arrays, **kwargs)
    for one, joint in zip(alone, many, strict=True):
        np.testing.assert_allclose(joint.params["w"], one.params["w"], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(joint.history["loss"], one.history["loss"], rtol=1e-6)
        np.testing.assert_allclose(joint.history["val_loss"], one.history["val_loss"], rtol=1e-6)
        assert joint.step == 12 and joint.history["step"] == [5, 10, 12]
    assert not np.allclose(many[0].params["w"], many[1].params["w"])  # two fits, not one twice


def test_datasets_side_by_side_get_the_parameters_of_their_own_runs(workspace, tmp_path):
    """`datasets=[medium, medium-replay]`: each lands in <workspace>/models/<dataset> with the parameters that its
    own run gives (the value model too: its per-episode tables differ in length and are padded)."""
    ws = tmp_path / "ws"
    save_dataset(ws / "datasets", "hopper", "medium", _data(), {"env": "Hopper-v5"})
    other = collect_transitions("hopper", PolicySpec("uniform", 3), 300, seed=1, stream=1, max_episode_steps=60)
    save_dataset(ws / "datasets", "hopper", "medium-replay", other, {"env": "Hopper-v5"})
    with RunLogger(QUIET, tmp_path / "log") as log:
        alone = {d: train(_cfg(ws, tmp_path / "alone" / d, dataset=d, models=SIDE_BY_SIDE), log)
                 for d in ("medium", "medium-replay")}
        joint = train(_cfg(ws, "", datasets=["medium", "medium-replay"], models=SIDE_BY_SIDE), log)
    assert joint["done"] and set(joint["datasets"]) == {"medium", "medium-replay"}
    for d, summary in alone.items():
        assert joint["datasets"][d]["n_windows"] == summary["n_windows"]
        assert joint["datasets"][d]["model_dir"] == str(ws / "models" / d)
        for name in SIDE_BY_SIDE:
            for key in ("last", "val_last"):
                assert joint["datasets"][d]["losses"][name][key] == pytest.approx(summary["losses"][name][key],
                                                                                  rel=1e-5)
        for a, b in zip(_params(tmp_path / "alone" / d, ["bc"])["bc"], _params(ws / "models" / d, ["bc"])["bc"],
                        strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=d)
        # the value transformer's attention key bias gets no gradient (it shifts every logit of a query alike), so
        # Adam turns float noise there into lr-sized steps: compare what the value model computes instead
        alone_set, joint_set = ModelSet.load(tmp_path / "alone" / d), ModelSet.load(ws / "models" / d)
        data, _ = load_dataset(ws / "datasets" / f"hopper-{d}.npz")
        future = alone_set.normalizer.norm(windows(data, 2, 4, 0.99)["future"]).astype(np.float32)
        np.testing.assert_allclose(joint_set.models["value"](joint_set.params["value"], future),
                                   alone_set.models["value"](alone_set.params["value"], future), atol=1e-5,
                                   err_msg=d)
    assert alone["medium"]["n_windows"] != alone["medium-replay"]["n_windows"]
