"""Samplers that shard data across ranks without repeats, in an order that depends only on (seed, epoch).

pdeop shards its own data (the trainer runs with ``use_distributed_sampler: false``):
Lightning's distributed sampler pads every rank to the same length by repeating samples, which
would count some validation samples twice and make multi-process metrics differ from
single-process ones.
"""

from __future__ import annotations

from typing import Iterator

from torch.utils.data import Dataset, DistributedSampler, Sampler


def training_sampler(dataset: Dataset, seed: int, rank: int = 0, world_size: int = 1) -> DistributedSampler:
    """A fresh permutation each epoch, drawn from ``seed + epoch``, of which rank r takes every world-th entry from r.

    PyTorch's ``DistributedSampler`` with ``drop_last``: all ranks draw the same permutation, so together
    they see each sample at most once per epoch; when the samples do not divide by the world size, the
    permutation's last few sit the epoch out (a different few each epoch), so that every rank takes the
    same number of steps. Lightning calls ``set_epoch`` at the start of every epoch, including the first
    after a resume, so the order does not depend on how the run got there (tests/test_ddp.py pins it).
    """
    return DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True)


class RankSlice(Sampler[int]):
    """Evaluation order: rank r takes samples r, r + world, r + 2 world, ...; every sample exactly once overall.

    (Lightning's ``UnrepeatedDistributedSampler`` orders the same but refuses a rank with no sample.)
    """

    def __init__(self, n_samples: int, rank: int = 0, world_size: int = 1):
        self.indices = range(rank, n_samples, world_size)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)
