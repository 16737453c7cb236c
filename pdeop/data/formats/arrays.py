"""Lazy views of stored arrays in the project's canonical axis order.

Every community format stores its fields in an order of its own: MATLAB v7.3 reverses all axes,
PDEBench puts time before space and channels last, The Well appends tensor components. A
``StoredArray`` names each stored axis once (``sample``, ``channel``, ``component``, ``time``,
``x``, ``y``, ``z``) and reads only what is asked for -- a range of samples, every r-th node,
chosen times -- straight from the storage (h5py slicing), returning ``[samples, channels,
(times), *space]`` float32. Axes the storage lacks are added: a missing channel axis as one
channel, a missing sample or spatial axis (a field constant across samples or along an axis)
by broadcasting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from pdeop.errors import DataFileError

SPACE = ("x", "y", "z")
AXIS_NAMES = ("sample", "channel", "component", "time", *SPACE)
FLOAT32_MAX = float(np.finfo(np.float32).max)


class Float32Overflow(ValueError):
    """A stored value beyond float32's range, which the cast to float32 would turn into Inf; ``sample`` is its
    sample's index among those read."""

    def __init__(self, sample: int):
        super().__init__(f"a value beyond float32's range (+-{FLOAT32_MAX:.3g}) in sample {sample}")
        self.sample = sample


def sample_indices(n: int, samples: slice | np.ndarray) -> np.ndarray:
    """The indices ``samples`` selects among ``n``, without an array of all ``n`` (a file may claim billions)."""
    if isinstance(samples, slice):
        chosen = range(n)[samples]
        return np.arange(chosen.start, chosen.stop, chosen.step)
    return np.asarray(samples)


def check_axes(axes: Sequence[str], ndim: int, where: str) -> tuple[str, ...]:
    """Validate an axis naming of an ``ndim``-dimensional array; ``where`` names the file and key."""
    axes = tuple(str(a) for a in axes)
    unknown = [a for a in axes if a not in AXIS_NAMES]
    if unknown:
        raise DataFileError(f"{where}: unknown axis names {unknown}; expected names from {list(AXIS_NAMES)}")
    if len(set(axes)) != len(axes):
        raise DataFileError(f"{where}: axis names {list(axes)} repeat a name")
    if len(axes) != ndim:
        raise DataFileError(f"{where}: {len(axes)} axis names {list(axes)} for an array with {ndim} axes")
    if "sample" not in axes:
        raise DataFileError(f"{where}: axis names {list(axes)} lack 'sample'")
    return axes


@dataclass
class StoredArray:
    """One stored array (h5py dataset, NumPy array, ...) read lazily in canonical order.

    ``axes`` names the stored axes in storage order. ``time_start`` is the first stored time
    index that belongs to the field (1 when the initial state sits at time index 0 and is served
    as the input instead); ``time_index`` fixes one time (the axis is dropped), for inputs that are
    the initial state of a trajectory. ``space_sizes`` and ``n_samples`` give the sizes of axes
    the storage lacks, for broadcasting.
    """

    source: Any
    axes: tuple[str, ...]
    where: str
    time_start: int = 0
    time_index: int | None = None
    space: tuple[str, ...] = ()
    space_sizes: tuple[int, ...] = ()
    n_samples: int | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.source.shape)

    def size(self, axis: str) -> int | None:
        return self.shape[self.axes.index(axis)] if axis in self.axes else None

    @property
    def has_time(self) -> bool:
        return "time" in self.axes and self.time_index is None

    def time_slice(self, time_step: int = 1, times: slice = slice(None)) -> slice:
        """Stored time indices of the field's every ``time_step``-th state, then of those the ``times`` selected."""
        chosen = range(self.time_start + time_step - 1, self.size("time"), time_step)[times]
        return slice(chosen.start, chosen.stop if chosen.stop >= 0 else None, chosen.step)

    def read(self, samples: slice | np.ndarray, step: int = 1, time_step: int = 1,
             times: slice = slice(None)) -> np.ndarray:
        """Samples ``samples`` (a range, or increasing indices), every ``step``-th node, every ``time_step``-th
        time (of those, ``times``): ``[n, C, (T), *space]``."""
        index = []
        for axis in self.axes:
            if axis == "sample":
                index.append(samples if isinstance(samples, slice) else list(map(int, samples)))
            elif axis in self.space:
                index.append(slice(None, None, step))
            elif axis == "time":
                index.append(self.time_index if self.time_index is not None else self.time_slice(time_step, times))
            else:
                index.append(slice(None))
        data = np.asarray(self.source[tuple(index)])
        kept = [a for a in self.axes if not (a == "time" and self.time_index is not None)]
        for axis in ("sample", "channel", "component"):
            if axis not in kept:
                data, kept = data[np.newaxis], [axis, *kept]
        missing = [a for a in self.space if a not in kept]
        data, kept = data[(np.newaxis,) * len(missing)], [*missing, *kept]
        order = ["sample", "channel", "component", *(["time"] if "time" in kept else []), *self.space]
        data = np.transpose(data, [kept.index(a) for a in order])
        n = data.shape[0] if "sample" in self.axes else len(sample_indices(self.n_samples, samples))
        sizes = [len(range(0, s, step)) for s in self.space_sizes]
        shape = (n, *data.shape[1:-len(self.space)], *sizes) if self.space else data.shape
        if data.shape != shape:  # a field constant across samples or along an axis
            data = np.broadcast_to(data, shape)
        data = data.reshape(data.shape[0], -1, *data.shape[3:])  # channel x component -> channels
        return float32(data)


def float32(data: np.ndarray) -> np.ndarray:
    """``data`` ``[samples, ...]`` as contiguous, writeable float32 (a broadcast view is copied); a finite value
    beyond float32's range raises ``Float32Overflow`` rather than turning into Inf."""
    try:
        with np.errstate(over="raise"):
            return np.require(data, np.float32, ["C_CONTIGUOUS", "WRITEABLE"])
    except FloatingPointError:
        with np.errstate(invalid="ignore"):
            too_big = np.abs(data.reshape(len(data), -1)) > FLOAT32_MAX
        raise Float32Overflow(int(np.argmax(too_big.any(axis=1)))) from None


def first_bad_sample(data: np.ndarray) -> int | None:
    """Index of the first sample holding NaN or Inf, or None."""
    bad = ~np.isfinite(data).reshape(len(data), -1).all(axis=1)
    return int(np.argmax(bad)) if bad.any() else None


class GroupStack:
    """Arrays of one name in many HDF5 groups, seen as one array with a leading sample axis.

    PDEBench's per-seed layout keeps each sample in a group of its own (``"0000"/data``, ...).
    """

    def __init__(self, file, groups: Sequence[str], key: str):
        self.file, self.groups, self.key = file, list(groups), key
        first = file[f"{self.groups[0]}/{key}"]
        self.shape, self.dtype = (len(self.groups), *first.shape), first.dtype

    @property
    def members(self) -> list:
        """The stored array of each group, in sample order."""
        return [self.file[f"{g}/{self.key}"] for g in self.groups]

    def __getitem__(self, index: tuple) -> np.ndarray:
        samples, rest = index[0], tuple(index[1:])
        groups = self.groups[samples] if isinstance(samples, slice) else [self.groups[i] for i in samples]
        return np.stack([self.file[f"{g}/{self.key}"][rest] for g in groups])
