"""A community dataset file mapped onto the project's canonical dataset: inputs, outputs, grid, time.

Whatever the file's layout, a reader returns an ``ExternalDataset``: the inputs (one state per
sample, ``[samples, channels, *space]``), the outputs (one state, or a trajectory recorded at
``times`` with a time axis after the channels), the node coordinates of each spatial axis and
the channel names. Nothing is read until ``read`` asks for a range of samples at a subsampled
grid, which returns the ``FieldSet`` the data modules and tasks work on, so models never know
where the data came from.
"""

from __future__ import annotations

import logging
import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
from h5py._hl.vds import VDSmap
import numpy as np
from scipy.io.matlab import MatReadError

from pdeop.data.formats.arrays import Float32Overflow, StoredArray, first_bad_sample, sample_indices
from pdeop.data.store import FieldSet
from pdeop.errors import DataFileError, first_line

# What the libraries raise on a truncated, corrupt or strangely built file (h5py's RuntimeError: a link loop, a
# missing link target; a group where an array should be; torch's NotImplementedError: a sparse tensor; a layout
# with an axis short of what it needs): the messages rarely name the file, so it is refused in one line that does.
UNREADABLE = (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError, RuntimeError, NotImplementedError,
              StopIteration, EOFError, zipfile.BadZipFile, MatReadError)
ARRAY_FORMATS = ("mat", "pt", "npz")  # named arrays: data.axes names their axes, data.periodic places their nodes
AXES_EXAMPLE = "{inputs: [sample, channel, x, y], outputs: [sample, time, x, y]}"

log = logging.getLogger(__name__)


def suggest_axes(shape: tuple[int, ...], sizes: dict[str, int], role: str) -> list[str] | None:
    """Axis names for an array of ``shape`` on the grid ``sizes``: ``sample`` first, each spatial axis where its
    size is, the axis left ``time`` (outputs) or ``channel``; None when the sizes do not fit so."""
    names, free, spare = ["sample"], dict(sizes), ["time"] if role == "outputs" else ["channel"]
    for n in shape[1:]:
        axis = next((a for a, size in free.items() if size == n), None)
        if axis is not None:
            names.append(axis)
            del free[axis]
        elif spare:
            names.append(spare.pop())
        else:
            return None
    return None if free else names


def grid_coordinates(n: int, periodic: bool) -> np.ndarray:
    """Nodes on [0, 1] for files that store none: ``i / n`` on a periodic grid, else boundary nodes included."""
    return np.arange(n) / n if periodic else np.linspace(0.0, 1.0, n)


def check_subsample(path: Path, key: str, axis: str, n: int, r: int, boundary_nodes: bool,
                    placement_option: bool = False) -> None:
    """Refuse a factor that does not divide the grid: the n - 1 intervals between boundary nodes, or n cells
    (periodic or cell-centred grids). ``placement_option``: ``data.periodic`` chooses the placement (files
    without coordinates), so the message offers the other one where the factor fits it."""
    intervals = n - 1 if boundary_nodes else n
    if r >= 1 and intervals % r == 0:
        return
    divisors = [d for d in range(1, intervals + 1) if intervals % d == 0]
    if boundary_nodes:
        assumed = (f"{n} nodes, taken to include both boundary nodes, which every r-th node keeps ((n - 1)/r + 1 "
                   f"points): r must divide the {n - 1} intervals, one of {divisors}")
    else:
        assumed = f"{n} cells or periodic nodes (n/r points): r must divide {n}, one of {divisors}"
    hint = ""
    if placement_option and r >= 1 and (n if boundary_nodes else n - 1) % r == 0:
        other = (f"data.periodic=true: n/r = {n // r} points, every r-th node from the first" if boundary_nodes
                 else f"data.periodic=false: (n - 1)/r + 1 = {(n - 1) // r + 1} points, both boundary nodes kept")
        hint = f"; if the coarser grid is placed otherwise, set {other}"
    raise DataFileError(f"'{path}' key '{key}': subsampling factor {r} does not divide axis {axis} of {assumed}{hint}")


