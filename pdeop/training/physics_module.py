"""LightningModule for physics-informed solvers: fit one solution u(x) to a residual problem.

Pointwise models (PINN, PIG) are differentiated at the step's collocation points (by autograd, or
in closed form where the model knows it); grid models (GP-HM) own their collocation grid and give
derivatives of their interpolant there. The loss turns the residual and boundary misfits into one
number (``loss=physics``: weighted mean squares; ``loss=gp_hm``: GP-HM's likelihoods). Validation
reports ``val/loss``, that loss on validation's own collocation points, which the physics-informed
model configs select the checkpoint by (a solver knows its equation, not the reference it is scored
against; selecting on the test error would report the best test figure seen), and ``val/rel_l2``
for the curve; test reports the relative L2 error against the reference on the test grid.
"""

from __future__ import annotations

from typing import Any, Callable

import pytorch_lightning as pl
import torch
from hydra.utils import get_class
from pytorch_lightning.core.optimizer import LightningOptimizer
from pytorch_lightning.loops.progress import _BatchProgress
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch import nn
from torch.optim import Optimizer

from pdeop.conf import options, target
from pdeop.errors import ConfigError
from pdeop.models.field import FieldModel
from pdeop.problems.residual import ResidualProblem
from pdeop.training.epoch_mean import EpochMean, LogsEpochLoss
from pdeop.training.losses import GaussianLikelihoodLoss, PhysicsLoss, is_residual_loss
from pdeop.training.optimisation import optimiser_and_schedule, parameter_groups
from pdeop.training.sigterm import sigterm_noticed


def is_grid_model(model: nn.Module | type) -> bool:
    """A model (or model class) that owns its collocation grid and differentiates its own interpolant (GP-HM)."""
    return all(hasattr(model, name) for name in ("grid_points", "grid_derivatives", "boundary_mask"))


def is_physics_model(model: nn.Module | type) -> bool:
    """A model (or model class) representing one solution u(x), as opposed to an operator between fields."""
    cls = model if isinstance(model, type) else type(model)
    return issubclass(cls, FieldModel) or is_grid_model(cls)


def mismatch(model: str, physics_model: bool) -> str:
    """The one-line message for a model asked of the wrong kind of data: which models fit which problems, listed
    from the shipped configs (pdeop/conf/model and data)."""
    models = {name: is_physics_model(get_class(target("model", name))) for name in options("model")}
    residual = [name for name in options("data") if target("data", name).endswith("CollocationDataModule")]
    operator_data = "data=darcy, navier_stokes, burgers, ... (solved samples)"
    residual_data = f"data={', '.join(residual)} (single PDE instances posed by their residual)"
    if physics_model:
        operators = ", ".join(name for name, physics in models.items() if not physics)
        return (f"model: {model} is a physics-informed model; it solves {residual_data}, not {operator_data}, "
                f"which the operator models learn from (model={operators})")
    solvers = ", ".join(name for name, physics in models.items() if physics)
    return (f"model: {model} is an operator model; it learns from {operator_data}, not {residual_data}, "
            f"which the physics-informed models solve (model={solvers})")


def residual_loss_missing(model: str, loss: str) -> str:
    """The one-line message for a physics-informed model given an operator loss: model= picks the network only,
    and the recipes that bring a residual loss are listed from the shipped configs (pdeop/conf/recipe)."""
    recipes = [name for name in options("recipe")
               if name in options("model") and is_physics_model(get_class(target("model", name)))]
    return (f"loss: {model} solves a residual problem and trains on its residual, not on {loss}; add a "
            f"paper's recipe (+recipe={' | '.join(recipes)}) or choose loss=physics (or gp_hm) and an optimiser")


