"""The Well's HDF5 files (Ohana et al., "The Well: a Large-Scale Collection of Diverse Physics
Simulations for Machine Learning", NeurIPS 2024 Datasets and Benchmarks).

A file holds ``n_trajectories`` simulations of one dataset: fields by tensor order in
``t0_fields`` (scalars), ``t1_fields`` (vectors, a trailing axis of ``n_spatial_dims``
components) and ``t2_fields`` (two trailing axes), each listed in the group's ``field_names``
attribute; a field's shape is ``[n_traj if sample_varying] + [T if time_varying] + [each spatial
size if dim_varying] + [D] * order``. ``dimensions`` holds ``time`` and one coordinate array per
name in its ``spatial_dims`` attribute; ``boundary_conditions`` one group per condition with a
``bc_type``. As the Well's own reader does, tensor components become channels (``velocity_x``,
``velocity_y``; ``stress_xx``, ``stress_xy``, ...) and fields constant along an axis or across
trajectories are broadcast. The time-varying fields' first state is the input and the later ones
the outputs; constant fields are listed by ``describe`` but not served. Spatial axes keep the
file's names (``x``, ``y``; ``theta``, ``phi``); grids are cell-centred or periodic, so a
subsampling factor must divide the number of cells.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from pdeop.data.formats.arrays import StoredArray
from pdeop.data.formats.dataset import ExternalDataset, check_coordinates, check_times, check_written, keys_of
from pdeop.errors import DataFileError

GROUPS = ("t0_fields", "t1_fields", "t2_fields", "dimensions", "boundary_conditions")


def names_attr(node, key: str, path: Path) -> list[str]:
    if key not in node.attrs:
        raise DataFileError(f"'{path}' key '{node.name}': no attribute '{key}'; it has {sorted(node.attrs)}")
    return [text(v) for v in np.atleast_1d(node.attrs[key])]


def text(value) -> str:
    """An attribute's text; bytes that are not UTF-8 with replacement characters (a name then matches nothing)."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def flags(dataset: h5py.Dataset, key: str, path: Path) -> np.ndarray:
    """A true/false attribute of The Well's (``time_varying``; ``dim_varying`` holds one per spatial axis) as an
    array, False where absent; one stored as anything but booleans or 0/1 (the text "False", which ``bool`` reads as
    true) is refused."""
    value = dataset.attrs.get(key, False)
    values = np.atleast_1d(value)
    if values.dtype == np.bool_ or np.issubdtype(values.dtype, np.integer) and np.isin(values, (0, 1)).all():
        return values.astype(bool)
    raise DataFileError(f"'{path}' key '{dataset.name}': attribute '{key}' is {value!r}; expected true or false")


def flag(dataset: h5py.Dataset, key: str, path: Path) -> bool:
    """``flags`` of an attribute that holds one (a scalar, or an array of one as some writers store it)."""
    values = flags(dataset, key, path)
    if values.size != 1:
        raise DataFileError(f"'{path}' key '{dataset.name}': attribute '{key}' holds {values.size} values; expected "
                            f"true or false")
    return bool(values[0])


def shared_row(dataset: h5py.Dataset, path: Path) -> np.ndarray:
    """A coordinate array; one that varies per trajectory must hold the same values in every row."""
    check_written(path, dataset.name, dataset)
    values = np.asarray(dataset[()], dtype=np.float64)
    if flag(dataset, "sample_varying", path):
        if not all(np.array_equal(row, values[0], equal_nan=True) for row in values):
            raise DataFileError(f"'{path}' key '{dataset.name}': differs between trajectories; a dataset here has "
                                f"one grid and one time axis for all samples")
        values = values[0]
    return values


def field_axes(dataset: h5py.Dataset, order: int, space: list[str], path: Path) -> tuple[str, ...]:
    attrs = dataset.attrs
    for key in ("sample_varying", "time_varying", "dim_varying"):
        if key not in attrs:
            raise DataFileError(f"'{path}' key '{dataset.name}': no attribute '{key}'; it has {sorted(attrs)}")
    varying = flags(dataset, "dim_varying", path)
    axes = (["sample"] if flag(dataset, "sample_varying", path) else []) + (
        ["time"] if flag(dataset, "time_varying", path) else [])
    axes += [axis for axis, v in zip(space, varying) if v] + ["channel", "component"][:order]
    if len(axes) != dataset.ndim:
        raise DataFileError(f"'{path}' key '{dataset.name}': its attributes describe axes {axes} but it is "
                            f"stored {list(dataset.shape)}")
    components = dataset.shape[dataset.ndim - order:]
    if components != (len(space),) * order:
        raise DataFileError(f"'{path}' key '{dataset.name}': stored {list(dataset.shape)}, its tensor components "
                            f"{list(components)} (the last {order} axes); a t{order} field in the {len(space)} "
                            f"spatial dimensions {space} has {[len(space)] * order}")
    return tuple(axes)


