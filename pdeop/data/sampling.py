"""Shuffling that depends only on (seed, epoch), so a resumed run sees the same batches."""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Sampler


class EpochShuffleSampler(Sampler[int]):
    """A fresh permutation each epoch, drawn from ``seed + epoch``.

    Lightning calls ``set_epoch`` at the start of every epoch, including the first epoch after
    a resume, so the order of samples does not depend on how the run got there.
    """

    def __init__(self, n_samples: int, seed: int):
        self.n_samples = n_samples
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n_samples

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.n_samples, generator=generator).tolist())
