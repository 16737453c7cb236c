"""The Fourier Sobolev loss against cases with known values."""

import math

import torch
from neuralop.losses import LpLoss

from pdeop.training.losses import FourierSobolevLoss


def test_zero_derivative_weight_is_relative_l2():
    torch.manual_seed(0)
    p, t = torch.randn(3, 2, 16, 12), torch.randn(3, 2, 16, 12)
    relative_l2 = ((p - t).flatten(1).norm(dim=1) / t.flatten(1).norm(dim=1)).mean()
    torch.testing.assert_close(FourierSobolevLoss(a=0.0)(p, t), relative_l2)
    assert FourierSobolevLoss()(t, t).item() == 0.0
    # neuraloperator's relative L2 agrees for a single channel
    torch.testing.assert_close(FourierSobolevLoss(a=0.0)(p[:, :1], t[:, :1]), LpLoss(d=2, p=2, reduction="mean")(p[:, :1], t[:, :1]))


def test_a_single_mode_error_is_weighted_by_its_wavenumber():
    n = 64  # k = 25 must stay below the Nyquist wavenumber 32
    x = torch.arange(n) / n
    target = torch.ones(1, 1, n, n)  # only the k = 0 coefficient, weight 1
    for k, weight in ((3, math.sqrt(1 + 9)), (25, 1.0)):  # k = 25 lies beyond the truncation at 20
        wave = torch.cos(2 * math.pi * k * x)[None, None, :, None].expand(1, 1, n, n)
        prediction = target + 0.01 * wave
        ratio = FourierSobolevLoss()(prediction, target) / FourierSobolevLoss(a=0.0)(prediction, target)
        assert abs(ratio.item() - weight) < 1e-4, (k, ratio.item())
