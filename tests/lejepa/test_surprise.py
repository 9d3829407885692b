"""Surprise episodes: positives and negatives share seed and actions up to the event, which shows from the frame
after the event step on; traces are aligned on the event."""

import numpy as np
import pytest

from lejepa.envs import make_env
from lejepa.surprise import aligned_curve, episode


@pytest.mark.parametrize("event", ["teleport", "color"])
def test_event_episode_matches_its_negative_until_the_event(event):
    env = make_env("two_room", 16)
    f0, a0, t0 = episode(env, "noisy_expert", 9, 5, seed=11, event="none")
    f1, a1, t1 = episode(env, "noisy_expert", 9, 5, seed=11, event=event)
    assert t0 == t1 and 3 <= t1 < 6 and f1.shape == (10, 16, 16, 3) and a1.shape == (45, 2)
    assert np.array_equal(f0[: t1 + 1], f1[: t1 + 1]) and np.array_equal(a0[: 5 * (t1 + 1)], a1[: 5 * (t1 + 1)])
    assert not np.array_equal(f0[t1 + 1], f1[t1 + 1])  # frame t_e + 1 shows the event


def test_aligned_curve_centres_on_the_event():
    err = np.zeros(12)
    err[6] = 5.0
    assert aligned_curve([(err, 6)]) == [0, 0, 0, 0, 5.0, 0, 0, 0, 0]
    assert aligned_curve([(err, 1)]) == []  # no full window around the event
