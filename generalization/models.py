"""The network families: an MLP, a residual MLP ("ResNet-style" on vectors) and a small pre-activation ResNet.

All map inputs (B, F) (or (B, C, H, W) for the ResNet) to logits (B, classes) float32; `width` is the knob
that the double-descent, bound and flatness sweeps turn. `build_model(name, ...)` raises one clear error for an
unknown name.
"""

from __future__ import annotations

import torch
from torch import nn

MODELS = ("mlp", "resmlp", "resnet")


def build_model(name: str, in_features: int, width: int, classes: int = 10, depth: int = 2,
                in_channels: int = 1) -> nn.Module:
    """A fresh model of family `name` in MODELS."""
    if name == "mlp":
        return MLP(in_features, width, classes, depth)
    if name == "resmlp":
        return ResMLP(in_features, width, classes, depth)
    if name == "resnet":
        return ResNet(in_channels, width, classes, depth)
    raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class MLP(nn.Module):
    """`depth` hidden ReLU layers of `width` units."""

    def __init__(self, in_features: int, width: int, classes: int = 10, depth: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        fan_in = in_features
        for _ in range(depth):
            layers += [nn.Linear(fan_in, width), nn.ReLU()]
            fan_in = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(fan_in, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class ResMLP(nn.Module):
    """Linear stem to `width`, `depth` residual blocks x + W2 relu(W1 relu(x)), linear head."""

    def __init__(self, in_features: int, width: int, classes: int = 10, depth: int = 1) -> None:
        super().__init__()
        self.stem = nn.Linear(in_features, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
            for _ in range(depth))
        self.head = nn.Linear(width, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = h + block(h)
        return torch.relu(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class BasicBlock(nn.Module):
    """Pre-activation residual block (BatchNorm-free, so the loss is a plain function of the weights)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.skip = nn.Conv2d(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(torch.relu(x))
        return self.skip(x) + self.conv2(torch.relu(h))


class ResNet(nn.Module):
    """Stem conv, `depth` stages of one BasicBlock (widths k, 2k, 4k, ...; stride 2 after the first), head.

    Nakkiran et al.'s width-k ResNet family, shrunk for 28x28 grey images; (B, C, H, W) -> (B, classes).
    """

    def __init__(self, in_channels: int, width: int, classes: int = 10, depth: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, 1, 1)
        stages, c = [], width
        for i in range(depth):
            c_out = width * 2**i
            stages.append(BasicBlock(c, c_out, 1 if i == 0 else 2))
            c = c_out
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(c, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            side = int(round(x.shape[1] ** 0.5))
            x = x.view(len(x), 1, side, side)
        return torch.relu(self.stages(self.stem(x))).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
