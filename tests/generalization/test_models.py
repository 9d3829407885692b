"""The conv ResNet (width-k family) used by the *_resnet_cpu and *_gpu configs: shapes, width scaling, determinism."""

import pytest
import torch

from generalization.models import ResNet, build_model, count_parameters
from generalization.run import Schema, result_name


@pytest.mark.parametrize("side", [14, 28])
def test_resnet_shapes_image_and_flat_input(side):
    torch.manual_seed(0)
    model = build_model("resnet", side * side, 4, depth=3)
    x = torch.randn(5, 1, side, side)
    assert model(x).shape == (5, 10)
    assert model.features(x).shape == (5, 16)  # widths k, 2k, 4k -> 4k features
    torch.testing.assert_close(model(x.view(5, -1)), model(x))  # flat (B, side^2) input is reshaped


def test_resnet_parameter_count_grows_with_width():
    counts = [count_parameters(ResNet(1, k, depth=3)) for k in (1, 2, 4, 8, 16)]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    assert counts[-1] > 100 * counts[0]  # roughly quadratic in k


def test_resnet_forward_deterministic():
    x = torch.randn(3, 1, 14, 14)
    torch.manual_seed(1)
    a = ResNet(1, 8)
    torch.manual_seed(1)
    b = ResNet(1, 8)
    a.eval(), b.eval()
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    torch.testing.assert_close(a(x), a(x), rtol=0, atol=0)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("vit", 196, 8)


def test_tagged_result_name():
    assert result_name(Schema(experiment="benign")) == "benign_cpu"
    assert result_name(Schema(experiment="double_descent", tag="resnet")) == "double_descent_resnet_cpu"
    with pytest.raises(ValueError, match="tag"):
        Schema(experiment="benign", tag="a_b")
