"""Optimiser and schedule construction shared by the operator and physics-informed modules."""

from __future__ import annotations

import fnmatch
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from torch import nn

from pdeop.errors import ConfigError


def parameter_groups(model: nn.Module, param_lr: dict[str, float]) -> list[dict]:
    """Trainable parameters (frozen ones left out), grouped by ``param_lr``: parameter-name patterns
    (fnmatch, first match wins) with their own learning rate; the rest take the optimiser's."""
    groups: dict[str | None, list] = {pattern: [] for pattern in param_lr}
    groups[None] = []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            pattern = next((p for p in param_lr if fnmatch.fnmatchcase(name, p)), None)
            groups[pattern].append(parameter)
    unmatched = [pattern for pattern in param_lr if not groups[pattern]]
    if unmatched:
        raise ConfigError(f"model.param_lr: {', '.join(unmatched)} match no trainable parameter of the model")
    rest = [{"params": groups[None]}] if groups[None] else []
    return rest + [{"params": groups[p], "lr": lr} for p, lr in param_lr.items()]


def optimiser_and_schedule(module: pl.LightningModule, groups: list[dict],
                           optimizer: Callable[..., torch.optim.Optimizer], scheduler: Callable[..., Any] | None,
                           interval: str):
    """``configure_optimizers``'s answer: the optimiser on ``groups`` and the schedule stepping every ``interval``.

    A scheduler with a ``total_steps`` (OneCycleLR) or ``T_max`` (CosineAnnealingLR) argument left
    unset gets the trainer's step count.
    """
    built = optimizer(groups)
    if scheduler is None:
        return built
    keywords = getattr(scheduler, "keywords", {})
    unset = {key: int(module.trainer.estimated_stepping_batches) for key in ("total_steps", "T_max")
             if key in keywords and keywords[key] is None}
    return {"optimizer": built, "lr_scheduler": {"scheduler": scheduler(built, **unset), "interval": interval}}
