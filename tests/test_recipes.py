"""``model=`` picks the network only; a paper's training recipe is ``+recipe=<name>`` (pdeop/conf/recipe), so that
``--multirun model=fno,mgno`` compares two networks under one recipe. A physics-informed model without a residual
loss, or an operator model with one, is refused in one line before any data is made."""

from __future__ import annotations

import re

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from pdeop.conf import CONF, options, target
from pdeop.errors import ConfigError
from pdeop.training.run import check_pairing, choose_selection

PHYSICS = {"gp_hm", "pig", "pinn", "pinn_rff"}


def composed(*overrides: str) -> dict:
    with initialize_config_module("pdeop.conf", version_base=None):
        return OmegaConf.to_container(compose("config", overrides=list(overrides)), resolve=False)


@pytest.mark.parametrize("model", options("model"))
def test_a_model_file_sets_the_network_and_nothing_else(model):
    data = "data=helmholtz2d" if model in PHYSICS else "data=darcy"
    baseline = "pinn" if model in PHYSICS else "fno"
    chosen, other = composed(f"model={model}", data), composed(f"model={baseline}", data)
    assert {key for key in chosen if chosen[key] != other[key]} <= {"model"}
    assert chosen["model"]["_target_"] == target("model", model)


@pytest.mark.parametrize("recipe", options("recipe"))
def test_a_recipe_changes_the_training_and_not_the_network(recipe):
    data = "data=helmholtz2d" if recipe in PHYSICS else "data=darcy"
    plain, with_recipe = composed(f"model={recipe}", data), composed(f"model={recipe}", f"+recipe={recipe}", data)
    assert with_recipe["model"] == plain["model"]
    assert with_recipe != plain
    assert (CONF / "recipe" / f"{recipe}.yaml").read_text().startswith("# @package _global_")


def test_a_leaderboard_cell_brings_its_papers_recipe():
    cell = composed("+experiment=darcy85/mgno")
    assert cell["loss"]["_target_"].endswith("FourierSobolevLoss") and cell["optim"]["lr"] == 5.0e-4
    assert cell["scheduler"]["fn"]["_target_"].endswith("OneCycleLR")


def test_command_line_choices_override_a_recipes():
    chosen = composed("model=t1", "+recipe=t1", "loss=rel_l2", "optim.lr=0.002")
    assert chosen["loss"]["_target_"] == "neuralop.losses.LpLoss" and chosen["optim"]["lr"] == 0.002
    assert chosen["optim"]["_target_"] == "torch.optim.AdamW"


@pytest.mark.parametrize("overrides, message", [
    (["model=pinn", "data=helmholtz2d"],
     "loss: PINN solves a residual problem and trains on its residual, not on LpLoss; add a paper's recipe "
     "(+recipe=gp_hm | pig | pinn) or choose loss=physics"),
    (["model=gp_hm", "data=poisson1d_hf", "loss=h1"], "loss: GPHM solves a residual problem"),
    (["model=fno", "loss=physics"],
     "loss: PhysicsLoss is a physics-informed model's residual loss; FNO learns from solved samples"),
])
def test_a_loss_of_the_wrong_kind_is_refused_before_any_data(overrides, message):
    with initialize_config_module("pdeop.conf", version_base=None):
        cfg = compose("config", overrides=overrides)
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_pairing(cfg)


def test_a_physics_model_with_its_recipe_passes_the_pairing_check():
    with initialize_config_module("pdeop.conf", version_base=None):
        check_pairing(compose("config", overrides=["model=pinn", "+recipe=pinn", "data=helmholtz2d"]))


@pytest.mark.parametrize("overrides, monitor", [
    (["model=fno", "data=darcy"], "val/rel_l2"),                                  # an operator: its validation split
    # no recipe: never the reference
    (["model=pinn", "loss=physics", "optim=adam_physics", "data=poisson1d_hf"], "val/loss"),
    (["model=pig", "+recipe=pig", "data=helmholtz2d"], "val/loss"),
    # as asked
    (["model=pinn", "loss=physics", "data=poisson1d_hf", "callbacks.checkpoint.monitor=val/rel_l2"], "val/rel_l2"),
])
def test_the_checkpoint_is_selected_on_what_the_kind_of_run_may_see(overrides, monitor):
    with initialize_config_module("pdeop.conf", version_base=None):
        cfg = compose("config", overrides=overrides)
    choose_selection(cfg)
    assert cfg.callbacks.checkpoint.monitor == monitor
