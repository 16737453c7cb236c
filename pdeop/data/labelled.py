"""Any dataset as an ``xarray.Dataset``: named channels, node coordinates, times, sample indices.

``to_xarray`` takes a generated pdeop file, a community file (any format of
``pdeop.data.formats``), an opened ``DatasetFile``/``ExternalDataset`` or a ``FieldSet``, and
returns the samples asked for with one variable per channel -- ``input_<name>`` on
``(sample, *space)``, ``output_<name>`` on ``(sample, [time,] *space)`` -- so that a dataset can be
looked at, sliced by coordinate and plotted with xarray's tools whatever its source.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from pdeop.data.formats import DatasetCollection, ExternalDataset, open_dataset
from pdeop.data.store import DatasetFile, FieldSet, is_pdeop_file


def fields_to_xarray(fields: FieldSet, input_names: list[str], output_names: list[str],
                     sample_index: np.ndarray | None = None, attrs: dict | None = None) -> xr.Dataset:
    """Label a ``FieldSet``: one variable per input and output channel, with coordinates and times."""
    space = list(fields.coords)
    samples = np.arange(len(fields.inputs)) if sample_index is None else np.asarray(sample_index)
    coords = {"sample": samples, **{axis: np.asarray(values) for axis, values in fields.coords.items()}}
    out_dims = ["sample", *space]
    if fields.times is not None:
        coords["time"] = np.asarray(fields.times)
        out_dims.insert(1, "time")
    variables = {}
    for role, data, names, dims in (("input", fields.inputs, input_names, ["sample", *space]),
                                    ("output", fields.outputs, output_names, out_dims)):
        names = names if len(names) == data.shape[1] else [f"{role}{c}" for c in range(data.shape[1])]
        for c, name in enumerate(names):
            variables[f"{role}_{name}"] = (dims, data[:, c])
    if fields.lead_times is not None:
        variables["lead_time"] = (["sample"], fields.lead_times)
    return xr.Dataset(variables, coords=coords, attrs={"subsample": fields.subsample, **(attrs or {})})


def to_xarray(source: str | Path | DatasetFile | ExternalDataset | DatasetCollection | FieldSet, split: str = "test",
              resolution: int | None = None, samples: slice | None = None, subsample: int = 1,
              **read_options) -> xr.Dataset:
    """An xarray view of a dataset.

    A pdeop file (path or ``DatasetFile``) is read at ``split`` and ``resolution`` (default: the
    coarsest stored); a community file (path or ``ExternalDataset``, opened with
    ``read_options`` as by ``open_dataset``) on every ``subsample``-th node. ``samples`` (a slice)
    reads only those samples -- the way to look at a large file.
    """
    if isinstance(source, FieldSet):
        return fields_to_xarray(source, [], [])
    if isinstance(source, (str, Path)):
        path = Path(source)
        if is_pdeop_file(path):
            source = DatasetFile(path)
        else:
            opened = open_dataset(path, **read_options)
            try:
                return to_xarray(opened, samples=samples, subsample=subsample)
            finally:
                opened.close()
    if isinstance(source, DatasetFile):
        fields = source.read(split, resolution)
        chosen = slice(None) if samples is None else samples
        index = np.arange(len(fields.inputs))[chosen]
        fields = FieldSet(fields.inputs[chosen], fields.outputs[chosen], fields.coords, fields.subsample, fields.times)
        return fields_to_xarray(fields, source.input_names, source.output_names, index,
                                {"source": str(source.path), "split": split})
    chosen = slice(0, source.n_samples) if samples is None else samples
    fields = source.read(chosen, subsample)
    index = np.arange(source.n_samples)[chosen]
    return fields_to_xarray(fields, source.input_names, source.output_names, index,
                            {"source": str(source.path), "format": source.format})

