"""Predictions as labelled arrays: an xarray-readable NetCDF file written in chunks, and pictures.

The file holds, per sample and grid point, the inputs, targets, predictions and errors of every
channel, with the node coordinates and attributes that say where it came from (model, checkpoint
hash, dataset parameters, package version). It is written through h5netcdf (HDF5 only, no netCDF
C library) one chunk of samples at a time along an unlimited ``sample`` dimension, so large
prediction sets never sit in memory, and atomically, so an interrupted run leaves no partial file.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5netcdf
import h5py
import numpy as np
import torch

import pdeop
from pdeop.data.store import FieldSet
from pdeop.inference import TrainedOperator
from pdeop.io import atomic_path


def is_predictions(path: Path) -> bool:
    """Whether ``path`` is a predictions file ``write_predictions`` wrote (an HDF5 file with its attributes)."""
    try:
        with h5py.File(path, "r") as f:
            return {"checkpoint", "pdeop_version", "error"} <= set(f.attrs)
    except Exception:  # noqa: BLE001 -- not HDF5, unreadable, damaged: not one
        return False


def write_predictions(module: TrainedOperator, fields: FieldSet, out: str | Path, input_names: list[str],
                      output_names: list[str], attrs: dict, chunk: int = 64) -> Path:
    """Predict every sample of ``fields`` and stream inputs, targets, predictions and errors to ``out``."""
    out = Path(out)
    axes = list(fields.coords)  # e.g. ["x", "y"], in axis order
    dims = ("sample", *axes)
    with atomic_path(out) as tmp, h5netcdf.File(tmp, "w") as f:
        f.dimensions = {"sample": None, **{axis: len(values) for axis, values in fields.coords.items()}}
        for axis, values in fields.coords.items():
            f.create_variable(axis, (axis,), data=np.asarray(values, dtype=np.float64))
        sample = f.create_variable("sample", ("sample",), dtype="i8")
        if fields.lead_times is not None:  # all-to-all pairs: the lead time of each prediction
            lead_time = f.create_variable("lead_time", ("sample",), dtype="f4")
            lead_time.attrs["long_name"] = "lead time / horizon"
        variables = {}
        for role, names in (("input", input_names), ("target", output_names), ("prediction", output_names),
                            ("error", output_names)):
            for name in names:
                chunks = (min(chunk, len(fields.inputs)), *(len(fields.coords[a]) for a in axes))
                variables[role, name] = f.create_variable(f"{role}_{name}", dims, dtype="f4", chunks=chunks)
                variables[role, name].attrs["long_name"] = f"{role} {name}"
        f.attrs.update({k: v if isinstance(v, (str, int, float)) else json.dumps(v) for k, v in attrs.items()})
        f.attrs["pdeop_version"] = pdeop.__version__
        f.attrs["error"] = "prediction - target, in physical units"
        with torch.no_grad():
            for start in range(0, len(fields.inputs), chunk):
                x = fields.inputs[start:start + chunk]
                y = fields.outputs[start:start + chunk]
                t = None if fields.lead_times is None else torch.from_numpy(fields.lead_times[start:start + chunk])
                prediction = module.predict(torch.from_numpy(x), t).numpy()
                stop = start + len(x)
                f.resize_dimension("sample", stop)
                sample[start:stop] = np.arange(start, stop)
                if t is not None:
                    lead_time[start:stop] = fields.lead_times[start:stop]
                for c, name in enumerate(input_names):
                    variables["input", name][start:stop] = x[:, c]
                for c, name in enumerate(output_names):
                    variables["target", name][start:stop] = y[:, c]
                    variables["prediction", name][start:stop] = prediction[:, c]
                    variables["error", name][start:stop] = prediction[:, c] - y[:, c]
    return out
