"""Small files in the community formats' exact layouts, filled with a known pattern.

Every value encodes where it belongs: ``pattern(sample, channel, time, x, y)`` = 1e5 sample +
2e4 channel + 1e3 time + 40 x + y (exact in float32 for these sizes), so a reader that swaps two
axes, drops a time step or misplaces a sample returns different numbers. Grids are not square
(x has more nodes than y) so that x and y cannot be confused.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import scipy.io
import torch


def pattern(samples: int, channels: int, times: int | None, shape: tuple[int, ...]) -> np.ndarray:
    """``[samples, channels, (times), *shape]`` float64 holding each entry's own coordinates."""
    dims = (samples, channels, *((times,) if times is not None else ()), *shape)
    weights = [1e5, 2e4, *((1e3,) if times is not None else ()), *(40.0, 1.0)[2 - len(shape):]]
    grids = np.meshgrid(*(np.arange(n) for n in dims), indexing="ij")
    return sum(w * g for w, g in zip(weights, grids))


# --- FNO MATLAB files ---------------------------------------------------------------------------

def write_mat_v5(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """A MATLAB v5 file as FNO's Darcy and Burgers files are (``scipy.io.savemat`` writes MATLAB's order)."""
    scipy.io.savemat(path, arrays, format="5")
    return path


MAT73_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Nov 23 12:00:00 2026 HDF5 schema 1.00 ."


def write_mat_v73(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """A MATLAB v7.3 file: HDF5 after a 512-byte text header, each variable stored column-major.

    h5py (row-major) therefore sees every MATLAB array with its axes reversed, as in FNO's
    ``ns_V1e-3_N5000_T50.mat`` where ``u`` [5000, 64, 64, 50] is stored (50, 64, 64, 5000).
    """
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, value in arrays.items():
            value = np.atleast_2d(np.asarray(value, dtype=np.float64))  # MATLAB has no 1-D arrays
            dataset = f.create_dataset(name, data=np.transpose(value))  # full axis reversal
            dataset.attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as f:
        f.write(MAT73_HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM" + b"\x00" * (512 - 128))
    return path


# --- PDEBench -----------------------------------------------------------------------------------

def write_pdebench_1d(path: Path, n: int, times: int, nx: int) -> np.ndarray:
    """1D advection/Burgers single file: ``tensor`` [N, T, X] float32, cell-centre ``x-coordinate``,
    ``t-coordinate`` with T + 1 entries, the equation parameter as a root attribute."""
    data = pattern(n, 1, times, (nx,))[:, 0]
    with h5py.File(path, "w") as f:
        f.create_dataset("tensor", data=data.astype(np.float32))
        f.create_dataset("x-coordinate", data=((np.arange(nx) + 0.5) / nx).astype(np.float32))
        f.create_dataset("t-coordinate", data=(np.arange(times + 1) * 0.01).astype(np.float32))
        f.attrs["beta"] = 0.4
    return data


def write_pdebench_darcy(path: Path, n: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """2D Darcy single file: ``nu`` [N, X, Y] (coefficient) and ``tensor`` [N, 1, X, Y] (solution)."""
    nu = pattern(n, 1, None, shape)[:, 0]
    u = -pattern(n, 1, None, shape)[:, 0] - 7.0
    with h5py.File(path, "w") as f:
        f.create_dataset("nu", data=nu.astype(np.float32))
        f.create_dataset("tensor", data=u[:, None].astype(np.float32))
        f.create_dataset("x-coordinate", data=((np.arange(shape[0]) + 0.5) / shape[0]).astype(np.float32))
        f.create_dataset("y-coordinate", data=((np.arange(shape[1]) + 0.5) / shape[1]).astype(np.float32))
        f.attrs["beta"] = 1.0
    return nu, u


def write_pdebench_cfd(path: Path, n: int, times: int, shape: tuple[int, int]) -> np.ndarray:
    """2D compressible NS single file: ``density``, ``pressure``, ``Vx``, ``Vy`` each [N, T, X, Y]."""
    data = pattern(n, 4, times, shape)
    with h5py.File(path, "w") as f:
        for c, name in enumerate(("density", "pressure", "Vx", "Vy")):
            f.create_dataset(name, data=data[:, c].astype(np.float32))
        for axis, size in zip("xy", shape):
            f.create_dataset(f"{axis}-coordinate", data=((np.arange(size) + 0.5) / size).astype(np.float32))
        f.create_dataset("t-coordinate", data=(np.arange(times + 1) * 0.05).astype(np.float32))
        f.attrs.update({"eta": 1e-8, "zeta": 1e-8, "M": 0.1})
    return data


def write_pdebench_groups(path: Path, n: int, times: int, shape: tuple[int, int], channels: int) -> np.ndarray:
    """Per-sample layout (2D diffusion-reaction, shallow water): groups "0000", ... with ``data``
    [T, X, Y, C], ``grid/x``, ``grid/y``, ``grid/t`` and a YAML ``config`` attribute."""
    data = pattern(n, channels, times, shape)  # [N, C, T, X, Y]
    with h5py.File(path, "w") as f:
        for s in range(n):
            group = f.create_group(str(s).zfill(4))
            group.create_dataset("data", data=np.moveaxis(data[s], 0, -1).astype(np.float32), compression="lzf")
            for axis, size in zip("xy", shape):  # cell centres on [-1, 1], as sim_diff_react.py writes them
                centres = -1 + (np.arange(size) + 0.5) * 2 / size
                group.create_dataset(f"grid/{axis}", data=centres.astype(np.float32))
            group.create_dataset("grid/t", data=np.linspace(0, 5, times).astype(np.float32))
            group.attrs["config"] = f"sim:\n  seed: {s}\n"
    return data


# --- The Well -----------------------------------------------------------------------------------

def write_the_well(path: Path, n: int, times: int, shape: tuple[int, int], dims: tuple[str, str] = ("x", "y"),
                   walls: bool = False) -> np.ndarray:
    """One Well file: t0 ``pressure`` [N, T, X, Y], t1 ``velocity`` [N, T, X, Y, 2], an empty
    ``t2_fields``, a constant t0 ``mask`` [X, Y] (not sample- or time-varying), ``dimensions`` with
    ``time`` and the spatial axes ``dims`` (cell centres), ``boundary_conditions`` (periodic in x,
    and in y unless ``walls``) and a ``scalars`` group.

    Returns the canonical ``[N, 3, T, X, Y]`` (pressure, velocity_<dims[0]>, velocity_<dims[1]>).
    """
    data = pattern(n, 3, times, shape)
    strings = h5py.string_dtype()

    def flags(dataset, sample: bool, time: bool, dims: list[bool] | None = None):
        dataset.attrs["sample_varying"] = sample
        dataset.attrs["time_varying"] = time
        if dims is not None:
            dataset.attrs["dim_varying"] = np.array(dims)

    with h5py.File(path, "w") as f:
        f.attrs.update({"dataset_name": "toy_shear_flow", "grid_type": "cartesian", "n_spatial_dims": 2,
                        "n_trajectories": n, "simulation_parameters": np.array(["Reynolds"], dtype=strings),
                        "Reynolds": 1e4})
        group = f.create_group("dimensions")
        group.attrs["spatial_dims"] = np.array(list(dims), dtype=strings)
        flags(group.create_dataset("time", data=np.arange(times, dtype=np.float32) * 0.25 + 1.0), False, True)
        for axis, size in zip(dims, shape):
            flags(group.create_dataset(axis, data=(np.arange(size, dtype=np.float32) + 0.5) / size), False, False)
        bcs = f.create_group("boundary_conditions")
        for axis, size, kind in zip(dims, shape, ("PERIODIC", "WALL" if walls else "PERIODIC")):
            bc = bcs.create_group(f"{axis}_{kind.lower()}")
            bc.attrs.update({"bc_type": kind, "associated_dims": np.array([axis], dtype=strings),
                             "associated_fields": np.array([], dtype=strings), "sample_varying": False,
                             "time_varying": False})
            mask = np.zeros(size, dtype=bool)
            mask[[0, -1]] = True
            bc.create_dataset("mask", data=mask)
        scalars = f.create_group("scalars")
        scalars.attrs["field_names"] = np.array(["Reynolds"], dtype=strings)
        flags(scalars.create_dataset("Reynolds", data=np.float32(1e4)), False, False)
        t0 = f.create_group("t0_fields")
        t0.attrs["field_names"] = np.array(["pressure", "mask"], dtype=strings)
        flags(t0.create_dataset("pressure", data=data[:, 0].astype(np.float32)), True, True, [True, True])
        flags(t0.create_dataset("mask", data=np.ones(shape, dtype=np.float32)), False, False, [True, True])
        t1 = f.create_group("t1_fields")
        t1.attrs["field_names"] = np.array(["velocity"], dtype=strings)
        velocity = np.moveaxis(data[:, 1:3], 1, -1)  # [N, T, X, Y, D]
        flags(t1.create_dataset("velocity", data=velocity.astype(np.float32)), True, True, [True, True])
        f.create_group("t2_fields").attrs["field_names"] = np.array([], dtype=strings)
    return data


# --- neuraloperator .pt and NumPy .npz ----------------------------------------------------------

def write_neuralop_pt(path: Path, n: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """neuraloperator's small Darcy layout: ``{"x": bool [N, s, s], "y": float32 [N, s, s]}``."""
    y = pattern(n, 1, None, shape)[:, 0]
    x = (y.astype(np.int64) % 3) == 0
    torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y.astype(np.float32))}, path)
    return x.astype(np.float64), y


def write_neuralop_burgers_pt(path: Path, n: int, times: int, nx: int) -> tuple[np.ndarray, np.ndarray]:
    """neuraloperator's ``burgers_lowres.pt`` layout: ``{"x": [N, s], "y": [N, T, s]}`` float32, time before space
    (the default naming takes time last, so ``data.axes`` must say so)."""
    y = pattern(n, 1, times, (nx,))[:, 0]
    x = y[:, 0] + 0.5
    torch.save({"x": torch.from_numpy(x.astype(np.float32)), "y": torch.from_numpy(y.astype(np.float32))}, path)
    return x, y
