"""LightningModule for operator learning: the trained operator (``pdeop.inference.TrainedOperator``: normalise
the input, apply the model, de-normalise) with its loss, metrics, optimiser and schedule.

The loss is computed on de-normalised outputs against the physical targets, as in FNO's
training scripts; validation and test report the per-sample relative L2 error averaged over
samples (over all ranks' samples in a distributed run), the test once per stored resolution.
A rollout task (``Window``) reports two test errors, named for what they measure, as FNO's and
LSM's NS scripts do: ``test/rel_l2_step_<n>``, the mean over model calls of each call's relative
L2 (their ``test_l2_step``), and ``test/rel_l2_full_<n>``, the relative L2 of the whole rolled-out
trajectory (their ``test_l2_full``, the figure of FNO's NS table); plus ``test/rel_l2_<n>_lead<k>``
per state. Its ``val/rel_l2`` (the checkpoint monitor) is the per-step mean, what the loss averages.
"""

from __future__ import annotations

from typing import Any, Callable

import pytorch_lightning as pl
import torch
from neuralop.losses import LpLoss
from torch import nn
from torchmetrics import MeanMetric

from pdeop.errors import ConfigError
from pdeop.inference import TrainedOperator
from pdeop.training.epoch_mean import EpochMean, LogsEpochLoss
from pdeop.training.losses import TransformedRelativeL2, is_residual_loss, operator_loss_expected
from pdeop.training.optimisation import optimiser_and_schedule, parameter_groups


