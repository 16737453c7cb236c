"""Training batches drawn from a ``SolverStream``, a fixed number per epoch-equivalent."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.utils.data import IterableDataset

from pdeop.data.stream.generator import SolverStream


class StreamBatches(IterableDataset):
    """Yields ``steps_per_epoch`` batches ``(x, y)`` of ``batch_size`` samples from the stream per pass.

    Its length lets Lightning count steps (schedules such as OneCycle, validation and
    checkpoints every epoch) exactly as with a stored training set. ``taken()``, read as a pass begins, is
    how many of the epoch's steps were already taken (a run resumed from a checkpoint written mid-epoch):
    the pass yields the rest, and draws no batch from the stream that the epoch would not train on.
    """

    def __init__(self, stream: SolverStream, batch_size: int, steps_per_epoch: int,
                 taken: Callable[[], int] = lambda: 0):
        self.stream, self.batch_size, self.steps_per_epoch, self.taken = stream, batch_size, steps_per_epoch, taken

    def __len__(self) -> int:
        return self.steps_per_epoch

    def __iter__(self):
        for _ in range(self.steps_per_epoch - self.taken()):
            samples = [self.stream.get() for _ in range(self.batch_size)]
            yield (torch.from_numpy(np.stack([x for x, _ in samples])),
                   torch.from_numpy(np.stack([y for _, y in samples])))