def trajectory_count(file: h5py.File, path: Path) -> int | None:
    """The root attribute ``n_trajectories`` (None where absent): a whole number of at least 1. It sizes the
    sample axis of fields constant across trajectories, which store none."""
    if "n_trajectories" not in file.attrs:
        return None
    value = file.attrs["n_trajectories"]
    whole = isinstance(value, (int, float, np.integer, np.floating)) and float(value).is_integer()
    if not whole or value < 1:
        raise DataFileError(f"'{path}': attribute n_trajectories is {value}; expected the number of "
                            f"trajectories the file holds, a whole number of at least 1")
    return int(value)


def read_the_well(path: Path, fields: list[str] | None = None, periodic: bool | None = None) -> ExternalDataset:
    """Open one Well file; ``fields`` picks time-varying fields by name (default: all of them); ``periodic``
    overrides the boundary conditions' verdict (periodic when every one is)."""
    file = h5py.File(path, "r")
    try:
        return open_file(path, file, fields, periodic)
    except Exception:
        file.close()
        raise


def open_file(path: Path, file: h5py.File, fields: list[str] | None, periodic: bool | None) -> ExternalDataset:
    missing = [g for g in GROUPS if g not in file]
    if missing:
        raise DataFileError(f"'{path}' is not a Well file: no groups {missing}; it has keys {sorted(keys_of(file))}")
    dims = file["dimensions"]
    space = names_attr(dims, "spatial_dims", path)
    for key in ("time", *space):
        if key not in dims:
            raise DataFileError(f"'{path}': no key 'dimensions/{key}'; it has {sorted(keys_of(dims))}")
    coords = {axis: shared_row(dims[axis], path) for axis in space}
    for axis, values in coords.items():
        check_coordinates(path, f"dimensions/{axis}", values)
    sizes = tuple(len(v) for v in coords.values())
    t = shared_row(dims["time"], path)
    check_times(path, "dimensions/time", t)
    n_traj = trajectory_count(file, path)
    available, constant = {}, []
    for order in range(3):
        group = file[f"t{order}_fields"]
        for name in names_attr(group, "field_names", path):
            if name not in group:
                raise DataFileError(f"'{path}': field '{name}' is listed in t{order}_fields/field_names but "
                                    f"not stored; it has {sorted(keys_of(group))}")
            dataset = group[name]
            if not flag(dataset, "time_varying", path):
                constant.append(name)
                continue
            available[name] = (dataset, order)
    chosen = list(available) if fields is None else list(fields)
    unknown = [f for f in chosen if f not in available]
    if unknown or not chosen:
        raise DataFileError(f"'{path}': data.fields {unknown or chosen} are not time-varying fields of this file; "
                            f"it has {list(available)} (constant: {constant})")
    inputs, outputs, names = [], [], []
    for name in chosen:
        dataset, order = available[name]
        axes = field_axes(dataset, order, space, path)
        common = dict(space=tuple(space), space_sizes=sizes, n_samples=n_traj)
        inputs.append(StoredArray(dataset, axes, dataset.name, time_index=0, **common))
        outputs.append(StoredArray(dataset, axes, dataset.name, time_start=1, **common))
        suffixes = [""] if order == 0 else ([f"_{a}" for a in space] if order == 1
                                            else [f"_{a}{b}" for a in space for b in space])
        names += [name + s for s in suffixes]
    bcs = file["boundary_conditions"]
    bc_types = {text(bcs[k].attrs.get("bc_type", "")).upper() for k in keys_of(bcs)}
    attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in file.attrs.items()}
    attrs["constant_fields"] = constant
    all_periodic = bc_types == {"PERIODIC"}
    return ExternalDataset(path, "the_well", inputs, outputs, coords,
                           periodic=all_periodic if periodic is None else periodic,
                           input_names=names, output_names=names, times=t[1:] - t[0], attrs=attrs,
                           close=file.close)
