"""Model zoo checks: shapes at several resolutions, gradients, overfitting, determinism, paper sizes."""

import pytest
import torch

from pdeop.errors import ConfigError
from pdeop.models import MgNO

SMALL = {
    "mgno": lambda: MgNO(in_channels=1, out_channels=1, channels=8, num_layers=2, smoothing=[[1, 0], [1, 1], [2, 0]]),
}


@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("size", [17, 32, 41])
def test_output_shape_at_several_resolutions(name, size):
    model = SMALL[name]()
    assert model(torch.randn(3, 1, size, size)).shape == (3, 1, size, size)


@pytest.mark.parametrize("name", SMALL)
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    model = SMALL[name]()
    model(torch.randn(2, 1, 21, 21)).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize("name", SMALL)
def test_overfits_a_batch_of_four(name):
    torch.manual_seed(0)
    model = SMALL[name]()
    x = torch.randn(4, 1, 16, 16)
    y = torch.sin(x.cumsum(-1) / 4)  # a nonlinear, nonlocal target
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    relative = lambda: ((model(x) - y).norm() / y.norm())  # noqa: E731
    start = relative().item()
    for _ in range(400):
        optimiser.zero_grad()
        relative().backward()
        optimiser.step()
    assert relative().item() < 0.05 < start


@pytest.mark.parametrize("name", SMALL)
def test_same_seed_same_model_and_output(name):
    outputs = []
    for _ in range(2):
        torch.manual_seed(3)
        outputs.append(SMALL[name]()(torch.ones(1, 1, 16, 16)))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)


def test_mgno_darcy_rough_parameter_count():
    # 4 layers x 24 channels, 6 levels, 1 input channel. Derived from the paper's layer description:
    # first V-cycle (f: 1 channel) 74,853; each further V-cycle 165,312; 1x1 convs 48 + 3 x 600; head 24.
    model = MgNO(in_channels=1, out_channels=1, channels=24, num_layers=4)
    assert sum(p.numel() for p in model.parameters()) == 572_661


def test_mgno_circular_padding_is_shift_equivariant():
    # With periodic padding and 3 levels, shifting a 32-grid by 4 nodes (a multiple of 2^(levels-1))
    # shifts the output by the same amount; zero padding breaks this at the boundary.
    torch.manual_seed(0)
    x = torch.randn(1, 1, 32, 32)
    shift = lambda t: torch.roll(t, shifts=(4, 8), dims=(-2, -1))  # noqa: E731
    periodic = MgNO(1, 1, channels=4, num_layers=2, smoothing=[[1, 1], [1, 1], [1, 0]], padding_mode="circular")
    torch.testing.assert_close(periodic(shift(x)), shift(periodic(x)), rtol=1e-4, atol=1e-5)
    torch.manual_seed(0)
    dirichlet = MgNO(1, 1, channels=4, num_layers=2, smoothing=[[1, 1], [1, 1], [1, 0]], padding_mode="zeros")
    assert not torch.allclose(dirichlet(shift(x)), shift(dirichlet(x)), atol=1e-3)


def test_mgno_rejects_a_grid_too_small_for_its_levels():
    model = MgNO(1, 1, channels=4, num_layers=1)  # 6 levels
    with pytest.raises(ConfigError, match=r"model.smoothing: 6 multigrid levels coarsen a 16-node grid to 1"):
        model(torch.randn(1, 1, 16, 16))


@pytest.mark.parametrize("bad, key", [({"padding_mode": "reflect"}, "model.padding_mode"),
                                      ({"smoothing": [[1]]}, "model.smoothing"),
                                      ({"activation": "swish"}, "model.activation")])
def test_mgno_bad_hyper_parameters_name_the_key(bad, key):
    with pytest.raises(ConfigError, match=key):
        MgNO(1, 1, **bad)
