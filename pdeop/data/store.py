"""The project's one HDF5 layout for generated datasets (documented in docs/hdf5_format.md).

A file holds splits (train, val, test), each at one or more grid resolutions:

    /                      attrs: problem, params (JSON), seed, pdeop_version, format_version, created_utc
    /<split>/<n>/          one resolution, n nodes a side; attrs: subsample
    /<split>/<n>/inputs    float32 [samples, in_channels, n, n]
    /<split>/<n>/outputs   float32 [samples, out_channels, n, n], or [samples, out_channels, times, n, n]
    /<split>/<n>/x, y      float64 node coordinates
    /<split>/<n>/t         float64 recorded times (time-dependent problems: the outputs are trajectories)

Writes go to a temporary file in the same folder that is renamed into place only when
complete, so an interrupted write never leaves a file that looks finished.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from pdeop.errors import DataFileError
from pdeop.io import UMASK, UnwritablePathError, is_disk_full

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")


@dataclass
class FieldSet:
    """Inputs and outputs of one split at one resolution, with the node coordinates of each axis.

    For a time-dependent problem the outputs are trajectories recorded at ``times``; a task
    (``pdeop.data.tasks``) turns them into the input-output pairs a model trains on.
    """

    inputs: np.ndarray
    outputs: np.ndarray
    coords: dict[str, np.ndarray]
    subsample: int = 1
    times: np.ndarray | None = None  # trajectories: outputs are [samples, channels, times, *grid]
    lead_times: np.ndarray | None = None  # pairs of a time-conditioned task: the model's time input per sample


@dataclass
class DatasetAttrs:
    """What a file records about how it was made."""

    problem: str
    params: dict
    seed: int
    pdeop_version: str
    created_utc: str
    format_version: int = FORMAT_VERSION
    input_names: tuple[str, ...] = field(default_factory=tuple)
    output_names: tuple[str, ...] = field(default_factory=tuple)

    def to_h5(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "params"}
        out["params"] = json.dumps(self.params, sort_keys=True)
        out["input_names"] = list(self.input_names)
        out["output_names"] = list(self.output_names)
        return out

    @classmethod
    def from_h5(cls, attrs: h5py.AttributeManager) -> "DatasetAttrs":
        def names(key: str) -> tuple[str, ...]:
            return tuple(str(v.decode() if isinstance(v, bytes) else v) for v in attrs[key])

        return cls(
            problem=str(attrs["problem"]),
            params=json.loads(attrs["params"]),
            seed=int(attrs["seed"]),
            pdeop_version=str(attrs["pdeop_version"]),
            created_utc=str(attrs["created_utc"]),
            format_version=int(attrs["format_version"]),
            input_names=names("input_names"),
            output_names=names("output_names"),
        )


def lock_new_temp(path: Path) -> tuple[Path, int]:
    """Create ``.<name>.<random>.tmp`` beside ``path`` and hold an exclusive ``flock`` on it; returns it and the fd.

    The lock tells ``remove_stale_temps`` in other processes that a live writer owns the file. A
    cleaner may remove the file between its creation and the lock: then the path no longer names
    the locked file, and another is made.
    """
    while True:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(name).st_ino == os.fstat(fd).st_ino:
                os.chmod(name, 0o666 & ~UMASK)  # mkstemp's 0600 would hide shared datasets from a cluster group
                return Path(name), fd
        except FileNotFoundError:
            pass
        os.close(fd)


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temporary files of ``path`` that no live writer holds (left by a killed generation)."""
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
        except BlockingIOError:
            pass  # another process is writing it
        finally:
            os.close(fd)
    return removed


class DiskFullError(UnwritablePathError):
    """The disk holding the data directory ran out of space while a dataset was written."""