def check_dtype(path: Path, array: StoredArray) -> None:
    """Refuse values that are no real numbers: complex ones (their imaginary part would be dropped without a
    word), strings, records, objects."""
    dtype = np.dtype(getattr(array.source, "dtype", np.float32))
    if dtype.kind == "c":
        raise DataFileError(f"'{path}' key '{array.where}': complex values ({dtype}); pdeop trains on real fields, "
                            f"so store the real and imaginary parts as two channels")
    if dtype.kind not in "fiub":
        raise DataFileError(f"'{path}' key '{array.where}': values of dtype {dtype}, not numbers")


def vds_source_found(name: str, virtual_file: Path) -> bool:
    """Whether HDF5 finds a virtual dataset's source file ``name`` for ``virtual_file``: the places libhdf5's
    ``H5F_prefix_open_file`` tries, in its order.

    An absolute name as written, then by its last component; each entry of ``HDF5_VDS_PREFIX`` (``:``-separated;
    the whole value also with a leading ``${ORIGIN}`` standing for the file's directory); the virtual file's
    directory; the working directory; the directory of the file with its links resolved. A prefix set on the
    dataset access property list is not tried: pdeop opens files without one.
    """
    candidates = []
    if Path(name).is_absolute():
        candidates.append(Path(name))
        name = Path(name).name
    env = os.environ.get("HDF5_VDS_PREFIX", "")
    prefixes = [prefix for prefix in env.split(":") if prefix]
    if env.startswith("${ORIGIN}"):
        prefixes.append(str(virtual_file.absolute().parent) + env[len("${ORIGIN}"):])
    candidates += [Path(prefix) / name for prefix in prefixes]
    candidates += [virtual_file.absolute().parent / name, Path(name), virtual_file.resolve().parent / name]
    return any(candidate.is_file() for candidate in candidates)


