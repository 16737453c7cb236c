"""Keep what is not the user's concern off a run's output: the frameworks' advertising, internal deprecations and
advice that pdeop's own handling makes moot.

Lightning prints a tip to install its cloud logger on every run, and its own use of a torch
pytree class that torch has deprecated warns on every fit; neither is something a pdeop user
can or should act on. Nor are two of its warnings: a logging interval longer than an epoch (pdeop logs training
figures once an epoch), and that ``srun`` exists but is not used (a local run on a SLURM login node;
slurm/train.sbatch starts runs through srun); nor, when a run resumes in its own folder
(``quiet_resumed_folder``), that the checkpoint folder is not empty; nor, for data modules that resume mid-epoch
(``quiet_mid_epoch_resume``), that their loader could not. Everything else Lightning and torch say is left as it is.
"""

from __future__ import annotations

import logging
import warnings

ADVERTISING = ("💡 Tip:",)


class DropAdvertising(logging.Filter):
    """Drops Lightning's log records that advertise its products."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(ADVERTISING)


def quiet_frameworks() -> None:
    """Silence the lines above, once per process (idempotent)."""
    rank_zero = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if not any(isinstance(f, DropAdvertising) for f in rank_zero.filters):
        rank_zero.addFilter(DropAdvertising())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning)
    for moot in (r"The number of training batches .* is smaller than the logging interval",
                 r"The `srun` command is available on your system but is not used"):
        warnings.filterwarnings("ignore", message=moot)


def quiet_mid_epoch_resume() -> None:
    """pdeop's data modules go on mid-epoch from Lightning's own count of the epoch's batches taken
    (``pdeop.data.sampling.fit_position``), not through the loader protocol Lightning looks for: its warning that a
    checkpoint written mid-epoch resumes with a loader that cannot is moot for them."""
    warnings.filterwarnings("ignore", message=r"You're resuming from a checkpoint that ended before the epoch ended")


def quiet_resumed_folder() -> None:
    """A run continuing in its own folder finds its checkpoints there, as it should: Lightning's warning is moot."""
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
