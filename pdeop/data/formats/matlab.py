"""FNO's MATLAB files (Li et al., "Fourier Neural Operator for Parametric PDEs", ICLR 2021).

Darcy (``coeff`` -> ``sol``, [N, s, s]), Burgers (``a`` -> ``u``, [N, s]) and Navier-Stokes
(``a`` [N, s, s] -> ``u`` [N, s, s, T] recorded at ``t``, time last). As FNO's ``MatReader``
does, v7.3 files (HDF5 after a 512-byte MATLAB header) are read with h5py, whose axes are
MATLAB's reversed (column-major storage), and older v5 files with ``scipy.io.loadmat``. v7.3
variables are sliced in the file; a v5 variable is compressed as a whole, so it is read whole
(only the named variables) and sliced in memory.

Grids carry no coordinates in these files: nodes are placed on [0, 1], boundary nodes included
(Darcy's 421 = 5 * 84 + 1, so FNO's r = 5 gives 85) or periodic (``data.periodic``: Burgers,
Navier-Stokes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
import scipy.io
import scipy.sparse

from pdeop.data.formats.arrays import SPACE, StoredArray, check_axes
from pdeop.data.formats.dataset import ExternalDataset, check_times, check_written, grid_coordinates, keys_of
from pdeop.errors import DataFileError

KNOWN_PAIRS = (("coeff", "sol"), ("a", "u"), ("x", "y"), ("input", "output"))
V5_HEADER_BYTES = 128  # a v5 file's text header, subsystem offset, version and endian indicator


def name_axes(path: Path, keys: tuple[str, str], shapes: dict, axes: dict | None) -> dict[str, tuple[str, ...]]:
    """Axis names of the input and output arrays: ``axes`` where given, else ``[sample, *space]``, and
    outputs with one axis more than ``[sample, *the inputs' space]`` record time last (FNO's NS)."""
    axes = axes or {}
    unknown = [role for role in axes if role not in ("inputs", "outputs")]
    if unknown:
        raise DataFileError(f"'{path}': data.axes names {unknown}; expected the keys inputs and/or outputs, e.g. "
                            f"data.axes={{outputs: [sample, time, x]}}")
    named = {}
    for role, key in zip(("inputs", "outputs"), keys):
        ndim = len(shapes[key])
        logical = axes.get(role)
        if logical is None:
            n_space = ndim - 1 if role == "inputs" else sum(a in SPACE for a in named["inputs"])
            if role == "outputs" and ndim == n_space + 2:
                logical = ("sample", *SPACE[:n_space], "time")
            elif 1 <= ndim - 1 <= len(SPACE):
                logical = ("sample", *SPACE[: ndim - 1])
            else:
                raise DataFileError(f"'{path}' key '{key}': {ndim} axes {list(shapes[key])}; name them with "
                                    f"data.axes.{role}")
        named[role] = check_axes(logical, ndim, f"'{path}' key '{key}' (data.axes.{role})")
    extra = [a for a in named["outputs"] if a in SPACE and a not in named["inputs"]]
    if extra:
        raise DataFileError(f"'{path}' key '{keys[1]}' (data.axes.outputs): spatial axes {extra} that the inputs "
                            f"{list(named['inputs'])} lack; inputs and outputs share one grid")
    return named


def choose_keys(path: Path, keys: Sequence[str], inputs: str | None, outputs: str | None) -> tuple[str, str]:
    """The named keys, or the first of FNO's usual pairs present; a missing key lists those that are there."""
    present = sorted(k for k in keys if not k.startswith(("__", "#")))  # MATLAB's #refs#, #subsystem#
    if inputs is None and outputs is None:
        for pair in KNOWN_PAIRS:
            if all(k in present for k in pair):
                return pair
        raise DataFileError(f"'{path}': none of the usual input/output pairs {[list(p) for p in KNOWN_PAIRS]} is "
                            f"in the file; it has keys {present}; name them with data.inputs and data.outputs")
    for role, key in (("inputs", inputs), ("outputs", outputs)):
        if key is None:
            raise DataFileError(f"'{path}': data.{role} is not set; the file has keys {present}")
        if key not in present:
            raise DataFileError(f"'{path}': no key '{key}' (data.{role}); the file has keys {present}")
    return inputs, outputs


