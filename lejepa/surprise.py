"""Probing and surprise of a trained world model: `python -m lejepa.surprise ckpt=<dir>`.

Probing: ridge probes from latents to the env's physical state (Two-Room: x, y; Push-T: agent/block position and
block angle as sin/cos; Reacher: joint angles as sin/cos, fingertip, target), fitted on training episodes and
scored (R^2) on the held-out episodes of the dataset.
Surprise: episodes under a random policy, half with an implausible event at a random step (the agent/object
teleported, or its colour changed), half without. Surprise = one-step latent prediction error; an episode's
score is its peak surprise; AUROC of event vs normal episodes per event type.
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
from lejepa.envs import make_env
from lejepa.envs.dataset import load_dataset
from lejepa.evaluation import encode_frames, load_world_model
from lejepa.probing import auroc, prediction_errors, ridge_r2
from lejepa.train import dataset_dir

EVENTS = ("teleport", "color")
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
    steps: int = 20
    events: list[str] = field(default_factory=lambda: list(EVENTS))
    probe_train_episodes: int = 200
    val_episodes: int = 40
    result_name: str = "surprise"
    write_results: bool = True

    def __post_init__(self) -> None:
        check_choice("scale", self.scale, ("tiny", "cpu", "gpu"))
        check_range("seed", self.seed, 0)
        check_range("episodes", self.episodes, 2)
        check_range("steps", self.steps, 4)
        check_range("probe_train_episodes", self.probe_train_episodes, 1)
        check_range("val_episodes", self.val_episodes, 1)
        for event in self.events:
            check_choice("events[]", event, EVENTS)


def run_surprise(cfg: SurpriseConfig) -> dict:
    start = time.perf_counter()
    seed_everything(cfg.seed)
    device = choose_device(cfg.device)
    model, extra = load_world_model(cfg.ckpt, device)
    out: dict = {"model": extra["name"], "env": extra["env"], "train_step": extra["step"]}
    out["probe_r2"] = probe(model, extra["env"], cfg, device)
    env = make_env(extra["env"], model.cfg.encoder.image_size)
    for event in cfg.events:
        normal, event_scores, curves = [], [], {"normal": [], "event": []}
        for k in range(cfg.episodes):
            seed = 2 * 10**6 + cfg.seed * 10**4 + k
            for kind, sink in (("none", normal), (event, event_scores)):
                frames, actions, t_event = episode(env, cfg.steps, seed, kind)
                z = encode_frames(model, frames[None], device)
                err = prediction_errors(model.predictor, z.to(device), torch.from_numpy(actions[None]).to(device))
                err = err[0].cpu().numpy()
                sink.append(float(err.max()))
                curves["normal" if kind == "none" else "event"].append((err, t_event))
        out[f"auroc_{event}"] = auroc(np.array(event_scores), np.array(normal))
        ev = np.array([e[t] for e, t in curves["event"]])
        base = np.array([np.delete(e, t).mean() for e, t in curves["event"]])
        out[f"surprise_ratio_{event}"] = float(ev.mean() / max(base.mean(), 1e-12))
        out[f"curve_{event}"] = _aligned_curve(curves["event"])
        out[f"curve_normal_{event}"] = _aligned_curve(curves["normal"])
    out["wall_s"] = time.perf_counter() - start
    return out


def probe(model, env_name: str, cfg: SurpriseConfig, device: str) -> dict:
    data = load_dataset(dataset_dir(cfg.data_dir, env_name))
    n = len(data["frames"])
    train_idx = np.arange(min(cfg.probe_train_episodes, n - cfg.val_episodes))
    val_idx = np.arange(n - cfg.val_episodes, n)
    names = data["manifest"]["state_names"]
    targets, target_names = probe_targets(data["states"], names)
    z = encode_frames(model, data["frames"], device).numpy()
    d = z.shape[-1]
    r2 = ridge_r2(z[train_idx].reshape(-1, d), targets[train_idx].reshape(-1, targets.shape[-1]),
                  z[val_idx].reshape(-1, d), targets[val_idx].reshape(-1, targets.shape[-1]))
    return {name: float(v) for name, v in zip(target_names, r2, strict=True)}


def probe_targets(states: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Angles (names containing 'angle' or q0/q1) become sin/cos pairs; other quantities stay as they are."""
    cols, out_names = [], []
    for i, name in enumerate(names):
        if "angle" in name or name in ("q0", "q1"):
            cols += [np.sin(states[..., i]), np.cos(states[..., i])]
            out_names += [f"sin_{name}", f"cos_{name}"]
        else:
            cols.append(states[..., i])
            out_names.append(name)
    return np.stack(cols, axis=-1), out_names


def episode(env, steps: int, seed: int, event: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Random-policy episode: frames (T+1, S, S, 3), actions (T, A), event step (the event happens between
    frame t_event and t_event + 1). The same seed gives the same actions with or without the event."""
    rng = np.random.default_rng(seed)
    t_event = int(rng.integers(steps // 3, 2 * steps // 3))
    frames = [env.reset(seed)]
    action = np.zeros(env.action_dim)
    actions = []
    recolor = False
    for t in range(steps):
        action = np.clip(0.7 * action + 0.7 * rng.normal(size=env.action_dim), -1, 1)
        frame, _ = env.step(action)
        if t == t_event and event == "teleport":
            env.set_state(teleport_state(env, rng))
            frame = env.render()
        if t == t_event and event == "color":
            if env.name == "two_room":
                env.agent_color = np.array([40, 200, 240], dtype=np.uint8)
                frame = env.render()
            recolor = True
        if recolor and env.name != "two_room":
            frame = frame[..., [2, 0, 1]]
        frames.append(frame)
        actions.append(action)
    return np.stack(frames), np.stack(actions).astype(np.float32), t_event


def teleport_state(env, rng: np.random.Generator) -> np.ndarray:
    """A state far from the current one: Two-Room agent moved >= 0.3 away; Push-T block moved; Reacher arm
    angles re-drawn."""
    s = env.state()
    if env.name == "two_room":
        while True:
            p = env.sample_free_position(rng)
            if np.linalg.norm(p - s) >= 0.3:
                return p
    if env.name == "push_t":
        s[2:4] = rng.uniform(120, 390, 2)
        return s
    s[:2] = rng.uniform(-np.pi, np.pi, 2)
    return s


def _aligned_curve(items: list[tuple[np.ndarray, int]], before: int = 4, after: int = 4) -> list[float]:
    """Mean error at offsets -before..after around the event step."""
    rows = [e[t - before: t + after + 1] for e, t in items if t - before >= 0 and t + after < len(e)]
    return np.mean(rows, axis=0).tolist() if rows else []


@hydra_app("lejepa", "surprise", SurpriseConfig)
def main(cfg: SurpriseConfig) -> dict:
    out = run_surprise(cfg)
    with RunLogger(cfg.logger, run_dir(), config=as_dict(cfg), name=f"surprise-{out['model']}") as log:
        log.summary({k: v for k, v in out.items() if isinstance(v, int | float)})
    if cfg.write_results:
        write_result("lejepa", cfg.result_name, cfg.scale, out, paper=PAPER, config=as_dict(cfg),
                     device=describe_device(choose_device(cfg.device)), wall_s=out["wall_s"])
    print({k: v for k, v in out.items() if not k.startswith("curve")})
    return out


if __name__ == "__main__":
    main()
