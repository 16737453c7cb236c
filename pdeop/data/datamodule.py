"""LightningDataModule for operator learning on a stored dataset (inputs -> outputs on a grid)."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from pdeop.data.generation import DatasetSpec, generate
from pdeop.data.normalise import fit_channel_normaliser
from pdeop.data.sampling import EpochShuffleSampler
from pdeop.data.store import DatasetFile, FieldSet
from pdeop.errors import ConfigError, DataFileError
from pdeop.problems import Problem


class OperatorDataModule(pl.LightningDataModule):
    """Generates (once) or opens the dataset file, serves train/val/test loaders and fits normalisers.

    The test split is served once per stored resolution; ``test_resolutions`` lists them in
    loader order. ``in_channels``/``out_channels`` (channel counts) and ``grid_size`` (training
    grid, nodes a side) describe the data for the model config, which reads them by
    interpolation; they are checked against the file. Training batches
    are shuffled from ``shuffle_seed`` and the epoch number, so a resumed run repeats exactly.
    """

    def __init__(
        self,
        problem: Problem,
        n_train: int,
        n_val: int,
        n_test: int,
        subsample: int,
        test_subsamples: list[int] | tuple[int, ...] = (),
        seed: int = 0,
        in_channels: int = 1,
        out_channels: int = 1,
        grid_size: int | None = None,
        batch_size: int = 20,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        data_dir: str = "data",
        path: str | None = None,
        generate: bool = True,
        generate_workers: int = 1,
        shuffle_seed: int = 0,
    ):
        super().__init__()
        self.spec = DatasetSpec(problem, n_train, n_val, n_test, subsample, tuple(test_subsamples), seed)
        self.in_channels, self.out_channels, self.grid_size = in_channels, out_channels, grid_size
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.data_dir = Path(data_dir)
        self.user_path = Path(path) if path else None
        self.path = self.user_path or self.spec.path(self.data_dir)
        self.generate = generate
        self.generate_workers = generate_workers
        self.shuffle_seed = shuffle_seed
        self.splits: dict[str, FieldSet] = {}
        self.test_sets: dict[int, FieldSet] = {}
        self.input_normaliser = None
        self.output_normaliser = None

    def prepare_data(self) -> None:
        """Generate the dataset file if it is missing (runs on one process only).

        A file named by ``data.path`` is never generated: ``setup`` reports it if it is missing.
        """
        if self.user_path is not None or self.path.is_file():
            return
        if not self.generate:
            raise DataFileError(
                f"dataset file '{self.path}' does not exist and data.generate is false; "
                f"run `python -m pdeop.generate` with the same data config, or set data.generate=true"
            )
        generate(self.spec, self.data_dir, workers=self.generate_workers)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        stored = DatasetFile(self.path)
        for split in ("train", "val"):
            self.splits[split] = stored.read(split)
        self.test_sets = {res: stored.read("test", res) for res in stored.resolutions("test")}
        train = self.splits["train"]
        checks = [("in_channels", train.inputs.shape[1]), ("out_channels", train.outputs.shape[1])]
        if self.grid_size is not None:
            checks.append(("grid_size", train.inputs.shape[-1]))
        for key, have in checks:
            if getattr(self, key) != have:
                raise ConfigError(f"data.{key}: config says {getattr(self, key)}, the file '{self.path}' has {have}")
        self.input_normaliser = fit_channel_normaliser(torch.from_numpy(train.inputs))
        self.output_normaliser = fit_channel_normaliser(torch.from_numpy(train.outputs))

    @property
    def test_resolutions(self) -> list[int]:
        return list(self.test_sets)

    def _loader(self, fields: FieldSet, batch_size: int, shuffle: bool) -> DataLoader:
        dataset = TensorDataset(torch.from_numpy(fields.inputs), torch.from_numpy(fields.outputs))
        sampler = EpochShuffleSampler(len(dataset), self.shuffle_seed) if shuffle else None
        return DataLoader(
            dataset, batch_size=batch_size, sampler=sampler, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.splits["train"], self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.splits["val"], self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> list[DataLoader]:
        return [self._loader(fields, self.eval_batch_size, shuffle=False) for fields in self.test_sets.values()]