class OperatorModule(TrainedOperator, LogsEpochLoss, pl.LightningModule):
    """Trains ``model`` on pairs ``(x, y)`` shaped ``[batch, channels, *grid]``.

    The operator's part (``model``, the normalisers, ``rollout``, ``config``; ``forward``,
    ``predict``, ``unpack``) is ``TrainedOperator``'s, so the state-dict keys are the same as a
    loaded operator's; ``TrainedOperator`` comes first in the bases so that its ``forward`` is
    the module's and its ``__init__`` runs ``LightningModule.__init__`` through ``super()``.

    ``optimizer`` and ``scheduler`` are partial constructors (Hydra ``_partial_``); a scheduler
    with a ``total_steps`` (OneCycleLR) or ``T_max`` (CosineAnnealingLR) argument left unset gets
    the trainer's step count.
    ``config`` is the resolved run config, stored in every checkpoint.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        optimizer: Callable[..., torch.optim.Optimizer],
        input_normaliser: nn.Module,
        output_normaliser: nn.Module,
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "epoch",
        test_resolutions: list[int] | None = None,
        config: dict | None = None,
        rollout: Any | None = None,
        param_lr: dict[str, float] | None = None,
    ):
        if is_residual_loss(loss):
            raise ConfigError(operator_loss_expected(type(model).__name__, type(loss).__name__))
        if isinstance(loss, TransformedRelativeL2):
            loss.check_model(model)
            if rollout is not None:
                raise ConfigError("loss: the transformed-space loss needs single-step targets, not a rollout task")
        if scheduler_interval not in ("epoch", "step"):
            raise ConfigError(f"scheduler.interval: expected 'epoch' or 'step', got {scheduler_interval!r}")
        super().__init__(model, input_normaliser, output_normaliser, rollout=rollout, config=config)
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.test_resolutions = list(test_resolutions or [])
        # sums and counts reduced across ranks: the same mean over samples as one process computes
        self.epoch_loss = EpochMean()
        self.val_error = MeanMetric()
        self.test_errors = nn.ModuleList(MeanMetric() for _ in self.test_resolutions or [None])
        self.param_lr = dict(param_lr or {})
        leads = rollout.horizon if rollout is not None else 0
        self.test_full_errors = nn.ModuleList(MeanMetric() for _ in self.test_resolutions or [None]
                                              if rollout is not None)
        self.test_lead_errors = nn.ModuleList(nn.ModuleList(MeanMetric() for _ in range(leads))
                                              for _ in self.test_resolutions or [None])

    @staticmethod
    def batch_samples(batch) -> int:
        """Samples per batch (the throughput count)."""
        return batch[0].shape[0]

    def forward_transformed(self, x: torch.Tensor) -> torch.Tensor:
        """Physical inputs to the model's retained transform coefficients of the physical output.

        De-normalising in the transformed space: the normaliser's scale applies to every
        coefficient, its offset (a constant field per channel) to the transform of a constant.
        """
        coefficients = self.model.forward_spectral(self.input_normaliser.transform(x))
        channels, grid = coefficients.shape[1], x.shape[2:]
        offset = self.output_normaliser.inverse_transform(x.new_zeros(1, channels, *[1] * len(grid)))
        if offset.shape[2:] != (1,) * len(grid):
            raise ConfigError("loss: the transformed-space loss needs a per-channel output normaliser")
        constant = self.model.project(x.new_ones(1, channels, *grid))
        return self.output_normaliser.inverse_transform(coefficients) + offset * (constant - 1)

    def training_step(self, batch, batch_idx):
        x, t, y = self.unpack(batch)
        if isinstance(self.loss, TransformedRelativeL2):
            loss = self.loss(self.forward_transformed(x), y, self.model)
        else:
            loss = self.loss(self.predict(x, t), y)
        self.epoch_loss.add(loss, x.shape[0])  # logged once an epoch, the mean over its samples
        return loss

    @staticmethod
    def relative_l2(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-sample relative L2 error over all spatial dimensions, averaged over the batch."""
        return LpLoss(d=target.ndim - 2, p=2, reduction="mean")(prediction, target)

    def batch_error(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The batch's mean error: relative L2, or for a rollout the mean over samples and model calls (per step)."""
        if self.rollout is None:
            return self.relative_l2(prediction, target)
        return self.rollout.step_errors(prediction, target).mean()

    def validation_step(self, batch, batch_idx):
        x, t, y = self.unpack(batch)
        self.val_error.update(self.batch_error(self.predict(x, t), y), weight=x.shape[0])
        self.log("val/rel_l2", self.val_error, prog_bar=True, batch_size=x.shape[0])

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        x, t, y = self.unpack(batch)
        resolution = self.test_resolutions[dataloader_idx] if self.test_resolutions else x.shape[-1]
        prediction = self.predict(x, t)
        name = f"test/rel_l2_{resolution}" if self.rollout is None else f"test/rel_l2_step_{resolution}"
        self.log_mean(name, self.test_errors[dataloader_idx], self.batch_error(prediction, y), x.shape[0])
        if self.rollout is not None:
            self.log_mean(f"test/rel_l2_full_{resolution}", self.test_full_errors[dataloader_idx],
                          self.rollout.full_errors(prediction, y).mean(), x.shape[0])
            for lead, (error, lead_metric) in enumerate(zip(self.rollout.lead_errors(prediction, y).T,
                                                            self.test_lead_errors[dataloader_idx]), start=1):
                self.log_mean(f"test/rel_l2_{resolution}_lead{lead}", lead_metric, error.mean(), x.shape[0])

    def log_mean(self, name: str, metric: MeanMetric, batch_mean: torch.Tensor, samples: int) -> None:
        """Add a batch's mean to the sample-weighted running mean ``metric`` and log it as ``name``."""
        metric.update(batch_mean, weight=samples)
        self.log(name, metric, batch_size=samples, add_dataloader_idx=False)

    def configure_optimizers(self):
        groups = parameter_groups(self.model, self.param_lr)
        return optimiser_and_schedule(self, groups, self.optimizer_factory, self.scheduler_factory,
                                      self.scheduler_interval)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Store the run config and the epoch's loss so far, and keep the checkpoint loadable with
        ``weights_only=True``.

        neuraloperator models put their constructor arguments, Python functions included, into
        the state dict under ``_metadata``; the run config already says how to rebuild the
        model, so that entry is dropped rather than pickled.
        """
        super().on_save_checkpoint(checkpoint)
        checkpoint["state_dict"].pop("_metadata", None)
        checkpoint["pdeop_config"] = self.config
