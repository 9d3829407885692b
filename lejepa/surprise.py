"""Probing and surprise of a trained world model: `python -m lejepa.surprise ckpt=<dir>`.

Probing: ridge probes from latents to the env's physical quantities (`probe_names`; angles as sin/cos), fitted on
frames of training episodes and scored (R^2) on the held-out episodes of the dataset.

Surprise: `episodes` episodes of `steps` model steps (each `frameskip` env steps of the env's data policy: the
noisy expert, or uniform random for Reacher), rolled out twice from the same seed: once as they are (the negatives)
and once with an implausible event after the chunk of a random model step t_e in [steps/3, 2 steps/3) (the
positives): the object is teleported (`env.teleport_state`) or its colour changes (`env.recolor`). Surprise at step
t is the one-step prediction error of the latent of frame t + 1 from the `history` frames ending at t (the training
history, not one frame) and their action chunks; an episode's score is its peak surprise; AUROC of positives vs
negatives per event. Also written: the mean error around the event (offsets -4..4) for both, and one episode's full
trace with its event step marked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from common.config import LoggerConfig, as_dict, check_choice, check_range, hydra_app, run_dir
from common.device import choose_device, describe_device
from common.logging import RunLogger
from common.results import write_result
from common.seed import seed_everything
from lejepa.envs import make_env, make_policy
from lejepa.envs.dataset import load_dataset
from lejepa.evaluation import encode_frames, load_world_model
from lejepa.probing import auroc, prediction_errors, probe_targets, ridge_r2
from lejepa.train import chunk_actions, dataset_dir

EVENTS = ("teleport", "color")
DATA_POLICY = {"two_room": "noisy_expert", "push_t": "noisy_expert", "reacher": "random", "cube": "noisy_expert"}
PAPER = {"note": "LeWM reports that surprise spikes at implausible events (teleport, colour change) and that "
                 "probes recover physical quantities; it gives these as figures, we compare qualitatively"}


@dataclass
class SurpriseConfig:
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    ckpt: str = "???"
    data_dir: str = ""
    scale: str = "cpu"
    seed: int = 0
    device: str = "auto"
    episodes: int = 40
    steps: int = 12  # model steps per episode
    policy: str = ""  # empty: the env's data policy
    events: list[str] = field(default_factory=lambda: list(EVENTS))
    probe_train_episodes: int = 200
    probe_frames_per_episode: int = 8
    val_episodes: int = 40
    result_name: str = ""
    write_results: bool = True

    def __post_init__(self) -> None:
        check_choice("scale", self.scale, ("tiny", "cpu", "gpu"))
        check_range("seed", self.seed, 0)
        check_range("episodes", self.episodes, 2)
        check_range("steps", self.steps, 4)
        if self.policy:
            check_choice("policy", self.policy, ("random", "correlated_random", "noisy_expert"))
        check_range("probe_train_episodes", self.probe_train_episodes, 1)
        check_range("probe_frames_per_episode", self.probe_frames_per_episode, 1)
        check_range("val_episodes", self.val_episodes, 1)
        for event in self.events:
            check_choice("events[]", event, EVENTS)


def run_surprise(cfg: SurpriseConfig) -> dict:
    start = time.perf_counter()
    seed_everything(cfg.seed)
    device = choose_device(cfg.device)
    model, extra = load_world_model(cfg.ckpt, device)
    env_name, frameskip, history = extra["env"], extra.get("frameskip", 1), extra.get("history", 1)
    out: dict = {"model": extra["name"], "objective": extra["model_config"]["objective"], "env": env_name,
                 "train_seed": extra.get("seed"), "train_step": extra["step"], "frameskip": frameskip,
                 "history": history}
    val_episodes = extra.get("val_episodes", cfg.val_episodes)  # the training split's held-out tail
    out["probe_r2"] = probe(model, env_name, cfg, val_episodes, device) if out["objective"] != "patch_wm" else {}
    env = make_env(env_name, model.cfg.encoder.image_size)
    policy = cfg.policy or DATA_POLICY[env_name]
    mean, std = np.asarray(extra["action_mean"]), np.asarray(extra["action_std"])
    for event in cfg.events:
        scores = {"none": [], event: []}
        traces = {"none": [], event: []}
        for k in range(cfg.episodes):
            seed = 2 * 10**6 + cfg.seed * 10**4 + k
            for kind in ("none", event):
                frames, actions, t_event = episode(env, policy, cfg.steps, frameskip, seed, kind)
                z = encode_frames(model, frames[None], device).to(device)
                a = torch.from_numpy(chunk_actions((actions - mean) / std, frameskip)[None]).float().to(device)
                err = prediction_errors(model, z, a, history)[0].cpu().numpy()
                scores[kind].append(float(err.max()))
                traces[kind].append((err, t_event))
        out[f"auroc_{event}"] = auroc(np.array(scores[event]), np.array(scores["none"]))
        ev = np.array([e[t] for e, t in traces[event]])
        base = np.array([np.delete(e, t).mean() for e, t in traces[event]])
        out[f"surprise_ratio_{event}"] = float(ev.mean() / max(base.mean(), 1e-12))
        out[f"curve_{event}"] = aligned_curve(traces[event])
        out[f"curve_normal_{event}"] = aligned_curve([(e, t) for (e, _), (_, t) in
                                                      zip(traces["none"], traces[event], strict=True)])
        out[f"trace_{event}"] = traces[event][0][0].tolist()
        out[f"trace_normal_{event}"] = traces["none"][0][0].tolist()
        out[f"trace_event_step_{event}"] = int(traces[event][0][1])
        out[f"positives_{event}"] = (f"{cfg.episodes} episodes of {cfg.steps} model steps ({policy} policy) with the "
                                     f"{event} event after a random step in [steps/3, 2 steps/3)")
        out[f"negatives_{event}"] = f"the same {cfg.episodes} episodes (same seeds) without the event"
    out["score"] = "an episode's peak one-step latent prediction error"
    out["wall_s"] = time.perf_counter() - start
    return out


def probe(model, env_name: str, cfg: SurpriseConfig, val_episodes: int, device: str) -> dict:
    data = load_dataset(dataset_dir(cfg.data_dir, env_name))
    n, t = data["frames"].shape[:2]
    rng = np.random.default_rng(cfg.seed)
    train_ep = np.arange(min(cfg.probe_train_episodes, n - val_episodes))
    val_ep = np.arange(n - val_episodes, n)
    names = data["manifest"]["probe_names"]
    cols = [data["manifest"]["state_names"].index(name) for name in names]

    def rows(episodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        steps = rng.integers(0, t, size=(len(episodes), cfg.probe_frames_per_episode))
        return np.repeat(episodes, cfg.probe_frames_per_episode), steps.reshape(-1)

    (te, tt), (ve, vt) = rows(train_ep), rows(val_ep)
    targets, target_names = probe_targets(np.asarray(data["states"])[..., cols], names)
    z_train = encode_frames(model, np.asarray(data["frames"][te, tt]), device).numpy()
    z_val = encode_frames(model, np.asarray(data["frames"][ve, vt]), device).numpy()
    r2 = ridge_r2(z_train, targets[te, tt], z_val, targets[ve, vt])
    return {name: float(v) for name, v in zip(target_names, r2, strict=True)}


def episode(env, policy: str, steps: int, frameskip: int, seed: int, event: str) -> tuple[np.ndarray, ...]:
    """Frames (T+1, S, S, 3) at model steps, env actions (T * frameskip, A), event step t_e (the event happens
    after the chunk of model step t_e, so frame t_e + 1 shows it). The same seed gives the same episode up to the
    event."""
    rng = np.random.default_rng(seed)
    t_event = int(rng.integers(steps // 3, 2 * steps // 3))
    event_rng = np.random.default_rng(seed + 1)
    frames = [env.reset(seed)]
    behaviour = make_policy(env, policy, np.random.default_rng(seed + 2))
    actions = []
    for t in range(steps):
        for j in range(frameskip):
            a = np.asarray(behaviour.action(), dtype=np.float32)
            frame = env.step(a, render=j == frameskip - 1)  # frames at model steps only
            actions.append(a)
        if t == t_event and event == "teleport":
            env.set_state(env.teleport_state(event_rng))
            frame = env.render()
        elif t == t_event and event == "color":
            env.recolor()
            frame = env.render()
        frames.append(frame)
    return np.stack(frames), np.stack(actions), t_event


def aligned_curve(items: list[tuple[np.ndarray, int]], before: int = 4, after: int = 4) -> list[float]:
    """Mean error at offsets -before..after around each episode's event step (episodes with the full window)."""
    rows = [e[t - before: t + after + 1] for e, t in items if t - before >= 0 and t + after < len(e)]
    return np.mean(rows, axis=0).tolist() if rows else []


@hydra_app("lejepa", "surprise", SurpriseConfig)
def main(cfg: SurpriseConfig) -> dict:
    out = run_surprise(cfg)
    with RunLogger(cfg.logger, run_dir(), config=as_dict(cfg), name=f"surprise-{out['model']}") as log:
        log.summary({k: v for k, v in out.items() if isinstance(v, int | float)})
    if cfg.write_results:
        write_result("lejepa", cfg.result_name or f"surprise_{out['env']}_{out['model']}", cfg.scale, out,
                     paper=PAPER, config=as_dict(cfg), device=describe_device(choose_device(cfg.device)),
                     wall_s=out["wall_s"])
    print({k: v for k, v in out.items() if not isinstance(v, list | dict | str)})
    return out


if __name__ == "__main__":
    main()
