"""Random numbers a training step draws (dropout, noise) that a resumed run draws again: seeded by the step.

``seed_everything`` seeds torch's generators once, and each step draws where the previous one left off.
Lightning keeps no generator state in its checkpoints, so a run resumed from one (a requeued job, an
extended run) draws other dropout masks from then on than the uninterrupted run: the same setting gives
other weights. Storing the generators' state would not be enough either: between the checkpoint and the
resumed run's first step, the two runs draw differently (loader iterators draw a seed from torch's
generator; a resumed run builds its loaders at another point).
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch

STEP_SEED_TAG = 0x5EED  # keeps these seeds apart from other streams drawn from the run's seed (the online stream's)


def step_seed(seed: int, rank: int, epoch: int, batch: int) -> int:
    """The seed of training batch ``batch`` of ``epoch`` on ``rank``: independent streams for every step and rank."""
    return int(np.random.SeedSequence([STEP_SEED_TAG, seed, rank, epoch, batch]).generate_state(1, np.uint64)[0])


def seed_generators(seed: int, device: torch.device) -> None:
    """Seed torch's host generator and ``device``'s: what ``torch.manual_seed`` does for the devices a step uses, at a
    hundredth of its host time (it visits every backend, ~0.1 ms)."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        torch.cuda.default_generators[index].manual_seed(seed)
    elif device.type != "cpu":
        torch.manual_seed(seed)


class StepSeed(pl.Callback):
    """Before every training batch, torch's generators (the host's and the module's device's) are seeded from
    (seed, rank, epoch, batch), so what the step draws depends on where it is in the run, not on how it got there.

    A run stopped and resumed, at an epoch's end or mid-epoch (SIGTERM), then trains to the uninterrupted run's
    weights with dropout too. Ranks draw independent masks. Models that draw nothing in training (FNO, MgNO, the
    physics-informed solvers, whose collocation points come from generators of their own) are unchanged by it.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        seed_generators(step_seed(self.seed, trainer.global_rank, trainer.current_epoch, batch_idx), pl_module.device)
