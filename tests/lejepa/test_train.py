"""Training windows follow the authors' frame skip: frames every 5 env steps, the 5 env actions of each model step
concatenated in order; the learning-rate schedule."""

import numpy as np
import pytest
import torch

from lejepa.train import chunk_actions, lr_factor, sample_batch


def test_frame_skip_windows_are_5_env_steps_per_model_step():
    e, t, s = 3, 41, 2
    frames = (torch.arange(t).view(1, t, 1, 1, 1) + 100 * torch.arange(e).view(e, 1, 1, 1, 1)).expand(e, t, s, s, 3)
    frames = frames.to(torch.uint8)
    actions = torch.stack([torch.arange(t - 1), -torch.arange(t - 1)], -1).float().expand(e, -1, -1) \
        + 1000 * torch.arange(e).view(e, 1, 1)
    f, a = sample_batch(frames, actions, batch=64, seq_len=4, frameskip=5, gen=torch.Generator().manual_seed(0))
    assert f.shape == (64, 4, 3, s, s) and a.shape == (64, 3, 10)
    step = torch.round(f[:, :, 0, 0, 0] * 255).long() % 100  # the env step each frame was taken at
    assert torch.equal(step[:, 1:] - step[:, :-1], torch.full((64, 3), 5))  # env steps = 5 x model steps
    chunks = a.view(64, 3, 5, 2)
    first = step[:, :3, None] + torch.arange(5)  # model step k carries env actions t_k .. t_k + 4, in order
    assert torch.equal(chunks[..., 0].long() % 1000, first)
    assert torch.equal(chunks[..., 0] + chunks[..., 1], 2000 * (chunks[..., 0] // 1000))  # both dims, same step
    assert step.max() <= t - 1


def test_chunk_actions_concatenates_in_time_order():
    a = torch.arange(20.0).view(1, 10, 2)
    assert chunk_actions(a, 5).tolist() == [[list(range(10)), list(range(10, 20))]]


def test_lr_schedule_warms_up_from_1_percent_then_anneals_to_the_floor():
    assert lr_factor(0, 10, 100) == pytest.approx(0.01)
    assert lr_factor(10, 10, 100) == pytest.approx(1.0)
    assert lr_factor(100, 10, 100) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(100, 10, 100, 0.1) == pytest.approx(0.1)
    assert all(np.diff([lr_factor(k, 10, 100) for k in range(10, 101)]) <= 1e-12)