def source_file_names(mapping: VDSmap, extent: tuple[int, ...]) -> list[str]:
    """The source file names of one virtual mapping: its name, or for a printf-style name (``%b``, the block number
    of an unlimited mapping; ``%%``, a percent sign) one name per block within the dataset's current ``extent``."""
    name = mapping.file_name
    if "%b" not in name.replace("%%", ""):
        return [name.replace("%%", "%")]
    start, stride, count, block = mapping.vspace.get_regular_hyperslab()
    axis = next(i for i, n in enumerate(count) if n == h5py.h5s.UNLIMITED)
    blocks = max(0, -(-(extent[axis] - start[axis]) // stride[axis]))
    return [re.sub("%(.)", lambda m: str(b) if m.group(1) == "b" else m.group(1), name) for b in range(blocks)]


def check_virtual_sources(path: Path, key: str, source: h5py.Dataset) -> None:
    """Refuse an HDF5 virtual dataset whose source files HDF5 would not find: it would serve the fill value (zeros)
    in their place without a word. Found where HDF5 looks (``vds_source_found``), ``HDF5_VDS_PREFIX`` included."""
    if not source.is_virtual:
        return
    for mapping in source.virtual_sources():
        for name in source_file_names(mapping, source.shape):
            if name != "." and not vds_source_found(name, path):
                raise DataFileError(f"'{path}' key '{key}': a virtual dataset whose source file '{name}' "
                                    f"HDF5 does not find (beside the file, in the working directory or under "
                                    f"HDF5_VDS_PREFIX); it would read zeros in its place")


def check_external(path: Path, key: str, dataset: h5py.Dataset) -> None:
    """Refuse a dataset stored in external raw files that are missing, not regular files or too short: HDF5 reads
    zeros past a file's end without a word. Each file holds the next part of the data, from its offset on, and is
    looked for where HDF5 looks: after the dataset's prefix (``HDF5_EXTFILE_PREFIX`` as the library read it at
    start, ``${ORIGIN}`` expanded), else from the working directory."""
    prefix = os.fsdecode(dataset.id.get_access_plist().get_efile_prefix())
    remaining = dataset.size * dataset.dtype.itemsize
    for name, offset, size in dataset.external:
        if remaining <= 0:
            break
        needed = min(size, remaining)  # the last file's size is often H5F_UNLIMITED
        file = Path(prefix or ".", os.fsdecode(name))
        if not file.is_file():
            state = "is not a regular file" if file.exists() else "does not exist"
            raise DataFileError(f"'{path}' key '{key}': its values are stored in the external raw file '{file}', "
                                f"which {state}")
        if file.stat().st_size < offset + needed:
            raise DataFileError(f"'{path}' key '{key}': the external raw file '{file}' holds {file.stat().st_size} "
                                f"bytes, short of the {offset + needed} its part of the values needs (offset "
                                f"{offset} + {needed}); HDF5 would read zeros for the rest")
        remaining -= needed


def check_written(path: Path, key: str, dataset: h5py.Dataset) -> None:
    """Refuse an HDF5 dataset whose values were never (all) written: HDF5 reads the fill value (zeros) for chunks
    never written, for a contiguous dataset without storage and past the end of an external file, without a word.
    Only the layout and the chunk index are looked at; no values are read."""
    if not dataset.shape or dataset.size == 0:
        return
    layout = dataset.id.get_create_plist().get_layout()
    if dataset.external:
        check_external(path, key, dataset)
    elif layout == h5py.h5d.CHUNKED:
        needed = math.prod(-(-n // c) for n, c in zip(dataset.shape, dataset.chunks))
        missing = needed - dataset.id.get_num_chunks()
        if missing > 0:
            raise DataFileError(f"'{path}' key '{key}': {missing} of {needed} chunks never written (the writer "
                                f"stopped?); HDF5 would read them as the fill value")
    elif layout == h5py.h5d.CONTIGUOUS and dataset.id.get_offset() is None:
        raise DataFileError(f"'{path}' key '{key}': its {list(dataset.shape)} values were never written (no storage "
                            f"allocated; the writer stopped?); HDF5 would read them as the fill value")


def check_stored(path: Path, array: StoredArray) -> None:
    """Refuse HDF5 datasets behind ``array`` whose values HDF5 would make up (``check_virtual_sources``,
    ``check_written``): one dataset, or one per group of PDEBench's per-sample layout."""
    for dataset in getattr(array.source, "members", [array.source]):
        if isinstance(dataset, h5py.Dataset):
            key = array.where if dataset is array.source else dataset.name
            check_virtual_sources(path, key, dataset)
            check_written(path, key, dataset)


def check_finite(path: Path, key: str, values: np.ndarray, noun: str) -> None:
    """Refuse ``values`` (``noun``: what one of them is, "coordinate") holding NaN or Inf, naming the first."""
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataFileError(f"'{path}' key '{key}': {noun} {values[bad[0]]} at index {bad[0]}; expected finite "
                            f"{noun.split()[-1]}s")


def check_times(path: Path, key: str, times: np.ndarray) -> None:
    """Refuse recorded times that are not finite or do not increase strictly: tasks measure lead times by them and
    normalise by the last (all-zero times would make NaN)."""
    check_finite(path, key, times, "recorded time")
    back = np.flatnonzero(np.diff(times) <= 0)
    if back.size:
        i = back[0]
        raise DataFileError(f"'{path}' key '{key}': recorded times must increase strictly, but index {i} holds "
                            f"{times[i]:g} and index {i + 1} {times[i + 1]:g}")


def check_coordinates(path: Path, key: str, values: np.ndarray) -> None:
    """Refuse node coordinates that are not finite (the evaluation's norms and the models' grids use them)."""
    check_finite(path, key, values, "coordinate")


def keys_of(node) -> list[str]:
    """The member names of an HDF5 group as text: h5py gives a name that is not UTF-8 as bytes, which would not
    sort or compare with the others; such a name is decoded with replacement characters."""
    return [key.decode(errors="replace") if isinstance(key, bytes) else key for key in node.keys()]


@dataclass
class ExternalDataset:
    """One file in a community format, seen as canonical inputs, outputs, coordinates and times.

    ``periodic``: the domain is periodic (the evaluation's H1 norm differentiates across the wrap).
    ``boundary_nodes``: the grid holds both boundary nodes, so a subsampling factor must divide
    n - 1 (FNO's Darcy 421 -> 85); otherwise n (cells, periodic nodes). ``test_first``: the
    format's convention puts the test samples first (PDEBench's single files).
    """

    path: Path
    format: str
    inputs: list[StoredArray]   # stacked along channels
    outputs: list[StoredArray]
    coords: dict[str, np.ndarray]
    periodic: bool
    input_names: list[str]
    output_names: list[str]
    times: np.ndarray | None = None  # times of the outputs' time axis (trajectories only)
    attrs: dict = field(default_factory=dict)
    boundary_nodes: bool = False
    test_first: bool = False
    close: Callable[[], None] = lambda: None

    def __post_init__(self) -> None:
        stored = set()  # inputs and outputs may be views of one source (PDEBench's tensor, its per-sample groups)
        for array in (*self.inputs, *self.outputs):
            check_dtype(self.path, array)
            if id(array.source) not in stored:
                stored.add(id(array.source))
                check_stored(self.path, array)
        self.n_samples = self._check_samples()
        self._check_empty_axes()
        self._check_grids()
        if self.times is not None:
            steps = {a.size("time") - a.time_start for a in self.outputs}
            if steps != {len(self.times)}:
                raise DataFileError(f"'{self.path}': the outputs hold {sorted(steps)} time steps but the file "
                                    f"records {len(self.times)} times")
            if not len(self.times):
                raise DataFileError(f"'{self.path}' key '{self.outputs[0].where}': trajectories of one recorded "
                                    f"state, the input, and no later state to learn as the outputs")

    def _check_samples(self) -> int:
        counts = {a.where: a.n_samples if a.size("sample") is None else a.size("sample")
                  for a in (*self.inputs, *self.outputs)}
        counts = {k: v for k, v in counts.items() if v is not None}  # a field shared by all samples has no count
        if not counts or min(counts.values()) < 1:
            raise DataFileError(f"'{self.path}' holds no samples (" + (", ".join(f"{k} has {v}" for k, v in
                                counts.items()) or "no array has a sample axis") + ")")
        if len(set(counts.values())) != 1:
            raise DataFileError(f"'{self.path}': inputs and outputs disagree on the number of samples: "
                                + ", ".join(f"{k} has {v}" for k, v in counts.items()))
        return next(iter(counts.values()))

    def _check_empty_axes(self) -> None:
        """Refuse an array with an axis of size 0 (a grid of no nodes, no channels): it holds no data."""
        for array in (*self.inputs, *self.outputs):
            empty = next((axis for axis, n in zip(array.axes, array.shape) if n == 0), None)
            if empty is not None:
                raise DataFileError(f"'{self.path}' key '{array.where}': stored {list(array.shape)} as "
                                    f"({', '.join(array.axes)}), its {empty} axis of size 0; it holds no data")

    @property
    def names_axes(self) -> bool:
        """Whether ``data.axes`` names this format's axes and ``data.periodic`` places its nodes (files of arrays
        without a layout of their own: ``.mat``, ``.pt``, ``.npz``)."""
        return self.format.split()[0] in ARRAY_FORMATS

    def _check_grids(self) -> None:
        sizes = {name: len(values) for name, values in self.coords.items()}
        for role, arrays in (("inputs", self.inputs), ("outputs", self.outputs)):
            for array in arrays:
                have = {axis: array.size(axis) for axis in self.coords if array.size(axis) is not None}
                if any(n != sizes[axis] for axis, n in have.items()):
                    hint = self._axes_hint(array, role, sizes) if self.names_axes else ""
                    raise DataFileError(f"'{self.path}' key '{array.where}': grid {have} does not match the "
                                        f"dataset's grid {sizes} (inputs and outputs must share one grid){hint}")

    def _axes_hint(self, array: StoredArray, role: str, sizes: dict[str, int]) -> str:
        """How to name the axes when their order is not the default one, with a naming that fits the grid."""
        shape = array.shape[::-1] if self.format == "mat v7.3" else array.shape  # as the user names them
        names = suggest_axes(shape, sizes, role)
        example = f"{{{role}: [{', '.join(names)}]}}" if names else AXES_EXAMPLE
        return (f"; if its axes {list(shape)} are in another order, name them: data.axes={example} "
                f"(python -m pdeop.data.formats: --axes '{example}')")

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.coords.values())

    @property
    def channel_counts(self) -> tuple[int, int]:
        """Channels of the inputs and of the outputs as served (stored channels times tensor components)."""
        def count(arrays: list[StoredArray]) -> int:
            return sum((a.size("channel") or 1) * (a.size("component") or 1) for a in arrays)
        return count(self.inputs), count(self.outputs)

    def describe(self) -> str:
        """What was found, one line per array, as the readers report it."""
        lines = [f"{self.path} ({self.format}): {self.n_samples} samples on a "
                 f"{'x'.join(map(str, self.grid_shape))} grid ({', '.join(self.coords)})"
                 + ("" if self.times is None else f", trajectories of {len(self.times)} recorded times")]
        for role, arrays in (("inputs", self.inputs), ("outputs", self.outputs)):
            for array in arrays:
                lines.append(f"  {role}: '{array.where}' stored {list(array.shape)} as ({', '.join(array.axes)})")
        return "\n".join(lines)

    def check_subsample(self, r: int) -> None:
        key = (self.inputs + self.outputs)[0].where
        for axis, values in self.coords.items():
            check_subsample(self.path, key, axis, len(values), r, self.boundary_nodes, self.names_axes)

    def check_time_subsample(self, r: int) -> None:
        """Refuse a time factor that would drop the last recorded state or leave none."""
        if self.times is None:
            if r != 1:
                raise DataFileError(f"'{self.path}': data.time_subsample={r}, but the file records no trajectories")
            return
        steps = len(self.times)
        if r < 1 or steps % r:
            divisors = [d for d in range(1, steps + 1) if steps % d == 0]
            raise DataFileError(f"'{self.path}' key '{self.outputs[0].where}': time subsampling factor {r} does not "
                                f"divide the {steps} recorded states after the first; choose one of {divisors}")

    def read(self, samples: slice | np.ndarray, subsample: int = 1, time_subsample: int = 1,
             times: slice = slice(None)) -> FieldSet:
        """Samples ``samples`` (a range, or increasing indices) on every ``subsample``-th node; of trajectories
        every ``time_subsample``-th recorded state, and of those the ``times`` selected (what a task needs)."""
        self.check_subsample(subsample)
        self.check_time_subsample(time_subsample)
        indices = sample_indices(self.n_samples, samples)

        def stack(arrays: list[StoredArray], **steps) -> np.ndarray:
            parts = []
            for array in arrays:
                try:
                    part = array.read(samples, subsample, **steps)
                except Float32Overflow as exc:
                    raise DataFileError(f"'{self.path}' key '{array.where}': a value in sample {indices[exc.sample]} "
                                        f"overflows float32 (beyond +-3.4e38), the precision pdeop trains in; "
                                        f"rescale the data") from exc
                except MemoryError as exc:
                    raise DataFileError(f"'{self.path}' key '{array.where}': not enough memory to read "
                                        f"{len(indices)} samples ({first_line(exc)})") from exc
                except UNREADABLE as exc:
                    raise DataFileError(f"'{self.path}' key '{array.where}' could not be read (truncated or "
                                        f"corrupt?): {first_line(exc)}") from exc
                bad = first_bad_sample(part)
                if bad is not None:
                    raise DataFileError(f"'{self.path}' key '{array.where}': NaN or Inf in sample {indices[bad]}")
                parts.append(part)
            return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]

        recorded = times_read(self.times, time_subsample, times)
        return FieldSet(
            inputs=stack(self.inputs),
            outputs=stack(self.outputs, time_step=time_subsample, times=times),
            coords={k: np.asarray(v[::subsample], dtype=np.float64) for k, v in self.coords.items()},
            subsample=subsample,
            times=recorded,
        )


def times_read(times: np.ndarray | None, time_subsample: int, selected: slice) -> np.ndarray | None:
    """The recorded times a read serves: every ``time_subsample``-th, of those the ``selected`` (None: no times)."""
    return None if times is None else np.asarray(times[time_subsample - 1::time_subsample][selected], np.float64)


def memory_bytes() -> tuple[int | None, int | None]:
    """(available, total) bytes of memory: the kernel's MemAvailable, and MemTotal within this process's cgroup
    limit where one is set (a container, a batch job); None where Linux does not say."""
    try:
        meminfo = Path("/proc/meminfo").read_text()
    except OSError:
        return None, None
    amounts = {key: int(kib) * 1024 for key, kib in re.findall(r"^(MemAvailable|MemTotal):\s+(\d+) kB", meminfo,
                                                                re.MULTILINE)}
    total, limit = amounts.get("MemTotal"), cgroup_memory_limit()
    if limit is not None:
        total = min(limit, total) if total is not None else limit
    return amounts.get("MemAvailable"), total


def cgroup_memory_limit() -> int | None:
    """The memory limit of this process's cgroup: v2's ``memory.max`` of its own cgroup (SLURM's job cgroups,
    systemd units) or at the root of a container's namespace, v1's ``memory.limit_in_bytes``; None where none is
    set or readable."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, relative = line.split(":", 2)
        if controllers == "":
            root, name = Path("/sys/fs/cgroup"), "memory.max"
        elif "memory" in controllers.split(","):
            root, name = Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes"
        else:
            continue
        for candidate in (root / relative.lstrip("/") / name, root / name):
            try:
                text = candidate.read_text().strip()
            except OSError:
                continue
            return int(text) if text.isdigit() else None  # v2's "max": no limit (v1's is a number past any memory)
    return None


def in_units(size: int) -> str:
    """A size in bytes as a message shows it: MiB below a GiB, GiB above."""
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 - 2**20 else f"{max(size / 2**20, 1):.0f} MiB"


def check_memory(source: ExternalDataset | DatasetCollection, samples: slice, subsample: int,
                 time_subsample: int, times: slice, what: str, remedy: str) -> None:
    """Refuse to read ``samples`` of ``source`` (``what``: the split) into memory when the float32 fields (their size
    from the shapes alone: a file may claim far more than there is) exceed the machine's memory, suggesting
    ``remedy``; warn where they exceed what is available now (page cache and memory-mapped files may make room)."""
    n = len(range(source.n_samples)[samples])
    nodes = math.prod(len(values[::subsample]) for values in source.coords.values())
    recorded = times_read(source.times, time_subsample, times)
    steps = 1 if recorded is None else len(recorded)
    inputs, outputs = source.channel_counts
    needed = 4 * n * nodes * (inputs + outputs * steps)
    available, total = memory_bytes()
    if total is not None and needed > total:
        raise DataFileError(f"'{source.path}': {what}, {n} samples, would take {in_units(needed)} in memory, more "
                            f"than this machine's {in_units(total)}; {remedy}")
    if available is not None and needed > available:
        log.warning("'%s': %s, %d samples, takes %s in memory, more than the %s available now; %s if it does not fit",
                    source.path, what, n, in_units(needed), in_units(available), remedy)


class DatasetCollection:
    """Several files of one dataset seen as one, samples numbered file after file (The Well's ``data/train/``).

    The files must agree on channels, grid and times; each is read only where the samples asked
    for lie.
    """

    def __init__(self, path: Path, datasets: list[ExternalDataset]):
        self.path, self.datasets = Path(path), datasets
        first = datasets[0]
        for other in datasets[1:]:
            for what, a, b in (("channels", first.output_names, other.output_names),
                               ("channel counts", first.channel_counts, other.channel_counts),
                               ("grid", first.grid_shape, other.grid_shape),
                               ("times", None if first.times is None else first.times.tolist(),
                                None if other.times is None else other.times.tolist())):
                if a != b:
                    raise DataFileError(f"'{other.path}': its {what} {b} differ from those of '{first.path}' {a}; "
                                        f"the files of '{self.path}' must hold one dataset")
        self.offsets = np.cumsum([0, *(d.n_samples for d in datasets)])
        self.n_samples = int(self.offsets[-1])
        for key in ("format", "coords", "times", "periodic", "input_names", "output_names", "grid_shape",
                    "channel_counts", "boundary_nodes", "test_first"):
            setattr(self, key, getattr(first, key))
        self.attrs = {"files": [str(d.path) for d in datasets], **first.attrs}

    def describe(self) -> str:
        return (f"{self.path}: {len(self.datasets)} files, {self.n_samples} samples in all\n"
                + "\n".join(d.describe() for d in self.datasets))

    def check_subsample(self, r: int) -> None:
        self.datasets[0].check_subsample(r)

    def check_time_subsample(self, r: int) -> None:
        self.datasets[0].check_time_subsample(r)

    def read(self, samples: slice | np.ndarray, subsample: int = 1, time_subsample: int = 1,
             times: slice = slice(None)) -> FieldSet:
        indices = sample_indices(self.n_samples, samples)
        files = np.searchsorted(self.offsets, indices, side="right") - 1
        parts = [self.datasets[f].read(indices[files == f] - self.offsets[f], subsample, time_subsample, times)
                 for f in np.unique(files)]
        first = parts[0]
        return FieldSet(np.concatenate([p.inputs for p in parts]), np.concatenate([p.outputs for p in parts]),
                        first.coords, first.subsample, first.times)

    def close(self) -> None:
        for dataset in self.datasets:
            dataset.close()
