"""The training loss's mean over an epoch, summed on the device and carried across a mid-epoch resume."""

from __future__ import annotations

import torch

EPOCH_LOSS_KEY = "pdeop_epoch_loss"  # the checkpoint's entry for a module's ``EpochMean`` of the training loss


def saved_ranks(checkpoint: dict) -> int | None:
    """How many processes wrote ``checkpoint``: its epoch loss holds a sum for each; None before any training step."""
    state = checkpoint.get(EPOCH_LOSS_KEY)
    return len(state["weight"]) if state else None


class EpochMean:
    """A weighted running sum on the device, read once an epoch, whose state travels in checkpoints.

    ``self.log`` on every step costs about as much host time as a small model's forward pass, which a GPU
    run feels directly; a sum on the device costs one addition. A run stopped mid-epoch (SIGTERM) and resumed
    gets no ``on_train_epoch_start``: ``resume`` at the start of training takes the sum the checkpoint held, so
    the epoch reports the mean over all of its steps, as the uninterrupted run does, bit for bit.
    """

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.weight = 0
        self.restored: tuple[torch.Tensor, int] | None = None

    def reset(self, device: torch.device) -> None:
        """An epoch begins: nothing summed."""
        self.total, self.weight = torch.zeros((), device=device), 0

    def resume(self, device: torch.device) -> None:
        """Training begins: the sum of the checkpoint it resumes from (if any), else nothing.

        A fresh epoch resets it again (``reset``); an epoch resumed mid-way goes on from it."""
        if self.restored is None:
            self.reset(device)
            return
        total, self.weight = self.restored
        self.total, self.restored = total.to(device), None

    def add(self, value: torch.Tensor, weight: int = 1) -> None:
        """Add ``value`` with ``weight``; a step taken outside a fit (no epoch begun) starts the sum."""
        if self.total is None:
            self.reset(value.device)
        self.total += value.detach() * weight
        self.weight += weight

    def copy(self) -> EpochMean:
        """The sum as it is now, apart from later additions (an interrupted step's are undone with it)."""
        copied = EpochMean()
        copied.total = self.total.clone() if self.total is not None else None
        copied.weight, copied.restored = self.weight, self.restored
        return copied

    def mean(self) -> torch.Tensor | None:
        """The weighted mean so far, or None before anything was added."""
        return self.total / self.weight if self.weight else None


class LogsEpochLoss:
    """A LightningModule's hooks that log ``self.epoch_loss`` (an ``EpochMean`` its ``training_step`` adds to) once
    an epoch as ``epoch_loss_name``, and carry it in checkpoints.

    Each rank sums its own batches: every rank builds the checkpoint and rank 0's is written, so the sums are
    gathered into it, and each rank of the resumed run takes its own.
    """

    epoch_loss: EpochMean
    epoch_loss_name = "train/loss"

    def on_train_start(self) -> None:
        self.epoch_loss.resume(self.device)

    def on_train_epoch_start(self) -> None:
        self.epoch_loss.reset(self.device)

    def on_train_epoch_end(self) -> None:
        mean = self.epoch_loss.mean()
        if mean is not None:
            self.log(self.epoch_loss_name, mean, prog_bar=True, sync_dist=True)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        loss = self.epoch_loss
        if loss.total is None:
            return
        totals, weights = loss.total.detach(), torch.tensor(loss.weight, device=loss.total.device)
        if self.trainer.world_size > 1:
            totals, weights = self.all_gather(totals), self.all_gather(weights)
        checkpoint[EPOCH_LOSS_KEY] = {"total": totals.reshape(-1).cpu(), "weight": weights.reshape(-1).tolist()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get(EPOCH_LOSS_KEY) or {}
        rank = self.trainer.global_rank if self._trainer is not None else 0
        if rank < len(state.get("weight", ())):
            self.epoch_loss.restored = (state["total"][rank], state["weight"][rank])