class DatasetWriter:
    """Writes one dataset file atomically; use as a context manager and add split groups inside.

    The file is written to a locked temporary beside ``path`` (``lock_new_temp``) and renamed onto
    ``path`` when the block succeeds. HDF5's chunk cache is off: every write reaches the disk at
    once, so a full disk fails the write that hit it. With the cache on, cached chunks are flushed
    when a dataset handle is released (errors h5py can only print) and at close, where HDF5 2.0
    crashed with a segmentation fault after a failed flush. On any failure the temporary is
    truncated first (which gives HDF5's closing metadata writes room on a full disk), then closed
    and removed. ``expected_bytes`` is quoted when the disk fills up; ``moved_by`` names the key
    that moves the data directory.
    """

    def __init__(self, path: Path, attrs: DatasetAttrs, expected_bytes: int | None = None,
                 moved_by: str = "data.data_dir"):
        self.path = Path(path)
        self.attrs = attrs
        self.expected_bytes, self.moved_by = expected_bytes, moved_by
        self._tmp: Path | None = None
        self._lock: int | None = None
        self._file: h5py.File | None = None
        self._arrays: dict[tuple[str, int], dict[str, h5py.Dataset]] = {}
        self._handles: list[h5py.HLObject] = []

    def __enter__(self) -> "DatasetWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp, self._lock = lock_new_temp(self.path)
        try:
            self._file = h5py.File(self._tmp, "w", rdcc_nbytes=0, locking=False)  # our flock is the lock
            self._file.attrs.update(self.attrs.to_h5())
        except BaseException as exc:
            self._fail(exc)
            raise
        return self

    def create(self, split: str, resolution: int, n_samples: int, in_channels: int,
               out_channels: int, coords: dict[str, np.ndarray], subsample: int,
               times: np.ndarray | None = None) -> None:
        """Create an empty group for ``split`` at ``resolution``, to be filled with ``write``.

        With ``times``, the outputs are trajectories with a time axis after the channels. Every
        handle stays open until the file closes: HDF5 writes metadata when a handle is released,
        and an error there could only be printed, not raised.
        """
        group = self._file.create_group(f"{split}/{resolution}")
        group.attrs["subsample"] = subsample
        shape = (resolution,) * len(coords)
        time_axis = () if times is None else (len(times),)
        arrays = {}
        for name, channels, extra in (("inputs", in_channels, ()), ("outputs", out_channels, time_axis)):
            # one sample per chunk, so a lazy reader can slice single samples cheaply; each with a Fletcher-32
            # checksum, so that damage on disk (a bad sector, a copy cut short) is an error when read, not data
            arrays[name] = group.create_dataset(name, (n_samples, channels, *extra, *shape), "f4",
                                                chunks=(1, channels, *extra, *shape), fletcher32=True)
        self._arrays[split, resolution] = arrays
        self._handles.append(group)
        for name, values in coords.items():
            self._handles.append(group.create_dataset(name, data=values))
        if times is not None:
            self._handles.append(group.create_dataset("t", data=np.asarray(times, dtype=np.float64)))

    def write(self, split: str, resolution: int, start: int, inputs: np.ndarray, outputs: np.ndarray) -> None:
        """Store samples ``start, start + 1, ...`` of ``split`` at ``resolution``."""
        arrays = self._arrays[split, resolution]
        arrays["inputs"][start:start + len(inputs)] = inputs
        arrays["outputs"][start:start + len(outputs)] = outputs

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is not None:
            self._fail(exc)
            return False
        try:
            self._file.close()
        except BaseException as close_exc:
            self._fail(close_exc)
            raise
        os.replace(self._tmp, self.path)
        os.close(self._lock)
        return False

    def _fail(self, exc: BaseException) -> None:
        """Free the disk space, close and remove the temporary; a full disk becomes ``DiskFullError``."""
        os.truncate(self._tmp, 0)
        if self._file is not None:
            try:
                self._file.close()
            except Exception:  # noqa: BLE001 -- the file is discarded; the first error is the one to report
                pass
        self._tmp.unlink(missing_ok=True)
        os.close(self._lock)
        if is_disk_full(exc):
            need = "" if self.expected_bytes is None else f" (the file needs about {mib(self.expected_bytes)})"
            raise DiskFullError(f"'{self.path.parent}' ran out of space while writing '{self.path.name}'{need}; "
                                f"nothing was kept: free space there or set {self.moved_by} to write "
                                f"elsewhere") from exc


