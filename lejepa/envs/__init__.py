"""Pixel environments for LeWM: Two-Room (NumPy), Push-T (gym-pusht), Reacher (gymnasium MuJoCo).

`make_env(name, image_size)` builds one; every env has reset(seed) -> frame (S, S, 3) uint8, step(action) ->
(frame, info), state() (physical quantities for probing), set_state, is_success(goal_state), action_dim.
"""

from __future__ import annotations

ENVS = ("two_room", "push_t", "reacher")


def make_env(name: str, image_size: int = 64, **kwargs):
    if name == "two_room":
        from lejepa.envs.two_room import TwoRoom

        return TwoRoom(image_size=image_size, **kwargs)
    if name == "push_t":
        from lejepa.envs.push_t import PushT

        return PushT(image_size=image_size, **kwargs)
    if name == "reacher":
        from lejepa.envs.reacher import Reacher

        return Reacher(image_size=image_size, **kwargs)
    raise ValueError(f"env={name!r} is unknown; expected one of {ENVS}")
