"""PDEBench HDF5 files (Takamoto et al., "PDEBench: An Extensive Benchmark for Scientific Machine
Learning", NeurIPS 2022 Datasets and Benchmarks).

Two layouts, as PDEBench's own loaders (``pdebench/models/fno/utils.py``) read them:

- single file (``*.hdf5``): ``tensor`` [N, T, *space] (1D advection, Burgers, reaction-diffusion;
  no channel axis) with ``x-coordinate`` and ``t-coordinate`` (T + 1 entries, as PDEBench writes
  it); 2D Darcy with ``nu`` [N, X, Y] (the coefficient, the input) and ``tensor`` [N, 1, X, Y]
  (the solution); compressible Navier-Stokes with ``density``, ``pressure``, ``Vx`` (, ``Vy``,
  ``Vz``) each [N, T, *space], stacked into channels in that order.
- per-sample groups (``*.h5``): groups ``"0000"``, ``"0001"``, ... each holding ``data``
  [T, *space, C] and ``grid/x`` (``grid/y``, ``grid/z``) and ``grid/t`` (2D shallow water, 2D
  diffusion-reaction, 1D diffusion-sorption).

A trajectory's first state is the input and the later ones the outputs, at times measured from
the first. Coordinates are PDEBench's cell centres, so a subsampling factor must divide the cell
count. The domain counts as periodic (for the evaluation's H1 norm) for the 1D ``tensor`` files
(periodic advection, Burgers, reaction-diffusion) and for CFD files named ``..._periodic_...``;
not for Darcy, the ``trans`` CFD files or the per-sample sets (Neumann, Dirichlet, open
boundaries); ``data.periodic`` overrides. As PDEBench's ``FNODatasetSingle``, single files put
the test samples first.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from pdeop.data.formats.arrays import SPACE, GroupStack, StoredArray
from pdeop.data.formats.dataset import ExternalDataset, check_coordinates, check_times, check_written, keys_of
from pdeop.errors import DataFileError

CFD_FIELDS = ("density", "pressure", "Vx", "Vy", "Vz")


def trajectory(source, axes: tuple[str, ...], key: str, space: tuple[str, ...], sizes: tuple[int, ...]
               ) -> tuple[StoredArray, StoredArray]:
    """The first state as the input and the later states as the output, read from one stored array."""
    common = dict(space=space, space_sizes=sizes)
    return (StoredArray(source, axes, key, time_index=0, **common),
            StoredArray(source, axes, key, time_start=1, **common))


def stored_values(path: Path, dataset: h5py.Dataset) -> np.ndarray:
    """A small array read at open (coordinates, times) as float64, refused if it was never written."""
    check_written(path, dataset.name.lstrip("/"), dataset)
    return np.asarray(dataset[()], dtype=np.float64).ravel()


def relative_times(path: Path, dataset: h5py.Dataset, steps: int) -> np.ndarray:
    """Times of the states after the first, measured from it (PDEBench's t-coordinate may hold one entry more);
    the ``steps`` recorded ones must be finite and increase strictly."""
    t = stored_values(path, dataset)[:steps]
    check_times(path, dataset.name.lstrip("/"), t)
    return t[1:] - t[0]


def read_single(path: Path, file: h5py.File, periodic: bool | None) -> ExternalDataset:
    keys = sorted(keys_of(file))
    if "tensor" in keys:
        tensor = file["tensor"]
        n_space = tensor.ndim - 2
        space = SPACE[:n_space]
        coords = coordinates(path, file, space, tensor.shape[2:], "{}-coordinate")
        sizes = tuple(len(v) for v in coords.values())
        if "nu" in keys:  # 2D Darcy: coefficient -> steady solution (time axis of one state)
            inputs = StoredArray(file["nu"], ("sample", *space), "nu", space=space, space_sizes=sizes)
            outputs = StoredArray(tensor, ("sample", "channel", *space), "tensor", space=space, space_sizes=sizes)
            return ExternalDataset(path, "pdebench", [inputs], [outputs], coords,
                                   periodic=bool(periodic), input_names=["nu"], output_names=["u"],
                                   attrs=dict(file.attrs), close=file.close, test_first=True)
        first, rest = trajectory(tensor, ("sample", "time", *space), "tensor", space, sizes)
        times = relative_times(path, require(path, file, "t-coordinate"), tensor.shape[1])
        return ExternalDataset(path, "pdebench", [first], [rest], coords, periodic=periodic is not False,
                               input_names=["u"], output_names=["u"], times=times, attrs=dict(file.attrs),
                               close=file.close, test_first=True)
    if "density" in keys:
        names = [k for k in CFD_FIELDS if k in keys]
        shape = file["density"].shape
        space = SPACE[: len(shape) - 2]
        coords = coordinates(path, file, space, shape[2:], "{}-coordinate")
        sizes = tuple(len(v) for v in coords.values())
        pairs = [trajectory(file[k], ("sample", "time", *space), k, space, sizes) for k in names]
        times = relative_times(path, require(path, file, "t-coordinate"), shape[1])
        named_periodic = "_periodic" in path.name.lower()
        return ExternalDataset(path, "pdebench", [p[0] for p in pairs], [p[1] for p in pairs], coords,
                               periodic=named_periodic if periodic is None else periodic, input_names=names,
                               output_names=names, times=times, attrs=dict(file.attrs), close=file.close,
                               test_first=True)
    raise DataFileError(f"'{path}' is not a PDEBench single file: expected 'tensor' or the compressible-flow "
                        f"fields {list(CFD_FIELDS)}; it has keys {keys}")


def read_groups(path: Path, file: h5py.File, periodic: bool | None) -> ExternalDataset:
    groups = sorted(k for k in keys_of(file) if k.isdigit())
    if not groups:
        raise DataFileError(f"'{path}' is not a PDEBench per-sample file: expected groups '0000', '0001', ...; "
                            f"it has keys {sorted(keys_of(file))}")
    first = file[groups[0]]
    for key in ("data", "grid/t"):
        require(path, first, key, f"group '{groups[0]}'")
    shape = first["data"].shape
    for g in groups:
        if f"{g}/data" not in file or file[f"{g}/data"].shape != shape:
            found = file[f"{g}/data"].shape if f"{g}/data" in file else "nothing"
            raise DataFileError(f"'{path}' key '{g}/data': expected {list(shape)} like group '{groups[0]}', "
                                f"found {found}")
    space = SPACE[: len(shape) - 2]
    coords = coordinates(path, first, space, shape[1:-1], "grid/{}")
    sizes = tuple(len(v) for v in coords.values())
    stack = GroupStack(file, groups, "data")
    inputs, outputs = trajectory(stack, ("sample", "time", *space, "channel"), "data", space, sizes)
    names = ["data"] if shape[-1] == 1 else [f"data_{c}" for c in range(shape[-1])]
    times = relative_times(path, first["grid/t"], shape[0])
    check_same_grids(path, file, groups)
    return ExternalDataset(path, "pdebench", [inputs], [outputs], coords, periodic=bool(periodic),
                           input_names=names, output_names=names, times=times, close=file.close)


def check_same_grids(path: Path, file: h5py.File, groups: list[str]) -> None:
    """Refuse per-sample groups whose grid (the coordinates and times read: ``grid/x``, ``y``, ``z``, ``t``)
    differs from the first group's beyond float32's rounding: only the first is read, and a dataset here has one
    grid and one time axis for all samples. Read through h5py's low-level calls, a few times faster than its
    objects: ten thousand groups are common (PDEBench's diffusion-sorption)."""
    first = require(path, file[groups[0]], "grid", f"group '{groups[0]}'")
    read = [key for key in (*SPACE, "t") if isinstance(first.get(key), h5py.Dataset)]
    reference = {key: np.asarray(first[key][()], dtype=np.float64) for key in read}
    for g in groups[1:]:
        for key, values in reference.items():
            try:
                dataset = h5py.h5d.open(file.id, f"{g}/grid/{key}".encode())
            except KeyError:
                raise DataFileError(f"'{path}' key '{g}/grid/{key}': missing or unreadable, where group "
                                    f"'{groups[0]}' has it; every sample needs the same grid") from None
            same = dataset.shape == values.shape
            if same:
                stored = np.empty(dataset.shape, np.float64)
                dataset.read(h5py.h5s.ALL, h5py.h5s.ALL, stored)  # HDF5 converts to float64 on the way
                same = np.allclose(stored, values, rtol=1e-6, atol=0, equal_nan=True)
            if not same:
                raise DataFileError(f"'{path}' key '{g}/grid/{key}': differs from that of group '{groups[0]}'; a "
                                    f"dataset here has one grid and one time axis for all samples")


def require(path: Path, node, key: str, where: str = "") -> h5py.Dataset:
    if key not in node:
        raise DataFileError(f"'{path}'{' ' + where if where else ''}: no key '{key}'; "
                            f"it has keys {sorted(keys_of(node))}")
    return node[key]


def coordinates(path: Path, node, space: tuple[str, ...], sizes: tuple[int, ...], pattern: str) -> dict:
    coords = {}
    for axis, n in zip(space, sizes):
        dataset = require(path, node, pattern.format(axis))
        values = stored_values(path, dataset)
        check_coordinates(path, dataset.name.lstrip("/"), values)
        if len(values) != n:
            raise DataFileError(f"'{path}' key '{pattern.format(axis)}': {len(values)} coordinates for an axis "
                                f"of {n} cells")
        coords[axis] = values
    return coords


def read_pdebench(path: Path, periodic: bool | None = None) -> ExternalDataset:
    """Open a PDEBench file in either layout (per-sample groups when the root holds numbered groups)."""
    file = h5py.File(path, "r")
    try:
        if any(k.isdigit() and isinstance(file[k], h5py.Group) for k in file.keys()):
            return read_groups(path, file, periodic)
        return read_single(path, file, periodic)
    except Exception:
        file.close()
        raise
