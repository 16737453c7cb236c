"""The losses against cases with known values, and over the data's spatial axes."""

import math

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from neuralop.losses import LpLoss
from omegaconf import OmegaConf

from pdeop.conf import CONF
from pdeop.errors import ConfigError
from pdeop.training.losses import FourierSobolevLoss
from pdeop.training.operator_module import OperatorModule
from pdeop.training.run import check_loss_dims, data_given_loss_settings


def test_zero_derivative_weight_is_relative_l2():
    torch.manual_seed(0)
    p, t = torch.randn(3, 2, 16, 12), torch.randn(3, 2, 16, 12)
    relative_l2 = ((p - t).flatten(1).norm(dim=1) / t.flatten(1).norm(dim=1)).mean()
    torch.testing.assert_close(FourierSobolevLoss(a=0.0)(p, t), relative_l2)
    assert FourierSobolevLoss()(t, t).item() == 0.0
    # neuraloperator's relative L2 agrees for a single channel
    torch.testing.assert_close(FourierSobolevLoss(a=0.0)(p[:, :1], t[:, :1]),
                               LpLoss(d=2, p=2, reduction="mean")(p[:, :1], t[:, :1]))


def test_a_single_mode_error_is_weighted_by_its_wavenumber():
    n = 64  # k = 25 must stay below the Nyquist wavenumber 32
    x = torch.arange(n) / n
    target = torch.ones(1, 1, n, n)  # only the k = 0 coefficient, weight 1
    for k, weight in ((3, math.sqrt(1 + 9)), (25, 1.0)):  # k = 25 lies beyond the truncation at 20
        wave = torch.cos(2 * math.pi * k * x)[None, None, :, None].expand(1, 1, n, n)
        prediction = target + 0.01 * wave
        ratio = FourierSobolevLoss()(prediction, target) / FourierSobolevLoss(a=0.0)(prediction, target)
        assert abs(ratio.item() - weight) < 1e-4, (k, ratio.item())


def t1_module(loss, transform="dct"):
    """An OperatorModule around a small T1 with a non-trivial head and non-zero-mean normalisers."""
    from functools import partial

    from pdeop.data.normalise import fit_channel_normaliser
    from pdeop.models import T1
    from pdeop.training.operator_module import OperatorModule

    torch.manual_seed(0)
    activation = "gelu" if transform == "dct" else "tanh"
    model = T1(1, 2, modes=[6, 5], width=8, num_layers=2, signal_resolution=[17, 17], transform=transform,
               activation=activation)
    with torch.no_grad():
        model.head_1.normal_(0, 0.3)
        model.head_2.normal_(0, 0.3)
    x = torch.rand(16, 1, 17, 17) * 3 + 2
    y = torch.randn(16, 2, 17, 17) * 0.5 + torch.tensor([4.0, -1.0])[None, :, None, None]
    return OperatorModule(model, loss, partial(torch.optim.Adam), fit_channel_normaliser(x), fit_channel_normaliser(y))


def test_transformed_space_loss_equals_the_spatial_loss_in_value_and_gradient():
    from pdeop.training.losses import TransformedRelativeL2

    module = t1_module(TransformedRelativeL2())
    spatial = LpLoss(d=2, p=2, reduction="mean")
    for grid in (17, 23):  # the training grid and a finer one (T1 rescales its coefficients)
        x = torch.rand(3, 1, grid, grid) * 3 + 2
        y = torch.randn(3, 2, grid, grid) + torch.tensor([4.0, -1.0])[None, :, None, None]
        transformed = module.loss(module.forward_transformed(x), y, module.model)
        reference = spatial(module(x), y)
        torch.testing.assert_close(transformed, reference, rtol=1e-5, atol=0)
        grads = torch.autograd.grad(transformed, list(module.model.parameters()))
        reference_grads = torch.autograd.grad(reference, list(module.model.parameters()))
        for g, r in zip(grads, reference_grads):
            torch.testing.assert_close(g, r, rtol=1e-3, atol=1e-6)
        assert reference.item() > 0.05  # a real error, not a trivially matching zero


