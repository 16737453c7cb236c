"""Samplers that shard data across ranks without repeats, in an order that depends only on (seed, epoch).

pdeop shards its own data (the trainer runs with ``use_distributed_sampler: false``):
Lightning's distributed sampler pads every rank to the same length by repeating samples, which
would count some validation samples twice and make multi-process metrics differ from
single-process ones.
"""

from __future__ import annotations

import itertools
import math
from typing import Callable, Iterator

import pytorch_lightning as pl
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler


def fit_position(trainer: pl.Trainer | None) -> tuple[int, int] | None:
    """(epoch, batches of it already taken) from which a fit's training order goes on, read from Lightning's progress
    counters; None outside a fit (a sampler then keeps the epoch ``set_epoch`` gave it).

    Read as an epoch's iteration begins. That is usually after Lightning has set the epoch and reset its count of
    batches, and after a resume from a checkpoint written mid-epoch (SIGTERM) the count is the one the checkpoint
    held. But a loader with worker processes draws its first indices as soon as Lightning calls ``iter`` on it,
    which for a resumed run it does before either: the counters are then still the checkpoint's (``position``).
    """
    if trainer is None or trainer.state.fn != "fit":
        return None
    epochs, batches = trainer.fit_loop.epoch_progress.current, trainer.fit_loop.epoch_loop.batch_progress
    return position(epochs.started, epochs.processed, epochs.completed, batches.current.ready, batches.is_last_batch)


def checkpoint_counters(checkpoint: dict) -> tuple[int, int, int, int, bool]:
    """Lightning's epoch and batch counters in ``checkpoint``, as ``position`` takes them."""
    loop = checkpoint.get("loops", {}).get("fit_loop", {})
    epochs = loop.get("epoch_progress", {}).get("current", {})
    batches = loop.get("epoch_loop.batch_progress", {})
    return (epochs.get("started", 0), epochs.get("processed", 0), epochs.get("completed", 0),
            batches.get("current", {}).get("ready", 0), batches.get("is_last_batch", False))


def checkpoint_position(checkpoint: dict) -> tuple[int, int]:
    """(epoch, batches of it already taken) from which a run resumed from ``checkpoint`` goes on (``position``)."""
    return position(*checkpoint_counters(checkpoint))


def cut_short(checkpoint: dict) -> tuple[int, int] | None:
    """(epoch, batches taken) of the epoch ``checkpoint``'s run ended before its last batch (``trainer.max_steps``,
    ``max_time`` or early stopping: the epoch's end hooks ran); None otherwise. A run resumed from it goes on at
    the next epoch."""
    started, processed, completed, ready, is_last_batch = checkpoint_counters(checkpoint)
    return (completed, ready) if processed > completed and not is_last_batch else None


def position(started: int, processed: int, completed: int, ready: int, is_last_batch: bool) -> tuple[int, int]:
    """(epoch, batches taken) of Lightning's epoch counters (``started``, ``processed``, ``completed``) and batch
    counter (``ready``, ``is_last_batch``): an epoch they show as over (its last batch taken, or its end hooks begun:
    ``processed`` counted, ``completed`` perhaps not yet) means the next epoch, from its start, the one after the
    last ``started``."""
    if is_last_batch or processed > completed:
        return started, 0
    return completed, ready


def batches_taken(trainer: pl.Trainer | None) -> int:
    """Training batches of the current epoch already taken (``fit_position``); 0 outside a fit."""
    position = fit_position(trainer)
    return position[1] if position is not None else 0


def training_sampler(dataset: Dataset, seed: int, rank: int = 0, world_size: int = 1, batch_size: int = 1,
                     position: Callable[[], tuple[int, int] | None] = lambda: None) -> TrainingSampler:
    """A fresh permutation each epoch, drawn from ``seed + epoch``, of which rank r takes every world-th entry from r.

    PyTorch's ``DistributedSampler`` with ``drop_last``: all ranks draw the same permutation, so together
    they see each sample at most once per epoch; when the samples do not divide by the world size, the
    permutation's last few sit the epoch out (a different few each epoch), so that every rank takes the
    same number of steps. The epoch is ``set_epoch``'s, or in a fit ``position()``'s (``fit_position``), so the
    order does not depend on how the run got there (tests/test_ddp.py pins it); a run resumed mid-epoch leaves out
    the batches of ``batch_size`` it had taken and draws the rest of the same order.
    """
    return TrainingSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True,
                           batch_size=batch_size, position=position)


class TrainingSampler(DistributedSampler):
    """PyTorch's ``DistributedSampler`` whose epoch, and the batches of it already taken, come from ``position()``
    (``fit_position``) when it says, as iteration begins; this rank's indices of those batches are left out.

    Its length stays the whole epoch's, as Lightning counts an epoch's batches once, before a resume.
    """

    def __init__(self, *args, batch_size: int = 1, position: Callable[[], tuple[int, int] | None] = lambda: None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_size, self.position = batch_size, position

    def __iter__(self) -> Iterator[int]:
        position = self.position()
        if position is None:
            return super().__iter__()
        self.epoch, taken = position
        return itertools.islice(super().__iter__(), taken * self.batch_size, None)


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
