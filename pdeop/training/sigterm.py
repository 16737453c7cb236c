"""SIGTERM in a distributed run: every rank stops after the same training batch, so their last state is written.

A scheduler's time limit, a preemption or ``scancel`` sends SIGTERM to every rank, each at a point of its own
in the collectives that keep the ranks in step. Lightning's handler broadcasts a flag from inside the signal
handler, wherever that rank is in its sequence of collectives, and each rank then stops after its own batch:
ranks that noticed the signal at different batches wait on different collectives and the job hangs until the
scheduler's SIGKILL (seen in 2 of 3 two-process runs here), its state unwritten. ``SigtermAgreement`` makes the
decision one the ranks take together, at a point every rank passes in the same order.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import pytorch_lightning as pl


class SigtermAgreement(pl.Callback):
    """In a distributed fit, SIGTERM stops every rank after the same batch; one process: nothing changes.

    The handler (installed as the fit's loops start, in place of Lightning's) only notes the signal and passes it on
    to the ranks this process launched, as Lightning's does. After every training batch the ranks agree, in one
    all-reduce of a flag, whether any of them noticed it (``noticed``); only then is it Lightning's SIGTERM, which
    stops each rank after that batch, and ``RunCheckpoint(save_on_sigterm=True)`` writes their state together.
    They agree at each epoch's end as well, after its validation, where one process stops too. Lightning's handler
    stays in place for the moment between its registration and the sanity check, and for ``trainer.test``; a
    SIGTERM handler installed before the fit (Lightning would call it too) is not called during it.
    Lightning restores the handler it found as the fit ends.
    """

    def __init__(self) -> None:
        self.noticed = False

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.noticed = False

    def on_sanity_check_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.install(trainer)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.install(trainer)

    def install(self, trainer: pl.Trainer) -> None:
        """The handler, in place of Lightning's, which it installs just before the sanity check (when there is one)."""
        if trainer.world_size > 1 and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda signum, frame: self.notice(trainer, signum, frame))

    def notice(self, trainer: pl.Trainer, signum: int, frame: FrameType | None) -> None:
        if not self.noticed and trainer.strategy.launcher is not None:
            trainer.strategy.launcher.kill(signum)
        self.noticed = True

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        self.agree(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.agree(trainer)  # a signal noticed in the epoch's validation stops the ranks at its end, as one process

    def agree(self, trainer: pl.Trainer) -> None:
        """Lightning's SIGTERM on every rank if any rank noticed one: a collective every rank reaches in turn."""
        if trainer.world_size > 1 and trainer.strategy.reduce_boolean_decision(self.noticed, all=False):
            trainer._signal_connector.received_sigterm = True


def sigterm_noticed(trainer: pl.Trainer) -> bool:
    """Whether this process was told to stop: Lightning's SIGTERM, or one the ranks have yet to agree on."""
    return trainer.received_sigterm or any(getattr(callback, "noticed", False) for callback in trainer.callbacks
                                           if isinstance(callback, SigtermAgreement))
