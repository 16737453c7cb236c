"""Samplers that shard data across ranks without repeats, in an order that depends only on (seed, epoch).

pdeop shards its own data (the trainer runs with ``use_distributed_sampler: false``):
Lightning's distributed sampler pads every rank to the same length by repeating samples, which
would count some validation samples twice and make multi-process metrics differ from
single-process ones.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
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


class DeviceBatches:
    """Training batches indexed out of tensors that stay on the accelerator, in ``sampler``'s order.

    What a ``DataLoader`` over ``TensorDataset(*tensors)`` with this sampler and ``batch_size`` yields
    (the same samples, batches and order; the last batch may be short), without collating every
    batch on the host and copying it over: each epoch the sampler's indices go to the device once,
    and every batch is an ``index_select`` there. Lightning calls ``sampler.set_epoch`` on it as on a
    loader (it looks for a ``sampler`` attribute), so the epoch counter drives the order as before.
    """

    def __init__(self, tensors: tuple[torch.Tensor, ...], sampler: Sampler[int], batch_size: int):
        self.tensors = tensors
        self.sampler = sampler
        self.batch_size = batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        # a generator: the permutation is drawn at the first batch, after Lightning's set_epoch, as a DataLoader does
        order = torch.tensor(list(self.sampler), dtype=torch.long).to(self.tensors[0].device)
        for indices in order.split(self.batch_size):
            yield tuple(tensor.index_select(0, indices) for tensor in self.tensors)