def output_times(path: Path, outputs: StoredArray, key: str, values) -> np.ndarray | None:
    """Times of trajectory outputs: the ``values`` stored under ``key`` (float64), else 1, 2, ..., T; None for
    outputs without a time axis."""
    if not outputs.has_time:
        return None
    if values is None:
        return np.arange(1, outputs.size("time") + 1, dtype=np.float64)
    try:
        recorded = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise DataFileError(f"'{path}' key '{key}': expected numeric recorded times (data.times), got "
                            f"{np.asarray(values).dtype}") from exc
    check_times(path, key, recorded)
    if recorded.size and (recorded[0] < 0 or recorded[-1] <= 0):
        raise DataFileError(f"'{path}' key '{key}': recorded times from {recorded[0]:g} to {recorded[-1]:g}; the "
                            f"outputs' times are measured from the input's (0), so they must not be negative and "
                            f"must end after it (data.times=null numbers the states 1, 2, ...)")
    return recorded


def check_dense(path: Path, key: str, source) -> None:
    """Refuse a sparse matrix (scipy's from a v5 file; a group marked ``MATLAB_sparse`` in a v7.3 file): the
    readers slice dense arrays."""
    if scipy.sparse.issparse(source) or isinstance(source, h5py.Group) and "MATLAB_sparse" in source.attrs:
        raise DataFileError(f"'{path}' key '{key}': a sparse matrix; expected a dense array (in MATLAB, store "
                            f"full({key}))")


def is_v73(path: Path) -> bool:
    return h5py.is_hdf5(path)


def read_matlab(path: Path, inputs: str | None = None, outputs: str | None = None, times: str | None = "t",
                axes: dict | None = None, periodic: bool = False) -> ExternalDataset:
    """Open an FNO ``.mat`` file (v7.3 or v5); ``axes`` names the axes in MATLAB's order where the defaults
    do not fit."""
    v73 = is_v73(path)
    if v73:
        file = h5py.File(path, "r")
        keys, close = keys_of(file), file.close
    else:
        size = path.stat().st_size
        if size < V5_HEADER_BYTES:
            raise DataFileError(f"'{path}' is not a MATLAB .mat file (v5 or v7.3): {size} bytes, shorter than a "
                                f"MATLAB file's {V5_HEADER_BYTES}-byte header")
        try:
            keys = [name for name, _, _ in scipy.io.whosmat(path)]
        except (ValueError, OSError, TypeError, IndexError, scipy.io.matlab.MatReadError) as exc:
            raise DataFileError(f"'{path}' is not a MATLAB .mat file (v5 or v7.3): {exc}") from exc
        close = None
    inputs, outputs = choose_keys(path, keys, inputs, outputs)
    wanted = [inputs, outputs, *([times] if times in keys else [])]
    sources = {k: file[k] for k in wanted} if v73 else scipy.io.loadmat(path, variable_names=wanted)
    for key in wanted:  # before their sizes are trusted (a grid's coordinates are made from them)
        check_dense(path, key, sources[key])
        if v73:
            check_written(path, key, sources[key])
    # MATLAB's order: h5py sees the column-major storage with every axis reversed
    shapes = {k: tuple(reversed(sources[k].shape)) if v73 else sources[k].shape for k in wanted}
    named = name_axes(path, (inputs, outputs), shapes, axes)
    space = tuple(a for a in named["inputs"] if a in SPACE)
    sizes = tuple(shapes[inputs][named["inputs"].index(a)] for a in space)

    def stored(key: str, role: str) -> StoredArray:
        order = tuple(reversed(named[role])) if v73 else named[role]
        return StoredArray(sources[key], order, key, space=space, space_sizes=sizes)

    out = stored(outputs, "outputs")
    recorded = output_times(path, out, times, sources[times][()] if times in keys else None)
    return ExternalDataset(
        path=path, format=f"mat v{'7.3' if v73 else '5'}", inputs=[stored(inputs, "inputs")], outputs=[out],
        coords={axis: grid_coordinates(n, periodic) for axis, n in zip(space, sizes)}, periodic=periodic,
        input_names=[inputs], output_names=[outputs], times=recorded, close=close or (lambda: None),
        boundary_nodes=not periodic,
    )
