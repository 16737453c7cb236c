"""Samplers that shard data across ranks without repeats, in an order that depends only on (seed, epoch).

pdeop shards its own data (the trainer runs with ``use_distributed_sampler: false``):
Lightning's distributed sampler pads every rank to the same length by repeating samples, which
would count some validation samples twice and make multi-process metrics differ from
single-process ones.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Sampler


class EpochShuffleSampler(Sampler[int]):
    """A fresh permutation each epoch, drawn from ``seed + epoch``, of which rank r takes every world-th entry from r.

    All ranks draw the same permutation, so together they see each sample at most once per epoch;
    when ``n_samples`` does not divide by the world size, the permutation's last few samples sit
    the epoch out (a different few each epoch), so that every rank takes the same number of steps.
    Lightning calls ``set_epoch`` at the start of every epoch, including the first epoch after
    a resume, so the order of samples does not depend on how the run got there.
    """

    def __init__(self, n_samples: int, seed: int, rank: int = 0, world_size: int = 1):
        self.n_samples, self.seed = n_samples, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n_samples // self.world_size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.n_samples, generator=generator)[: len(self) * self.world_size]
        return iter(order[self.rank :: self.world_size].tolist())


class RankSlice(Sampler[int]):
    """Evaluation order: rank r takes samples r, r + world, r + 2 world, ...; every sample exactly once overall."""

    def __init__(self, n_samples: int, rank: int = 0, world_size: int = 1):
        self.indices = range(rank, n_samples, world_size)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)