class PhysicsInformedModule(LogsEpochLoss, pl.LightningModule):
    """Trains ``model`` so that it solves ``problem``; ``optimizer``/``scheduler`` are partial constructors.

    ``config`` is the resolved run config, stored in every checkpoint.
    """

    epoch_loss_name = "train/loss_epoch"  # with train/loss_step, the keys Lightning gave on_step and on_epoch

    def __init__(self, model: nn.Module, problem: ResidualProblem, loss: PhysicsLoss | GaussianLikelihoodLoss,
                 optimizer: Callable[..., torch.optim.Optimizer], scheduler: Callable[..., Any] | None = None,
                 scheduler_interval: str = "step", config: dict | None = None,
                 param_lr: dict[str, float] | None = None):
        super().__init__()
        if not is_physics_model(model):
            raise ConfigError(mismatch(type(model).__name__, physics_model=False))
        if not is_residual_loss(loss):
            raise ConfigError(residual_loss_missing(type(model).__name__, type(loss).__name__))
        if scheduler_interval not in ("epoch", "step"):
            raise ConfigError(f"scheduler.interval: expected 'epoch' or 'step', got {scheduler_interval!r}")
        self.model, self.problem, self.loss = model, problem, loss
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.scheduler_interval = scheduler_interval
        self.config = config
        self.epoch_loss = EpochMean()
        self.param_lr = dict(param_lr or {})
        self.test_solution: dict[str, torch.Tensor] | None = None

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(self.dtype))

    def misfits(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The residual at the collocation points and u minus the Dirichlet data at the boundary points."""
        if is_grid_model(self.model):
            points = self.model.grid_points()
            derivatives = self.model.grid_derivatives(self.problem.orders + ((),))
            on_boundary = self.model.boundary_mask()
            residual = self.problem.residual(points, derivatives)  # at every node, as GP-HM's code
            boundary = derivatives[()][on_boundary] - self.problem.boundary_values(points[on_boundary])
            return residual, boundary
        interior, edge = batch["interior"].to(self.dtype), batch["boundary"].to(self.dtype)
        residual = self.problem.residual(interior, self.model.derivatives(interior, self.problem.orders))
        return residual, self.model(edge) - self.problem.boundary_values(edge)

    def training_step(self, batch, batch_idx):
        residual, boundary = self.misfits(batch)
        loss, parts = self.loss(residual, boundary, self.model)
        self.log_dict({f"train/{name}": value.detach() for name, value in parts.items()}, on_step=True,
                      on_epoch=False, batch_size=1)
        self.log("train/loss_step", loss.detach(), prog_bar=True, batch_size=1)
        self.epoch_loss.add(loss)  # train/loss_epoch: the mean over the epoch's evaluations of the loss
        return loss

    def solve_on(self, axes: list[torch.Tensor]) -> torch.Tensor:
        """The model's solution on the tensor-product grid ``axes``."""
        with torch.no_grad():
            return self.model.predict_grid([a.to(self.dtype) for a in axes])

    def relative_l2(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        prediction = self.solve_on(batch["axes"])
        reference = batch["reference"].to(prediction)
        return torch.linalg.vector_norm(prediction - reference) / torch.linalg.vector_norm(reference), prediction

    def validation_step(self, batch, batch_idx):
        with torch.inference_mode(False), torch.enable_grad():  # the residual needs derivatives of u
            loss, _ = self.loss(*self.misfits(batch), self.model)
        self.log("val/loss", loss.detach(), prog_bar=True, batch_size=1)
        error, _ = self.relative_l2(batch)
        self.log("val/rel_l2", error, prog_bar=True, batch_size=1)

    def test_step(self, batch, batch_idx):
        error, prediction = self.relative_l2(batch)
        reference = batch["reference"].to(prediction)
        self.log("test/rel_l2", error, batch_size=1)
        self.log("test/max_abs_error", (prediction - reference).abs().max(), batch_size=1)
        self.test_solution = {"axes": [a.cpu() for a in batch["axes"]], "prediction": prediction.cpu(),
                              "reference": reference.cpu()}

    @staticmethod
    def batch_samples(batch) -> int:
        """Collocation points per step (the throughput count)."""
        return len(batch["interior"]) + len(batch["boundary"])

    def configure_optimizers(self):
        return optimiser_and_schedule(self, parameter_groups(self.model, self.param_lr), self.optimizer_factory,
                                      self.scheduler_factory, self.scheduler_interval)

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Optimizer | LightningOptimizer,
                       optimizer_closure: Callable[[], Any] | None = None) -> None:
        """One optimiser step that a SIGTERM ends at its next evaluation of the loss rather than at its end.

        An L-BFGS step evaluates the loss up to ``max_eval`` times (25 at PIG's settings), minutes on the paper's
        points, while Lightning looks at SIGTERM only between steps; a preempted job's grace period is shorter.
        The interrupted step is undone (weights, optimiser state and the epoch's loss sum as before it), so the
        checkpoint written on the way out (``RunCheckpoint(save_on_sigterm=True)``) holds the state after the last
        whole step and the resumed run takes the interrupted step again, as the uninterrupted run did. Other
        optimisers (Adam) evaluate the loss once a step, before they change anything: Lightning's own check between
        steps suffices, and their steps pay for no copy.
        """
        inner = getattr(optimizer, "optimizer", optimizer)
        if not isinstance(inner, torch.optim.LBFGS):
            return super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        undo, epoch_loss = step_undo(inner), self.epoch_loss.copy()

        def closure():
            if self.trainer.strategy.reduce_boolean_decision(sigterm_noticed(self.trainer), all=False):
                raise StepInterrupted  # every rank at the same evaluation, so none waits in a collective
            return optimizer_closure()

        try:
            optimizer.step(closure=closure)
        except StepInterrupted:
            undo()
            self.epoch_loss = epoch_loss
            forget_started_batch(self.trainer.fit_loop.epoch_loop.batch_progress)
            raise SIGTERMException from None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["pdeop_config"] = self.config


class StepInterrupted(Exception):
    """Raised by a step's loss evaluation once the run is told to stop (SIGTERM)."""


def forget_started_batch(progress: _BatchProgress) -> None:
    """Lightning's count of the epoch's batches without the interrupted one, which it had counted as fetched and
    started: left so, the checkpoint would read as stopped inside a batch, and the resumed run would number its
    logging steps one further on than the uninterrupted run."""
    for tracker in (progress.total, progress.current):
        tracker.ready -= 1
        tracker.started -= 1


def step_undo(optimizer: torch.optim.Optimizer) -> Callable[[], None]:
    """A function that puts ``optimizer``'s parameters and state back as they are now.

    State tensors are copied and state lists copied shallowly: L-BFGS appends to and pops from its history lists
    but never writes into their tensors. Physics-informed models are small, so the copy costs little next to a
    step's evaluations of the residual.
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    values = [p.detach().clone() for p in params]
    state = {key: {name: value.clone() if isinstance(value, torch.Tensor) else
                   list(value) if isinstance(value, list) else value for name, value in entries.items()}
             for key, entries in optimizer.state.items()}

    def undo() -> None:
        with torch.no_grad():
            for param, value in zip(params, values):
                param.copy_(value)
        optimizer.state.clear()
        optimizer.state.update(state)

    return undo