def mib(n_bytes: int) -> str:
    """A size in MiB, readable in a message."""
    return f"{n_bytes / 2**20:.1f} MiB"


def is_pdeop_file(path: Path) -> bool:
    """Whether ``path`` is a dataset in this layout (HDF5 with the ``problem`` and ``format_version`` attributes)."""
    if not h5py.is_hdf5(path):
        return False
    with h5py.File(path, "r") as f:
        return "format_version" in f.attrs and "problem" in f.attrs


def readable_pdeop_file(path: Path) -> bool:
    """``is_pdeop_file``, False where the file cannot even be opened (damaged, not HDF5, unreadable)."""
    try:
        return is_pdeop_file(path)
    except Exception:  # noqa: BLE001 -- h5py raises many kinds on a damaged file
        return False


def regenerate_hint(path: Path) -> str:
    return f"delete '{path}' and run `python -m pdeop.generate` with the same data config to make it again"


class DatasetFile:
    """Read access to a stored dataset; splits are read only when asked for."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if self.path.is_dir():
            raise DataFileError(f"dataset file '{self.path}' is a directory; data.path names a pdeop dataset file "
                                f"(.h5), and data=from_file reads a folder of another layout")
        if not self.path.is_file():
            raise DataFileError(
                f"dataset file '{self.path}' does not exist; generate it with "
                f"`python -m pdeop.generate data=<name>` (or train with data.generate=true)"
            )
        try:
            with h5py.File(self.path, "r") as f:
                self.attrs = DatasetAttrs.from_h5(f.attrs)
                self.layout = {
                    split: sorted(int(r) for r in f[split].keys()) for split in f.keys()
                }
                self._check_shapes(f)
        except (OSError, KeyError, ValueError, TypeError, AttributeError, RuntimeError) as exc:  # h5py's, wrong kinds
            made_here = readable_pdeop_file(self.path)
            raise DataFileError(
                f"dataset file '{self.path}' is not a readable pdeop dataset ({exc}); "
                + (regenerate_hint(self.path) if made_here else
                   f"if pdeop generated it (damaged since), {regenerate_hint(self.path)}; a file of another layout "
                   f"(FNO's .mat, PDEBench, The Well, arrays) is read with data=from_file data.path=<it>")
            ) from exc
        if self.attrs.format_version != FORMAT_VERSION:
            raise DataFileError(
                f"dataset file '{self.path}' has format version {self.attrs.format_version}, "
                f"this pdeop reads version {FORMAT_VERSION}; " + regenerate_hint(self.path)
            )

    def _check_shapes(self, f: h5py.File) -> None:
        """Refuse a file whose groups disagree (grids, channels, sample counts, coordinates, times) before
        torch meets the arrays; the message names the split, resolution and field."""
        channels = {"inputs": len(self.attrs.input_names), "outputs": len(self.attrs.output_names)}
        for split, resolutions in self.layout.items():
            for resolution in resolutions:
                check_group(self.path, f[f"{split}/{resolution}"], f"{split}/{resolution}", resolution, channels)

    @property
    def input_names(self) -> list[str]:
        return list(self.attrs.input_names)

    @property
    def output_names(self) -> list[str]:
        return list(self.attrs.output_names)

    @property
    def provenance(self) -> dict:
        """How the data was made: every generation parameter."""
        return self.attrs.params

    def resolutions(self, split: str) -> list[int]:
        """Stored resolutions of ``split``, coarsest first."""
        if split not in self.layout:
            raise DataFileError(f"dataset file '{self.path}' has no split '{split}'; it has {sorted(self.layout)}")
        return self.layout[split]

    def read(self, split: str, resolution: int | None = None) -> FieldSet:
        """Load one split at one resolution (default: the coarsest) into memory."""
        available = self.resolutions(split)
        resolution = available[0] if resolution is None else resolution
        if resolution not in available:
            raise DataFileError(
                f"dataset file '{self.path}' has split '{split}' at resolutions {available}, not {resolution}"
            )
        try:
            with h5py.File(self.path, "r") as f:
                group = f[f"{split}/{resolution}"]
                fields = FieldSet(
                    inputs=group["inputs"][()],
                    outputs=group["outputs"][()],
                    coords={k: group[k][()] for k in coordinate_names(group)},
                    subsample=int(group.attrs["subsample"]),
                    times=group["t"][()] if "t" in group else None,
                )
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise DataFileError(
                f"dataset file '{self.path}' could not be read at '{split}/{resolution}' ({exc}); "
                + regenerate_hint(self.path)
            ) from exc
        for name in ("inputs", "outputs"):
            bad = first_nonfinite_sample(getattr(fields, name))
            if bad is not None:
                raise DataFileError(f"dataset file '{self.path}' split '{split}/{resolution}' field '{name}': NaN or "
                                    f"Inf in sample {bad}; " + regenerate_hint(self.path))
        return fields


def coordinate_names(group: h5py.Group) -> list[str]:
    """The node coordinate arrays of a resolution group (``x``, ``y``, ...), in axis order."""
    return sorted(k for k in group.keys() if k not in ("inputs", "outputs", "t"))


def check_group(path: Path, group: h5py.Group, where: str, resolution: int, channels: dict[str, int]) -> None:
    """Shapes of one ``<split>/<n>`` group against each other, its name and the file's channel names."""
    def refuse(field: str, problem: str) -> None:
        raise DataFileError(f"dataset file '{path}' split '{where}' field '{field}': {problem}; "
                            + regenerate_hint(path))

    for name in ("inputs", "outputs"):
        if name not in group:
            refuse(name, "missing")
        if not isinstance(group.get(name, getlink=True), h5py.HardLink):  # pdeop stores data, never links
            refuse(name, "a link, not data stored in the file")
        if group.get(name, getclass=True) is not h5py.Dataset:
            refuse(name, "not a dataset")
        if group[name].dtype.kind != "f":
            refuse(name, f"dtype {group[name].dtype}, not floating point")
    inputs, outputs = group["inputs"].shape, group["outputs"].shape
    axes = coordinate_names(group)
    if not axes:
        refuse("x", "no node coordinates")
    grid = (resolution,) * len(axes)
    for name, shape in (("inputs", inputs), ("outputs", outputs)):
        if len(shape) < 2 + len(grid) or shape[-len(grid):] != grid:
            refuse(name, f"shape {list(shape)} does not end in the {'x'.join(map(str, grid))} grid of "
                         f"coordinates {axes} at resolution {resolution}")
        if shape[1] != channels[name]:
            refuse(name, f"{shape[1]} channels, but the file names {channels[name]} ({name[:-1]}_names)")
    if outputs[0] != inputs[0]:
        refuse("outputs", f"{outputs[0]} samples, but inputs has {inputs[0]}")
    for axis in axes:
        if group[axis].shape != (resolution,):
            refuse(axis, f"{list(group[axis].shape)} coordinates for a grid of {resolution} nodes")
    if len(outputs) not in (len(inputs), len(inputs) + 1):
        refuse("outputs", f"shape {list(outputs)} does not fit inputs {list(inputs)} (at most a time axis more)")
    times = (outputs[2],) if len(outputs) == len(inputs) + 1 else None
    stored = group["t"].shape if "t" in group else None
    if stored != times:
        refuse("t", f"{'no' if stored is None else list(stored)} recorded times for outputs of shape {list(outputs)}")


def first_nonfinite_sample(data: np.ndarray, chunk_bytes: int = 32 * 2**20) -> int | None:
    """Index of the first sample holding NaN or Inf, or None; checked a chunk of samples at a time, so the
    check's temporaries stay small next to the data."""
    per_sample = max(1, data[0].nbytes if len(data) else 1)
    step = max(1, chunk_bytes // per_sample)
    for start in range(0, len(data), step):
        chunk = data[start:start + step]
        finite = np.isfinite(chunk.reshape(len(chunk), -1)).all(axis=1)
        if not finite.all():
            return start + int(np.argmin(finite))
    return None
