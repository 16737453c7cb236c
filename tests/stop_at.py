"""Callbacks that bring a SIGTERM (a scheduler's time limit, ``scancel``) to a chosen training batch, so that a test
names the point mid-epoch where the run stops: a signal sent at an arbitrary moment lands wherever the run is.

``SigtermAt`` sends it from the process itself; ``PauseAt`` waits there for one from outside; ``StopAt`` stops the
fit there as ``trainer.max_time`` and early stopping do.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytorch_lightning as pl

from pdeop.training.sigterm import sigterm_noticed


class AtBatch(pl.Callback):
    """Acts once at the end of batch ``batch`` (counted from 0) of epoch ``epoch``, on rank ``rank`` (every rank: None):
    the file ``marker`` records that it did, so the resumed run (whose config must be the stopped run's) goes past
    that batch."""

    def __init__(self, epoch: int, batch: int, marker: str, rank: int | None = None) -> None:
        self.epoch, self.batch, self.marker, self.rank = epoch, batch, Path(marker), rank

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if (trainer.current_epoch == self.epoch and batch_idx == self.batch and not self.marker.exists()
                and self.rank in (None, trainer.global_rank)):
            self.marker.touch()
            self.act(trainer)

    def act(self, trainer: pl.Trainer) -> None:
        raise NotImplementedError


class SigtermAt(AtBatch):
    """Sends this process SIGTERM; Lightning's handler takes it as a scheduler's, and the run stops after the batch."""

    def act(self, trainer: pl.Trainer) -> None:
        os.kill(os.getpid(), signal.SIGTERM)


class StopAt(AtBatch):
    """Asks the fit to stop after the batch, as ``trainer.max_time`` and early stopping do."""

    def act(self, trainer: pl.Trainer) -> None:
        trainer.should_stop = True


class CrashAt(AtBatch):
    """Fails as a bug would (not a user error)."""

    def act(self, trainer: pl.Trainer) -> None:
        raise RuntimeError("CrashAt: a failure of pdeop's or a library's")


class PauseAt(AtBatch):
    """Waits (up to ``seconds``) for the SIGTERM that the test sends once ``marker`` exists."""

    def __init__(self, epoch: int, batch: int, marker: str, rank: int | None = None, seconds: float = 120) -> None:
        super().__init__(epoch, batch, marker, rank)
        self.seconds = seconds

    def act(self, trainer: pl.Trainer) -> None:
        deadline = time.monotonic() + self.seconds
        while not sigterm_noticed(trainer) and time.monotonic() < deadline:
            time.sleep(0.02)
