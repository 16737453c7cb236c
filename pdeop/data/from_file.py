"""Training on a dataset file in a community format (``data=from_file data.path=<file>``).

The file is opened lazily (``pdeop.data.formats``) and split by sample index, as the papers'
scripts do: training takes the first ``n_train`` samples, validation the next ``n_val``, test the
last ``n_test`` -- or the first ``n_test`` of ``test_path`` when the test set is a file of its own
(FNO's Darcy: ``..._smooth1.mat`` to train, ``..._smooth2.mat`` to test; likewise ``val_path``).
A folder is read as one dataset, its files one after the other, and The Well's dataset folder
brings its own ``data/train``, ``data/valid`` and ``data/test``. Only those samples are
read, on every ``subsample``-th node; the test split also on every factor in ``test_subsamples``
(``[1]``: the full grid, FNO's super-resolution test). From there on everything is as for
generated data: the same normalisers, tasks, loaders, metrics and evaluation.

With ``in_memory=false`` the training split stays on disk: each batch is one read of its
samples (in file order), in every loader worker through a handle of its own, and the
normalisers are fitted in one pass over the split, 32 MiB at a time -- for files larger than memory.
Validation and test are read into memory as usual.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from pdeop.data.datamodule import LoaderSettings, PairsDataModule
from pdeop.data.sampling import DeviceBatches
from pdeop.data.formats import DatasetCollection, ExternalDataset, open_dataset, open_splits, split_paths
from pdeop.data.formats.dataset import check_memory
from pdeop.data.normalise import ChannelStats
from pdeop.data.store import FieldSet
from pdeop.data.tasks import AllToAll, FinalState, Window
from pdeop.errors import ConfigError, DataFileError

log = logging.getLogger(__name__)

Source = ExternalDataset | DatasetCollection
CHUNK_BYTES = 32 * 2**20  # read at a time when fitting normalisers on a split left on disk


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
    """Train, validation and test ranges of external files; the read interface of ``DatasetFile``.

    ``sources`` maps each split to its dataset. Splits sharing the training file are carved from
    it (train first, validation next, test last, or test first where the format's convention
    says so); a split with a file of its own takes its first samples. A count of ``None`` takes
    all of a file of its own, or a tenth of the training file.
    """

    def __init__(self, sources: dict[str, Source], n_train: int | None, n_val: int | None, n_test: int | None,
                 subsample: int, test_subsamples: list[int], time_subsample: int):
        self.sources = sources
        main = sources["train"]
        self.path = main.path
        if time_subsample < 1:
            raise ConfigError(f"data.time_subsample: expected a positive integer, got {time_subsample}")
        self.subsample, self.time_subsample = subsample, time_subsample
        self.factors = sorted({subsample, *test_subsamples}, reverse=True)  # coarsest grid first
        for split, source in sources.items():
            for r in self.factors if split == "test" else [subsample]:
                source.check_subsample(r)
            source.check_time_subsample(time_subsample)
        own = {split: sources[split] is not main for split in ("val", "test")}
        counts = {"val": n_val, "test": n_test}
        n = main.n_samples
        for split, count in counts.items():  # null: all of a file of its own, else a tenth (PDEBench's test_ratio)
            if count is None:
                counts[split] = sources[split].n_samples if own[split] else max(1, n // 10)
        held = sum(counts[split] for split in counts if not own[split])
        n_train = n - held if n_train is None else n_train
        for key, count in (("n_train", n_train), *((f"n_{k}", v) for k, v in counts.items())):
            if count < 1:
                raise ConfigError(f"data.{key}: expected at least 1 sample, got {count} (the file '{self.path}' "
                                  f"has {n})")
        if n_train + held > n:
            shared = " + ".join(["n_train", *(f"n_{k}" for k in counts if not own[k])])
            raise ConfigError(f"data.{shared} = {n_train + held}: the file '{self.path}' has only {n} samples")
        for split in (k for k in counts if own[k]):
            if counts[split] > sources[split].n_samples:
                raise ConfigError(f"data.n_{split} = {counts[split]}: the file '{sources[split].path}' has only "
                                  f"{sources[split].n_samples} samples")
            for key in ("input_names", "output_names"):
                if getattr(sources[split], key) != getattr(main, key):
                    raise DataFileError(f"'{sources[split].path}' (data.{split}_path) has {key.split('_')[0]}s "
                                        f"{getattr(sources[split], key)}, '{self.path}' {getattr(main, key)}")
            for field, have, want in zip(("inputs", "outputs"), sources[split].channel_counts, main.channel_counts):
                if have != want:
                    raise DataFileError(f"'{sources[split].path}' (data.{split}_path) split '{split}' field "
                                        f"'{field}': {have} channels, the training file '{self.path}' {want}")
        carve = [("test", counts["test"])] if main.test_first and not own["test"] else []
        carve += [("train", n_train)] + [("val", counts["val"])] * (not own["val"])
        self.ranges, start = {}, 0
        for split, count in carve:  # from the start of the training file, in this order
            self.ranges[split], start = slice(start, start + count), start + count
        for split in ("val", "test"):
            if own[split]:
                self.ranges[split] = slice(0, counts[split])
            elif split not in self.ranges:  # the test samples at the end of the training file
                self.ranges[split] = slice(n - counts[split], n)
        self.times = slice(None)  # the recorded states a task reads (FileDataModule narrows it)

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
            "paths": {split: str(source.path) for split, source in self.sources.items()},
            "format": self.dataset.format, "ranges": {k: [v.start, v.stop] for k, v in self.ranges.items()},
            "subsample": self.subsample, "test_subsamples": self.factors, "time_subsample": self.time_subsample,
            "attrs": self.dataset.attrs,
        })

    @property
    def dataset(self) -> Source:
        """The training file."""
        return self.sources["train"]

    def resolutions(self, split: str) -> list[int]:
        """Grids (nodes along the first axis) at which ``split`` is served, coarsest first."""
        if split not in self.ranges:
            raise DataFileError(f"'{self.path}': no split '{split}'; splits are {list(self.ranges)}")
        first_axis = next(iter(self.sources[split].coords.values()))
        return [len(first_axis[::r]) for r in (self.factors if split == "test" else [self.subsample])]

    def read(self, split: str, resolution: int | None = None) -> FieldSet:
        available = self.resolutions(split)
        resolution = available[0] if resolution is None else resolution
        if resolution not in available:
            raise DataFileError(f"'{self.path}': split '{split}' is served at {available}, not {resolution}")
        r = (self.factors if split == "test" else [self.subsample])[available.index(resolution)]
        remedy = f"set a smaller data.n_{split}" + (" or data.in_memory=false" if split == "train" else "")
        check_memory(self.sources[split], self.ranges[split], r, self.time_subsample, self.times, f"split '{split}'",
                     remedy)
        return self.sources[split].read(self.ranges[split], r, self.time_subsample, self.times)

    def close(self) -> None:
        for source in {id(s): s for s in self.sources.values()}.values():
            source.close()


class FileSamples(Dataset):
    """Training pairs read from the file as batches are drawn (``data.in_memory=false``).

    Torch hands a batch's indices to ``__getitems__``: they are read in one selection, in file
    order, and the task's pairs made from them. The file is opened once per process, so loader
    workers never share an HDF5 handle.
    """

    def __init__(self, path: Path, read_options: dict, samples: slice, subsample: int, time_subsample: int,
                 times: slice, task: FinalState | Window | None):
        self.path, self.read_options = path, read_options
        self.start, self.count = samples.start, samples.stop - samples.start
        self.subsample, self.time_subsample, self.times, self.task = subsample, time_subsample, times, task
        self._dataset: ExternalDataset | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return self.count

    def _open(self) -> ExternalDataset:
        if self._dataset is None or self._pid != os.getpid():
            self._dataset, self._pid = open_dataset(self.path, **self.read_options), os.getpid()
        return self._dataset

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        order = np.argsort(indices)
        fields = self._open().read(self.start + np.asarray(indices)[order], self.subsample, self.time_subsample,
                                   self.times)
        if self.task is not None:
            fields = self.task.pairs(fields)
        inputs, outputs = torch.from_numpy(fields.inputs), torch.from_numpy(fields.outputs)
        return [(inputs[i], outputs[i]) for i in np.argsort(order)]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.__getitems__([index])[0]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_dataset": None, "_pid": None}  # workers open the file themselves


SPLIT_KEYS = {"train": "data.path", "val": "data.val_path", "test": "data.test_path"}


def check_distinct(paths: dict[str, Path]) -> None:
    """Refuse a test file that is the training file (the same path, a link to it): the model would be tested on
    samples it trained on. A validation file shared with another split is said, not refused: validating on the
    test file is common (neuraloperator's examples do), but it chooses the best checkpoint on the test samples."""
    named = {split: path for split, path in paths.items() if path.exists()}
    for split, other in (("test", "train"), ("val", "train"), ("val", "test")):
        if split in named and other in named and os.path.samefile(named[split], named[other]):
            shared = (f"{SPLIT_KEYS[split]}: '{named[split]}' is the data {SPLIT_KEYS[other]} names "
                      f"('{named[other]}'), so its {split} samples are its {other} samples")
            if split == "test":
                raise ConfigError(f"{shared}; give {SPLIT_KEYS[split]} a file of its own, or leave it null to "
                                  f"carve the test samples from the training file")
            log.warning("%s: the checkpoint chosen as best is chosen on them", shared)


class FileDataModule(PairsDataModule):
    """Trains on a file in a community format: FNO's .mat, PDEBench, The Well, neuraloperator's .pt, .npz.

    ``format`` (default: from the file), ``inputs``/``outputs``/``axes``/``times``/``fields``
    and ``periodic`` say how to read it (``pdeop.data.formats.open_dataset``); ``val_path`` and
    ``test_path`` give splits files of their own; ``in_memory=False`` leaves the training split on
    disk. A task reads only the recorded states it uses: ``task`` becomes the task on those states
    (same windows, counted from the first state read). See ``PairsDataModule`` for the checks,
    normalisers and loaders.
    """

    def __init__(self, path: str, format: str = "auto", val_path: str | None = None, test_path: str | None = None,
                 n_train: int | None = None, n_val: int | None = None, n_test: int | None = None,
                 subsample: int = 1, test_subsamples: list[int] = (), time_subsample: int = 1,
                 inputs: str | None = None, outputs: str | None = None, axes: dict | None = None,
                 times: str = "t", fields: list[str] | None = None,
                 periodic: bool | None = None, in_memory: bool = True, *, in_channels: int = 1,
                 out_channels: int = 1, grid_size: int | None = None, spatial_dims: int | None = None,
                 batch_size: int = 20,
                 eval_batch_size: int | None = None, num_workers: int = 0, shuffle_seed: int = 0,
                 train_subset: int | None = None, task: FinalState | Window | AllToAll | None = None,
                 device_resident: bool | Literal["auto"] = "auto", device_memory_share: float = 0.25):
        super().__init__(LoaderSettings.pick(locals()))
        if not path:
            raise ConfigError("data.path: data=from_file needs the file to train on (data.path=<file>)")
        self.split_paths = split_paths(path, val_path, test_path)
        check_distinct(self.split_paths)
        self.path = self.split_paths["train"]
        self.read_options = dict(format=format, inputs=inputs, outputs=outputs, axes=dict(axes) if axes else None,
                                 times=times, fields=list(fields) if fields else None, periodic=periodic)
        self.counts = dict(n_train=n_train, n_val=n_val, n_test=n_test)
        self.factors = dict(subsample=subsample, test_subsamples=list(test_subsamples),
                            time_subsample=time_subsample)
        if not in_memory and isinstance(task, AllToAll):
            raise ConfigError("data.in_memory: all-to-all pairs are drawn across a trajectory's snapshots and need "
                              "the training split in memory; use data.in_memory=true or data/task=final|window")
        if not in_memory and device_resident is True:
            self.refuse_resident("data.in_memory=false leaves the training split on disk")
        self.in_memory = in_memory
        self._periodic: bool | None = None
        self._train_range: slice | None = None
        self._times = slice(None)

    @property
    def stores_train(self) -> bool:
        return self.in_memory

    def open_store(self) -> FileSplits:
        opened = open_splits(self.split_paths, **self.read_options)
        for dataset in opened.values():
            log.info("read %s", dataset.describe())
        self._periodic = opened["train"].periodic
        sources = {split: opened.get(split, opened["train"]) for split in ("train", "val", "test")}
        store = FileSplits(sources, **self.counts, **self.factors)
        times = opened["train"].times
        if self.settings.task is not None and times is not None:  # read only the states the task uses
            r = self.factors["time_subsample"]
            self._times, self.task = self.settings.task.selection(times[r - 1::r])
            store.times = self._times
        return store

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
            train = store.ranges["train"]
            subset = self.settings.train_subset
            if subset is not None and not self.in_memory:
                count = train.stop - train.start
                if not 1 <= subset <= count:
                    raise ConfigError(f"data.train_subset: expected between 1 and the {count} training samples "
                                      f"of '{self.path}', got {subset}")
                train = slice(train.start, train.start + subset)
            self._train_range = train
            self.load(store)
        finally:
            store.close()

    def fit_normalisers(self, stored: FileSplits) -> tuple[nn.Module, nn.Module]:
        """In memory: as for generated data. On disk: one pass over the training split, chunk by chunk."""
        if self.in_memory:
            return super().fit_normalisers(stored)
        window = isinstance(self.task, Window)  # a rollout's states share one statistic (Window.fit_normalisers)
        stats = (ChannelStats(),) if window else (ChannelStats(), ChannelStats())
        train = self._train_range
        start, chunk = train.start, 1  # the first sample alone sizes the chunks that follow
        while start < train.stop:
            fields = stored.dataset.read(slice(start, min(start + chunk, train.stop)), stored.subsample,
                                         stored.time_subsample, stored.times)
            start += chunk
            chunk = max(1, CHUNK_BYTES // ((fields.inputs.nbytes + fields.outputs.nbytes) // len(fields.inputs)))
            if self.task is not None:
                fields = self.task.pairs(fields)
            arrays = (fields.inputs, fields.outputs)
            if window:
                arrays = (np.concatenate(self.task.states(*arrays)),)
            for side, data in zip(stats, arrays):
                side.add(data)
            ndim = fields.inputs.ndim
        fitted = tuple(side.normaliser(ndim) for side in stats)
        return self.task.repeat_normalisers(*fitted) if window else fitted

    def train_dataloader(self) -> DataLoader | DeviceBatches:
        if self.in_memory:
            return super().train_dataloader()
        samples = FileSamples(self.path, self.read_options, self._train_range, self.factors["subsample"],
                              self.factors["time_subsample"], self._times, self.task)
        return self._loader(samples, self.settings.batch_size, shuffle=True)