def test_transformed_space_loss_needs_an_orthonormal_transform_model():
    import pytest
    from neuralop.models import FNO

    from pdeop.errors import ConfigError
    from pdeop.training.losses import TransformedRelativeL2

    with pytest.raises(ConfigError, match="real DFT"):
        t1_module(TransformedRelativeL2(), transform="dft")
    with pytest.raises(ConfigError, match="FNO predicts on the grid"):
        TransformedRelativeL2.check_model(FNO(n_modes=(4, 4), hidden_channels=4, in_channels=1, out_channels=1))


@pytest.mark.parametrize(("data", "dims"), [("darcy", 2), ("navier_stokes", 2), ("burgers", 1), ("burgers_fno", 1)])
@pytest.mark.parametrize("loss", ["rel_l2", "rel_l1", "h1"])
def test_the_losses_are_taken_per_channel_over_the_datas_spatial_axes(data, dims, loss):
    """On 1-D fields a loss over two axes took the channel axis for a spatial one: one error per sample over all
    channels (a channel 100 times larger hides the other's error), finite differences across channels (H1), and
    not what validation measures (per sample and channel)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"data={data}", f"loss={loss}"])
    criterion = instantiate(cfg.loss)
    assert criterion.d == dims
    check_loss_dims(OmegaConf.to_container(cfg.loss, resolve=True), dims)
    torch.manual_seed(0)
    target = torch.randn(4, 2, *[24] * dims) * torch.tensor([1.0, 100.0]).view(1, 2, *[1] * dims)
    prediction = target + 0.1 * torch.randn_like(target)
    if loss == "rel_l2":
        torch.testing.assert_close(criterion(prediction, target), OperatorModule.relative_l2(prediction, target))
    per_channel = torch.stack([criterion(prediction[:, c:c + 1], target[:, c:c + 1]) for c in range(2)]).mean()
    torch.testing.assert_close(criterion(prediction, target), per_channel)


def test_a_loss_over_other_axes_than_the_datas_is_refused():
    lp = {"_target_": "neuralop.losses.LpLoss", "p": 2}
    with pytest.raises(ConfigError, match=r"loss.d: LpLoss is taken over 2 spatial axes and the data's fields have 1; "
                                          r"set data.spatial_dims=1 \(loss.d follows it\)"):
        check_loss_dims({**lp, "d": 2}, 1)
    check_loss_dims({**lp, "d": None}, 1)  # data.spatial_dims: null (from_file), the data's: built with d=1
    check_loss_dims({"_target_": "pdeop.training.losses.FourierSobolevLoss"}, 1)  # no d: it takes the target's


@pytest.mark.parametrize(("data", "periodic"), [("darcy", False), ("navier_stokes", True), ("burgers", True)])
def test_h1_differentiates_as_the_datas_grid_is_bounded_or_periodic(data, periodic):
    """H1's finite differences wrap around a periodic grid (a field shifted across its edge has the same norm, as
    on the torus) and are one-sided at a bounded grid's edge; H1 had them one-sided on every grid."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"data={data}", "loss=h1"])
    datamodule = instantiate(cfg.data)
    assert datamodule.periodic is periodic
    dims = cfg.loss.d
    settings = data_given_loss_settings(OmegaConf.to_container(cfg.loss, resolve=True), dims, datamodule.periodic)
    assert settings == {"periodic_in_x": periodic, "periodic_in_y": periodic, "periodic_in_z": periodic}
    criterion = instantiate(cfg.loss, **settings)
    torch.manual_seed(0)
    target = torch.randn(3, 1, *[16] * dims)
    prediction = target + 0.3 * torch.randn_like(target)
    axes = tuple(range(2, 2 + dims))
    shifted = criterion(prediction.roll([5] * dims, dims=axes), target.roll([5] * dims, dims=axes))
    assert torch.allclose(shifted, criterion(prediction, target)) is periodic
    given = data_given_loss_settings({"d": 2, "periodic_in_x": False, "periodic_in_y": None}, 2, True)
    assert given == {"periodic_in_y": True}  # a value set in the config is kept
