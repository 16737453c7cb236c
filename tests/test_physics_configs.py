"""Every physics-informed model config with every residual-problem config: composes, builds, takes a step."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from pdeop.conf import CONF
from pdeop.config import check_config
from pdeop.training.run import build_physics_module, check_pairing

DATA = ["poisson1d_hf", "poisson1d_multiscale", "allen_cahn1d", "poisson2d_hf", "helmholtz2d", "advection1d",
        "darcy_instance"]
MODELS = ["pinn", "pinn_rff", "pig", "gp_hm"]
SMALL = ["data.n_interior=64", "data.n_boundary=16", "data.grid_points=12", "data.problem.test_points=15",
         "model.num_gaussians=20"]


def composed(model: str, data: str):
    recipe = "pinn" if model == "pinn_rff" else model
    overrides = ([f"model={model}", f"+recipe={recipe}", f"data={data}"]
                 + [o for o in SMALL if model == "pig" or "num_gaussians" not in o])
    if data == "darcy_instance":
        overrides.append("data.problem.resolution=33")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("model", MODELS)
def test_config_builds_and_one_step_lowers_nothing_to_nan(model, data):
    torch.manual_seed(0)
    cfg = composed(model, data)
    check_pairing(cfg)
    config = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("model", "data", "loss", "optim")}
    check_config(config)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    module = build_physics_module(cfg, datamodule, config)
    optimizer = module.configure_optimizers()
    batch = next(iter(datamodule.train_dataloader()))
    before = [p.detach().clone() for p in module.parameters()]

    def closure():
        optimizer.zero_grad()
        loss = module.training_step(batch, 0)
        loss.backward()
        return loss

    loss = optimizer.step(closure)
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))
    error, prediction = module.relative_l2(next(iter(datamodule.val_dataloader())))
    assert torch.isfinite(error) and prediction.shape == (15,) * datamodule.problem.dim
