"""The training loop's lr schedules: constant keeps the lr, cosine decays it to 0 over all steps."""

import pytest
import torch

from generalization.train import fit


class _Recorder(torch.optim.Adam):
    """Adam that records the lr of every step."""

    seen: list[float] = []

    def step(self, closure=None):
        _Recorder.seen.append(self.param_groups[0]["lr"])
        return super().step(closure)


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_schedules(monkeypatch, schedule):
    import math

    monkeypatch.setattr(torch.optim, "Adam", _Recorder)
    _Recorder.seen = []
    torch.manual_seed(0)
    x, y = torch.randn(40, 3), torch.randint(0, 2, (40,))
    fit(torch.nn.Linear(3, 2), x, y, epochs=3, batch_size=10, lr=0.1, schedule=schedule)
    steps = 3 * 4
    assert len(_Recorder.seen) == steps
    expected = [0.1 * (0.5 * (1 + math.cos(math.pi * t / steps)) if schedule == "cosine" else 1.0)
                for t in range(steps)]
    assert _Recorder.seen == pytest.approx(expected, rel=1e-12)


def test_unknown_schedule_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        fit(torch.nn.Linear(3, 2), torch.randn(4, 3), torch.zeros(4, dtype=torch.long), 1, 4, 0.1, schedule="linear")
