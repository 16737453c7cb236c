"""Tasks on trajectories: which input-output pairs a model learns from a time-dependent dataset.

A stored time-dependent dataset holds, per sample, the initial state (``inputs``) and the states
recorded at ``times`` (``outputs``, ``[samples, channels, times, *grid]``). The data config's
``task`` turns them into pairs, so one file serves several settings:

- ``FinalState``: initial state -> the state at one time (FNO's and T1's 2D setting, w0 -> w(T)).
- ``Window``: the last ``history`` states -> the next ``horizon`` states, predicted ``step`` at a
  time and fed back (autoregressive rollout; FNO-2D's and LSM's Navier-Stokes setting, 10 -> 10),
  scored both per step (mean of each call's relative L2) and on the whole rolled-out trajectory.
- ``AllToAll``: every pair of snapshots (t_i <= t_j) with the lead time as the model's time input,
  Poseidon's training for time-conditioned models (scOT).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from pdeop.data.normalise import channel_normaliser, fit_channel_normaliser
from pdeop.data.store import FieldSet
from pdeop.errors import ConfigError, DataFileError


def require_trajectories(fields: FieldSet, task: str) -> None:
    if fields.times is None:
        raise DataFileError(f"data.task: {task} needs a time-dependent dataset (trajectories), but this one "
                            f"stores single outputs; remove data.task for it")


def relative_l2_per_block(prediction: torch.Tensor, target: torch.Tensor, blocks: int) -> torch.Tensor:
    """``||prediction - target|| / ||target||`` per sample over ``blocks`` equal runs of stacked channels,
    ``[b, blocks]``."""
    b = target.shape[0]
    diff = (prediction - target).reshape(b, blocks, -1)
    return diff.norm(dim=-1) / target.reshape(b, blocks, -1).norm(dim=-1)



@dataclass(frozen=True)
class FinalState:
    """Initial state -> the state at ``time`` (default: the last recorded time)."""

    time: float | None = None

    def in_channels(self, channels: int) -> int:
        return channels

    def out_channels(self, channels: int) -> int:
        return channels

    def channel_names(self, input_names: list[str], output_names: list[str]) -> tuple[list[str], list[str]]:
        return input_names, output_names

    def index(self, times: np.ndarray) -> int:
        """Position of the chosen state among the recorded ``times``."""
        if self.time is None:
            return len(times) - 1
        matches = np.flatnonzero(np.isclose(times, self.time, rtol=1e-9, atol=1e-12))
        if not len(matches):
            raise ConfigError(f"data.task.time: {self.time} is not a recorded time; the data has {times.tolist()}")
        return int(matches[0])

    def selection(self, times: np.ndarray) -> tuple[slice, "FinalState"]:
        """The recorded states this task reads (one), and the task that makes its pairs from them alone."""
        index = self.index(times)
        return slice(index, index + 1), FinalState()

    def pairs(self, fields: FieldSet) -> FieldSet:
        require_trajectories(fields, "FinalState")
        index = self.index(fields.times)
        return FieldSet(fields.inputs, np.ascontiguousarray(fields.outputs[:, :, index]), fields.coords,
                        fields.subsample)


@dataclass(frozen=True)
class Window:
    """The ``history`` states from snapshot ``start`` on -> the ``horizon`` states after them.

    Snapshots are the recorded states (with the initial state first when ``include_initial``).
    States are stacked time-major into channels (``[t0 c0, t0 c1, t1 c0, ...]``). The model maps
    ``history`` states to the next ``step``; ``rollout`` feeds its predictions back until the
    horizon is covered, in physical units, so the loss is taken on the rolled-out states (every
    step's prediction made from earlier predictions), as in FNO's ``fourier_2d_time.py``.

    Errors, as FNO's and LSM's NS scripts (``fourier_2d_time.py``, ``exp_ns.py``) compute them, per
    sample with every channel and node of the compared states in one norm, then averaged over samples:
    ``step_errors``, one per model call (``step`` states), whose mean over calls is their
    ``test_l2_step``; ``full_errors``, one of the whole rolled-out horizon, their ``test_l2_full``
    (the figure of FNO's NS table, by its author in neuraloperator issue #34); ``lead_errors``,
    one per state.
    """

    history: int = 10
    horizon: int = 10
    step: int = 1
    start: int = 0
    include_initial: bool = False

    def __post_init__(self) -> None:
        for key in ("history", "horizon", "step"):
            if getattr(self, key) < 1:
                raise ConfigError(f"data.task.{key}: expected a positive number of states, got {getattr(self, key)}")
        if self.horizon % self.step:
            raise ConfigError(f"data.task.step: expected a divisor of horizon = {self.horizon}, got {self.step}")
        if self.start < 0:
            raise ConfigError(f"data.task.start: expected a snapshot index >= 0, got {self.start}")

    def in_channels(self, channels: int) -> int:
        return channels * self.history

    def out_channels(self, channels: int) -> int:
        return channels * self.step

    def channel_names(self, input_names: list[str], output_names: list[str]) -> tuple[list[str], list[str]]:
        """Names of the stacked channels: ``w_t0 ... w_t9`` in, ``w_lead1 ... w_lead10`` out (the whole horizon)."""
        snapshot_names = output_names
        return ([f"{n}_t{k}" for k in range(self.history) for n in snapshot_names],
                [f"{n}_lead{k}" for k in range(1, self.horizon + 1) for n in snapshot_names])

    def check_length(self, times: np.ndarray) -> None:
        needed = self.start + self.history + self.horizon
        if len(times) + self.include_initial < needed:
            raise ConfigError(f"data.task: start + history + horizon = {needed} snapshots, but the data has "
                              f"{len(times) + self.include_initial} (times {times.tolist()})")

    def selection(self, times: np.ndarray) -> tuple[slice, "Window"]:
        """The recorded states this task reads, and the task that makes its pairs from them alone."""
        self.check_length(times)
        span = self.history + self.horizon
        if self.include_initial and self.start == 0:
            return slice(0, span - 1), self
        first = self.start - self.include_initial
        return slice(first, first + span), dataclasses.replace(self, start=0, include_initial=False)

    def pairs(self, fields: FieldSet) -> FieldSet:
        require_trajectories(fields, "Window")
        self.check_length(fields.times)
        snapshots = fields.outputs
        if self.include_initial:
            snapshots = np.concatenate([fields.inputs[:, :, None], snapshots], axis=2)

        def stacked(first: int, count: int) -> np.ndarray:
            block = np.moveaxis(snapshots[:, :, first:first + count], 2, 1)  # [n, count, channels, *grid]
            return np.ascontiguousarray(block.reshape(block.shape[0], -1, *block.shape[3:]))

        return FieldSet(stacked(self.start, self.history), stacked(self.start + self.history, self.horizon),
                        fields.coords, fields.subsample)

    def fit_normalisers(self, inputs: np.ndarray, outputs: np.ndarray) -> tuple[nn.Module, nn.Module]:
        """One per-physical-channel statistic of all states, input and output, repeated over every slot.

        A rollout feeds predicted states back as inputs, so a state is normalised the same way
        in whichever slot of the window it sits, on either side: a model that adds its latest input
        state to its output (MgNO's ``input_residual``) then adds it in physical units. Separate
        input and output statistics scaled that state by their ratio at every step, which grew a
        rollout geometrically (2.7-fold a step on Navier-Stokes nu = 1e-5, whose vorticity grows in time).
        """
        fitted = fit_channel_normaliser(torch.from_numpy(np.concatenate(self.states(inputs, outputs))))
        return self.repeat_normalisers(fitted)

    def states(self, inputs: np.ndarray, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Windows' stacked states unstacked, ``[n * count, channels, *grid]``: what the statistics are taken over."""
        def unstacked(stacked: np.ndarray, count: int) -> np.ndarray:
            n, grid = stacked.shape[0], stacked.shape[2:]
            return stacked.reshape(n * count, -1, *grid)

        return unstacked(inputs, self.history), unstacked(outputs, self.horizon)

    def repeat_normalisers(self, fitted: nn.Module) -> tuple[nn.Module, nn.Module]:
        """A per-state normaliser repeated over the ``history`` input and ``step`` output slots."""
        def repeated(count: int) -> nn.Module:
            times = (1, count, *[1] * (fitted.mean.ndim - 2))
            return channel_normaliser(fitted.mean.repeat(times), fitted.std.repeat(times))

        return repeated(self.history), repeated(self.step)

    def rollout(self, predict: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The ``horizon`` states after ``x`` (``[b, channels * history, *grid]``), ``step`` states per call."""
        channels = x.shape[1] // self.history
        outputs = []
        for _ in range(self.horizon // self.step):
            prediction = predict(x)
            outputs.append(prediction)
            x = torch.cat([x[:, channels * self.step:], prediction], dim=1)
        return torch.cat(outputs, dim=1)

    def lead_errors(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Relative L2 error per sample and lead time, ``[b, horizon]``."""
        return relative_l2_per_block(prediction, target, self.horizon)

    def step_errors(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Relative L2 error per sample and model call (its ``step`` states), ``[b, horizon // step]``:
        the terms FNO's ``test_l2_step`` averages."""
        return relative_l2_per_block(prediction, target, self.horizon // self.step)

    @staticmethod
    def full_errors(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Relative L2 error per sample of the whole rolled-out horizon, ``[b]``: FNO's ``test_l2_full`` terms."""
        return relative_l2_per_block(prediction, target, 1)[:, 0]


class SnapshotPairs(Dataset):
    """Lazy (state at t_i, lead time, state at t_j) triples of every trajectory: nothing is copied per pair."""

    def __init__(self, snapshots: np.ndarray, pairs: list[tuple[int, int]], lead_times: np.ndarray):
        self.snapshots = torch.from_numpy(snapshots)  # [n, S, channels, *grid]
        self.pairs = pairs
        self.lead_times = torch.from_numpy(lead_times.astype(np.float32))  # per pair

    def __len__(self) -> int:
        return len(self.snapshots) * len(self.pairs)

    def __getitem__(self, index: int):
        trajectory, pair = divmod(index, len(self.pairs))
        i, j = self.pairs[pair]
        return self.snapshots[trajectory, i], self.lead_times[pair], self.snapshots[trajectory, j]


@dataclass(frozen=True)
class AllToAll:
    """Every pair (t_i <= t_j) of a trajectory's snapshots, the initial state included, as in Poseidon.

    The model gets the lead time ``(t_j - t_i) / (t_last - t_0)`` as its time input (Poseidon
    divides by the index of the last snapshot; the same on uniformly recorded data).
    ``max_lead`` limits j - i (snapshot steps); ``same_time`` keeps the i = j pairs Poseidon
    trains on. Validation and test are (initial state -> state at t_j) for every recorded t_j.
    """

    max_lead: int | None = None
    same_time: bool = True

    def __post_init__(self) -> None:
        if self.max_lead is not None and self.max_lead < 1:
            raise ConfigError(f"data.task.max_lead: expected at least 1 snapshot step, got {self.max_lead}")

    def in_channels(self, channels: int) -> int:
        return channels

    def out_channels(self, channels: int) -> int:
        return channels

    def channel_names(self, input_names: list[str], output_names: list[str]) -> tuple[list[str], list[str]]:
        return output_names, output_names

    @staticmethod
    def snapshots(fields: FieldSet) -> tuple[np.ndarray, np.ndarray]:
        """States ``[n, S, channels, *grid]`` at times ``[S]`` (0 first), and the normalised times."""
        require_trajectories(fields, "AllToAll")
        states = np.concatenate([fields.inputs[:, None], np.moveaxis(fields.outputs, 2, 1)], axis=1)
        times = np.concatenate([[0.0], fields.times])
        return np.ascontiguousarray(states), times / times[-1]

    def selection(self, times: np.ndarray) -> tuple[slice, "AllToAll"]:
        """Every recorded state: pairs are drawn across the whole trajectory."""
        return slice(None), self

    def train_dataset(self, fields: FieldSet) -> SnapshotPairs:
        states, times = self.snapshots(fields)
        count = states.shape[1]
        pairs = [(i, j) for i in range(count) for j in range(i if self.same_time else i + 1, count)
                 if self.max_lead is None or j - i <= self.max_lead]
        return SnapshotPairs(states, pairs, np.array([times[j] - times[i] for i, j in pairs]))

    def pairs(self, fields: FieldSet) -> FieldSet:
        """(initial state -> state at t_j) for every recorded t_j, sample-major: ``[n * (S - 1), ...]``."""
        states, times = self.snapshots(fields)
        n, count = states.shape[:2]
        inputs = np.repeat(states[:, 0], count - 1, axis=0)
        outputs = states[:, 1:].reshape(n * (count - 1), *states.shape[2:])
        return FieldSet(inputs, np.ascontiguousarray(outputs), fields.coords, fields.subsample,
                        lead_times=np.tile(times[1:], n).astype(np.float32))

    @staticmethod
    def locate(index: int, lead_times: np.ndarray) -> tuple[int, int]:
        """The trajectory and lead (recorded states after the initial one: 1 is the first) of ``pairs``' pair
        ``index``, given those pairs' ``lead_times``: a pair's index alone does not find its trajectory."""
        per_trajectory = len(np.unique(lead_times))
        return index // per_trajectory, index % per_trajectory + 1

    def fit_normalisers(self, inputs: np.ndarray, outputs: np.ndarray) -> tuple[nn.Module, nn.Module]:
        """One per-channel normaliser of all states, for both sides: a state is a state at any time."""
        fitted = fit_channel_normaliser(torch.from_numpy(np.concatenate([inputs, outputs])))
        return channel_normaliser(fitted.mean, fitted.std), channel_normaliser(fitted.mean, fitted.std)
