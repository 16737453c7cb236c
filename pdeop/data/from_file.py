"""Training on a dataset file in a community format (``data=from_file data.path=<file>``).

The file is opened lazily (``pdeop.data.formats``) and split by sample index, as the papers'
scripts do: training takes the first ``n_train`` samples, validation the next ``n_val``, test the
last ``n_test`` -- or the first ``n_test`` of ``test_path`` when the test set is a file of its own
(FNO's Darcy: ``..._smooth1.mat`` to train, ``..._smooth2.mat`` to test). Only those samples are
read, on every ``subsample``-th node; the test split also on every factor in ``test_subsamples``
(``[1]``: the full grid, FNO's super-resolution test). From there on everything is as for
generated data: the same normalisers, tasks, loaders, metrics and evaluation.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pdeop.data.datamodule import PairsDataModule
from pdeop.data.formats import ExternalDataset, open_dataset
from pdeop.data.store import FieldSet
from pdeop.data.tasks import AllToAll, FinalState, Window
from pdeop.errors import ConfigError, DataFileError

log = logging.getLogger(__name__)


def json_safe(value):
    """File attributes as plain JSON values (NumPy scalars and arrays become numbers and lists)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if hasattr(value, "tolist"):
        return json_safe(value.tolist())
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


class FileSplits:
    """Train, validation and test ranges of one or two external files; the read interface of ``DatasetFile``."""

    def __init__(self, dataset: ExternalDataset, test_dataset: ExternalDataset | None, n_train: int | None,
                 n_val: int, n_test: int, subsample: int, test_subsamples: list[int], time_subsample: int):
        self.dataset, self.test_dataset = dataset, test_dataset or dataset
        self.path = dataset.path
        if time_subsample < 1:
            raise ConfigError(f"data.time_subsample: expected a positive integer, got {time_subsample}")
        self.subsample, self.time_subsample = subsample, time_subsample
        self.factors = sorted({subsample, *test_subsamples}, reverse=True)  # coarsest grid first
        for r in self.factors:
            self.test_dataset.check_subsample(r)
        dataset.check_subsample(subsample)
        n = dataset.n_samples
        held = n_val + (0 if test_dataset is not None else n_test)
        n_train = n - held if n_train is None else n_train
        for key, count in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
            if count < 1:
                raise ConfigError(f"data.{key}: expected at least 1 sample, got {count} (the file '{self.path}' "
                                  f"has {n})")
        if n_train + held > n:
            raise ConfigError(f"data.n_train + n_val{'' if test_dataset else ' + n_test'} = {n_train + held}: the "
                              f"file '{self.path}' has only {n} samples")
        if n_test > self.test_dataset.n_samples:
            raise ConfigError(f"data.n_test = {n_test}: the file '{self.test_dataset.path}' has only "
                              f"{self.test_dataset.n_samples} samples")
        for key, a, b in (("input", dataset.input_names, self.test_dataset.input_names),
                          ("output", dataset.output_names, self.test_dataset.output_names)):
            if a != b:
                raise DataFileError(f"'{self.test_dataset.path}' (data.test_path) has {key}s {b}, '{self.path}' {a}")
        stop = self.test_dataset.n_samples
        self.ranges = {"train": slice(0, n_train), "val": slice(n_train, n_train + n_val),
                       "test": slice(0, n_test) if test_dataset is not None else slice(stop - n_test, stop)}

    @property
    def input_names(self) -> list[str]:
        return self.dataset.input_names

    @property
    def output_names(self) -> list[str]:
        return self.dataset.output_names

    @property
    def provenance(self) -> dict:
        """Where the samples came from: files, format, sample ranges, subsampling and the files' attributes."""
        return json_safe({
            "path": str(self.path), "test_path": str(self.test_dataset.path), "format": self.dataset.format,
            "ranges": {k: [v.start, v.stop] for k, v in self.ranges.items()},
            "subsample": self.subsample, "test_subsamples": self.factors, "time_subsample": self.time_subsample,
            "attrs": self.dataset.attrs,
        })

    def _source(self, split: str) -> ExternalDataset:
        return self.test_dataset if split == "test" else self.dataset

    def resolutions(self, split: str) -> list[int]:
        """Grids (nodes along the first axis) at which ``split`` is served, coarsest first."""
        if split not in self.ranges:
            raise DataFileError(f"'{self.path}': no split '{split}'; splits are {list(self.ranges)}")
        first_axis = next(iter(self._source(split).coords.values()))
        return [len(first_axis[::r]) for r in (self.factors if split == "test" else [self.subsample])]

    def read(self, split: str, resolution: int | None = None) -> FieldSet:
        available = self.resolutions(split)
        resolution = available[0] if resolution is None else resolution
        if resolution not in available:
            raise DataFileError(f"'{self.path}': split '{split}' is served at {available}, not {resolution}")
        r = (self.factors if split == "test" else [self.subsample])[available.index(resolution)]
        return self._source(split).read(self.ranges[split], r, self.time_subsample)

    def close(self) -> None:
        self.dataset.close()
        self.test_dataset.close()


class FileDataModule(PairsDataModule):
    """Trains on a file in a community format: FNO's .mat, PDEBench, The Well, neuraloperator's .pt, .npz.

    ``format`` (default: from the file), ``inputs``/``outputs``/``axes``/``times``/``fields``
    and ``periodic`` say how to read it (``pdeop.data.formats.open_dataset``). See
    ``PairsDataModule`` for the task, checks, normalisers and loaders.
    """

    def __init__(self, path: str, format: str = "auto", test_path: str | None = None, n_train: int | None = None,
                 n_val: int = 100, n_test: int = 100, subsample: int = 1, test_subsamples: list[int] = (),
                 time_subsample: int = 1, inputs: str | None = None, outputs: str | None = None,
                 axes: dict | None = None, times: str = "t", fields: list[str] | None = None,
                 periodic: bool | None = None, in_channels: int = 1, out_channels: int = 1,
                 grid_size: int | None = None, batch_size: int = 20, eval_batch_size: int | None = None,
                 num_workers: int = 0, shuffle_seed: int = 0, train_subset: int | None = None,
                 task: FinalState | Window | AllToAll | None = None):
        super().__init__(in_channels, out_channels, grid_size, batch_size, eval_batch_size, num_workers,
                         shuffle_seed, train_subset, task)
        if not path:
            raise ConfigError("data.path: data=from_file needs the file to train on (data.path=<file>)")
        self.path = Path(path)
        self.test_path = Path(test_path) if test_path else None
        self.read_options = dict(format=format, inputs=inputs, outputs=outputs, axes=dict(axes) if axes else None,
                                 times=times, fields=list(fields) if fields else None, periodic=periodic)
        self.counts = dict(n_train=n_train, n_val=n_val, n_test=n_test)
        self.factors = dict(subsample=subsample, test_subsamples=list(test_subsamples),
                            time_subsample=time_subsample)
        self._periodic: bool | None = None

    def open_store(self) -> FileSplits:
        dataset = open_dataset(self.path, **self.read_options)
        test = open_dataset(self.test_path, **self.read_options) if self.test_path else None
        for d in (dataset, test) if test else (dataset,):
            log.info("read %s", d.describe())
        self._periodic = dataset.periodic
        return FileSplits(dataset, test, **self.counts, **self.factors)

    @property
    def periodic(self) -> bool:
        if self._periodic is None:
            self.open_store().close()
        return self._periodic

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        store = self.open_store()
        try:
            self.load(store)
        finally:
            store.close()

