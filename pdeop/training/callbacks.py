"""Callbacks: throughput per epoch, and a guard that stops on a non-finite loss."""

from __future__ import annotations

import math
import time

import pytorch_lightning as pl
import torch

from pdeop.errors import NonFiniteLossError


class Throughput(pl.Callback):
    """Logs ``time/epoch_s`` (training loop wall time, validation excluded) and ``time/samples_per_s``."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._samples = 0
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._samples += batch[0].shape[0]

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        seconds = time.perf_counter() - self._start
        pl_module.log("time/epoch_s", seconds)
        pl_module.log("time/samples_per_s", self._samples / seconds if seconds > 0 else math.inf)


class NonFiniteLossGuard(pl.Callback):
    """Stops training before a NaN or infinite loss reaches the weights.

    Raising before the backward pass leaves the weights and the checkpoints written so far
    untouched, so ``last.ckpt`` stays the last good state.
    """

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss).all():
            checkpoint = getattr(trainer.checkpoint_callback, "last_model_path", "") or "none written yet"
            raise NonFiniteLossError(
                f"training loss became {loss.item()} at epoch {trainer.current_epoch}, step {trainer.global_step}; "
                f"training stopped. Last good checkpoint: {checkpoint}. "
                f"Try a lower optim.lr or check the data for NaNs."
            )
