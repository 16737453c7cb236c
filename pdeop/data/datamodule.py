"""LightningDataModule for operator learning on a stored dataset or an online stream (inputs -> outputs on a grid)."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from pdeop.data.generation import DatasetSpec, generate
from pdeop.data.solvers import Solvers
from pdeop.data.normalise import fit_channel_normaliser
from pdeop.data.sampling import DeviceBatches, RankSlice, batches_taken, fit_position, training_sampler
from pdeop.data.store import DatasetFile, FieldSet
from pdeop.data.stream import SolverStream, StreamBatches, StreamSettings, draw_and_solve
from pdeop.data.stream.generator import NORMALISER_RANK
from pdeop.data.tasks import AllToAll, FinalState, Window
from pdeop.errors import ConfigError, DataFileError
from pdeop.problems import Problem
from pdeop.problems.base import is_periodic


@dataclasses.dataclass(frozen=True)
class LoaderSettings:
    """The keys of a data config that every pairs data module reads, as ``PairsDataModule`` takes them.

    A config writes them flat beside the data module's own keys (``data.batch_size=8``), so each data
    module's constructor takes them as keyword arguments of these names and defaults and hands them
    on as one ``LoaderSettings.pick(locals())``; the configs' signature checks (``pdeop.config``) see them
    there. ``in_channels``/``out_channels``/``grid_size``/``spatial_dims`` describe the pairs to the model
    and loss configs and are checked against the data (the last two when set); ``task`` and ``train_subset`` say
    which pairs; the rest how they are batched.
    ``device_resident`` and ``device_memory_share`` say where training batches are drawn (``PairsDataModule``).
    """

    in_channels: int = 1
    out_channels: int = 1
    grid_size: int | None = None
    spatial_dims: int | None = None
    batch_size: int = 20
    eval_batch_size: int | None = None
    num_workers: int = 0
    shuffle_seed: int = 0
    train_subset: int | None = None
    task: FinalState | Window | AllToAll | None = None
    device_resident: bool | Literal["auto"] = "auto"
    device_memory_share: float = 0.25

    @classmethod
    def pick(cls, arguments: dict) -> LoaderSettings:
        """The settings among a constructor's ``arguments`` (its ``locals()``), found by name."""
        return cls(**{field.name: arguments[field.name] for field in dataclasses.fields(cls)})

    @property
    def evaluation_batch_size(self) -> int:
        """Validation's and test's batch size: ``eval_batch_size``, or the training one."""
        return self.eval_batch_size or self.batch_size


def batch_arrays(fields: FieldSet) -> tuple[np.ndarray, ...]:
    """What a batch holds, in order: ``(x, y)``, or ``(x, lead time, y)`` for a time-conditioned task."""
    if fields.lead_times is None:
        return fields.inputs, fields.outputs
    return fields.inputs, fields.lead_times, fields.outputs


class PairsDataModule(pl.LightningDataModule):
    """Serves the input-output pairs of a stored dataset: splits, task, checks, normalisers, loaders.

    A subclass says where the splits are stored (``open_store``: an object with ``path``,
    ``resolutions(split)``, ``read(split, resolution)`` and the channel names). The test split
    is served once per stored resolution; ``test_resolutions`` lists them in loader order.
    ``in_channels``/``out_channels`` (channel counts) and ``grid_size`` (training grid, nodes a
    side) describe the data for the model config, which reads them by interpolation; they are
    checked against the file. Training batches are shuffled from ``shuffle_seed`` and the epoch
    number, so a resumed run repeats exactly.

    ``settings`` holds the data config's keys this class reads (``LoaderSettings``).
    ``train_subset`` trains on the first samples of the stored training split only (learning
    curves on one file, with validation and test unchanged).

    ``task`` (time-dependent datasets only) turns stored trajectories into pairs
    (``pdeop.data.tasks``); a rollout task's ``out_channels`` is what the model predicts per call.

    ``device_resident`` keeps a stored training split on the accelerator and draws each batch there
    by index (``DeviceBatches``), in the order the ``DataLoader`` would give, so the numbers are the
    same without collating and copying every batch on the host: ``auto`` does so on a CUDA device when
    the split takes at most ``device_memory_share`` of its memory, ``true`` on any device (refused
    where the training data is not a stored split in memory, or does not fit), ``false`` never.
    Validation and test keep their loaders.
    """

    # A run stopped mid-epoch (SIGTERM) resumes with the batches the uninterrupted run would have had: the training
    # sampler leaves out the epoch's batches already taken (``fit_position``), so a checkpoint written then is exact.
    resumes_mid_epoch = True

    def __init__(self, settings: LoaderSettings):
        super().__init__()
        if settings.device_resident not in (True, False, "auto"):
            raise ConfigError(f"data.device_resident: expected auto, true or false, got {settings.device_resident!r}")
        if not 0 < settings.device_memory_share <= 1:
            raise ConfigError(f"data.device_memory_share: expected a fraction of the device's memory in (0, 1], "
                              f"got {settings.device_memory_share}")
        if settings.device_resident is True and isinstance(settings.task, AllToAll):
            self.refuse_resident("all-to-all pairs (data/task=all_to_all) are drawn lazily from the trajectories")
        self.settings = settings
        self.task = settings.task  # the task in use: a subclass may narrow the configured one to what it reads
        self.splits: dict[str, FieldSet] = {}
        self.test_sets: dict[int, FieldSet] = {}
        self.input_normaliser = None
        self.output_normaliser = None
        self.train_pairs: Dataset | None = None

    @property
    def stores_train(self) -> bool:
        """Whether the training split is read into memory (otherwise it streams, from solvers or from disk)."""
        return True

    def open_store(self):
        """The stored splits: ``DatasetFile`` or anything with its ``resolutions``/``read`` and channel names."""
        raise NotImplementedError

    @property
    def periodic(self) -> bool:
        """Whether the grid is periodic (the evaluation's H1 norm differentiates accordingly)."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.load(self.open_store())

    def load(self, stored) -> None:
        """Read the splits from ``stored``, make the task's pairs, check the config against them, fit normalisers."""
        for split in ("train", "val") if self.stores_train else ("val",):
            self.splits[split] = stored.read(split)
        subset = self.settings.train_subset
        if "train" in self.splits and subset is not None:
            train = self.splits["train"]
            if not 1 <= subset <= len(train.inputs):
                raise ConfigError(f"data.train_subset: expected between 1 and the {len(train.inputs)} training "
                                  f"samples of '{stored.path}', got {subset}")
            self.splits["train"] = dataclasses.replace(train, inputs=train.inputs[:subset],
                                                       outputs=train.outputs[:subset])
        self.test_sets = {res: stored.read("test", res) for res in stored.resolutions("test")}
        out_channels = self.reference_fields.outputs.shape[1]
        if self.reference_fields.times is not None and self.task is None:
            raise ConfigError(f"data.task: '{stored.path}' holds trajectories; choose what to learn from them "
                              f"(data/task=final, window or all_to_all)")
        if isinstance(self.task, AllToAll) and "train" in self.splits:
            self.train_pairs = self.task.train_dataset(self.splits["train"])  # lazily, every (t_i <= t_j)
        if self.task is not None:
            self.splits = {split: self.task.pairs(fields) for split, fields in self.splits.items()}
            self.test_sets = {res: self.task.pairs(fields) for res, fields in self.test_sets.items()}
            out_channels = self.task.out_channels(out_channels)
        reference = self.reference_fields
        checks = [("in_channels", reference.inputs.shape[1]), ("out_channels", out_channels)]
        if self.settings.grid_size is not None:
            checks.append(("grid_size", reference.inputs.shape[-1]))
        if self.settings.spatial_dims is not None:
            checks.append(("spatial_dims", reference.inputs.ndim - 2))
        task = f" as data.task ({type(self.task).__name__}) serves it" if self.task is not None else ""
        wrong = [(key, have) for key, have in checks if getattr(self.settings, key) != have]
        if wrong:  # every one in one message: a fix at a time would take a run each
            said = "; ".join(f"data.{key}: config says {getattr(self.settings, key)}, the data of '{stored.path}'"
                             f"{task} has {have}" for key, have in wrong)
            raise ConfigError(f"{said}; set {' '.join(f'data.{key}={have}' for key, have in wrong)}")
        self.input_normaliser, self.output_normaliser = self.fit_normalisers(stored)

    def fit_normalisers(self, stored) -> tuple[nn.Module, nn.Module]:
        """Input and output normalisers fitted on ``normaliser_samples`` (the task's, for a rollout or all-to-all)."""
        fit_inputs, fit_outputs = self.normaliser_samples()
        if isinstance(self.task, (Window, AllToAll)):
            return self.task.fit_normalisers(fit_inputs, fit_outputs)
        return (fit_channel_normaliser(torch.from_numpy(fit_inputs)),
                fit_channel_normaliser(torch.from_numpy(fit_outputs)))

    def normaliser_samples(self) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and outputs the normalisers are fitted on: the training split."""
        reference = self.reference_fields
        return reference.inputs, reference.outputs

    @property
    def reference_fields(self) -> FieldSet:
        """Stored fields on the training grid: the training split, or validation when it is not in memory."""
        return self.splits["train" if self.stores_train else "val"]

    @property
    def preflight_inputs(self) -> list[np.ndarray]:
        """Two inputs per stored grid (the training grid first), for the model's pre-flight pass."""
        return [self.reference_fields.inputs[:2], *(fields.inputs[:2] for fields in self.test_sets.values())]

    @property
    def test_resolutions(self) -> list[int]:
        return list(self.test_sets)

    def _ranks(self) -> tuple[int, int]:
        """(rank, world size) of this process; (0, 1) outside a distributed run."""
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def _loader(self, fields: FieldSet | Dataset, batch_size: int, shuffle: bool) -> DataLoader:
        """Batches ``(x, y)``, or ``(x, lead time, y)`` for a time-conditioned task."""
        if isinstance(fields, Dataset):
            dataset = fields
        else:
            dataset = TensorDataset(*(torch.from_numpy(a) for a in batch_arrays(fields)))
        rank, world = self._ranks()
        sampler = (self._training_sampler(dataset, batch_size) if shuffle
                   else RankSlice(len(dataset), rank, world))
        workers = self.settings.num_workers
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                          persistent_workers=workers > 0)

    def _training_sampler(self, dataset: Dataset | range, batch_size: int) -> Sampler[int]:
        """This rank's share of the epoch's permutation, less the batches already taken (``resumes_mid_epoch``)."""
        rank, world = self._ranks()
        return training_sampler(dataset, self.settings.shuffle_seed, rank, world, batch_size,
                                position=lambda: fit_position(self.trainer))

    @staticmethod
    def refuse_resident(why: str) -> None:
        """``data.device_resident=true`` where the training data is no stored split in memory: one line saying why."""
        raise ConfigError(f"data.device_resident: true keeps a stored training split on the device, but {why}; "
                          f"use data.device_resident=auto or false")

    def resident_device(self, fields: FieldSet) -> torch.device | None:
        """The device to keep the training split ``fields`` on, or None to serve it through a ``DataLoader``."""
        wanted = self.settings.device_resident
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if wanted is False or (wanted == "auto" and device.type != "cuda"):
            return None
        arrays = (fields.inputs, fields.outputs, fields.lead_times)
        size = sum(a.nbytes for a in arrays if a is not None)
        if device.type != "cuda":  # no memory figure to hold it against: `true` is taken at its word
            return device
        total = torch.cuda.get_device_properties(device).total_memory
        share = self.settings.device_memory_share
        if size <= share * total:
            return device
        if wanted == "auto":
            return None
        raise ConfigError(f"data.device_resident: the training split takes {size / 2**20:.0f} MiB, more than "
                          f"data.device_memory_share={share} of {device}'s {total / 2**30:.1f} GiB; raise "
                          f"data.device_memory_share or use data.device_resident=auto or false")

    def train_dataloader(self) -> DataLoader | DeviceBatches:
        """Training batches: from the device (``device_resident``) or through a ``DataLoader``, in the same order."""
        train = self.train_pairs if self.train_pairs is not None else self.splits["train"]
        device = self.resident_device(train) if isinstance(train, FieldSet) else None
        if device is None:
            return self._loader(train, self.settings.batch_size, shuffle=True)
        tensors = tuple(torch.from_numpy(a).to(device) for a in batch_arrays(train))
        batch_size = self.settings.batch_size
        return DeviceBatches(tensors, self._training_sampler(range(len(tensors[0])), batch_size), batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.splits["val"], self.settings.evaluation_batch_size, shuffle=False)

    def test_dataloader(self) -> list[DataLoader]:
        batch_size = self.settings.evaluation_batch_size
        return [self._loader(fields, batch_size, shuffle=False) for fields in self.test_sets.values()]


class OperatorDataModule(PairsDataModule):
    """Generates (once) or opens the dataset file of a problem; with ``online=True``, an ``OnlineDataModule``.

    See ``PairsDataModule`` for the splits, task, checks and loaders.

    One data config serves both: ``online`` and ``stream`` are the ``OnlineDataModule``'s keys,
    accepted here, and ``OperatorDataModule(..., online=True)`` (``data.online=true``) builds that
    subclass, so configs keep naming this class and their keys.

    ``solvers`` (set by the entry points from ``pdeop/conf/solvers/``, not part of the data config) says
    where generation's and the stream's solvers run; ``None`` is this machine.
    """

    def __new__(cls, *args, online: bool = False, **kwargs):
        return super().__new__(OnlineDataModule if online else cls)

    def __init__(
        self,
        problem: Problem,
        n_train: int,
        n_val: int,
        n_test: int,
        subsample: int,
        test_subsamples: list[int] | tuple[int, ...] = (),
        seed: int = 0,
        *,
        data_dir: str = "data",
        path: str | None = None,
        generate: bool = True,
        generate_workers: int = 1,
        online: bool = False,
        stream: StreamSettings | None = None,
        in_channels: int = 1,
        out_channels: int = 1,
        grid_size: int | None = None,
        spatial_dims: int | None = None,
        batch_size: int = 20,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        shuffle_seed: int = 0,
        train_subset: int | None = None,
        task: FinalState | Window | AllToAll | None = None,
        device_resident: bool | Literal["auto"] = "auto",
        device_memory_share: float = 0.25,
    ):
        super().__init__(LoaderSettings.pick(locals()))  # `online` chose the class; `stream` is OnlineDataModule's
        self.spec = DatasetSpec(problem, n_train, n_val, n_test, subsample, tuple(test_subsamples), seed,
                                store_train=self.stores_train)
        self.data_dir = Path(data_dir)
        self.user_path = Path(path) if path else None
        self.path = self.user_path or self.spec.path(self.data_dir)
        self.generate = generate
        self.generate_workers = generate_workers
        self.solvers: Solvers | None = None

    # inspect.signature (the config checks read it) would show __new__'s (*args, **kwargs): show __init__'s keys.
    __signature__ = inspect.signature(__init__)
    __signature__ = __signature__.replace(parameters=tuple(__signature__.parameters.values())[1:])  # without self

    def prepare_data(self) -> None:
        """Generate the dataset file if it is missing (runs on one process only), with the solvers where
        ``self.solvers`` says (default: ``data.generate_workers`` processes on this machine).

        A file named by ``data.path`` is never generated: ``setup`` reports it if it is missing.
        """
        if self.user_path is not None or self.path.is_file():
            return
        if not self.generate:
            raise DataFileError(
                f"dataset file '{self.path}' does not exist and data.generate is false; "
                f"run `python -m pdeop.generate` with the same data config, or set data.generate=true"
            )
        generate(self.spec, self.data_dir, workers=self.generate_workers, solvers=self.solvers)

    def open_store(self) -> DatasetFile:
        return DatasetFile(self.path)

    @property
    def periodic(self) -> bool:
        return is_periodic(self.spec.problem)


class OnlineDataModule(OperatorDataModule):
    """Trains on a stream from the problem's solver instead of a stored training set (``data.online=true``).

    Built by ``OperatorDataModule(..., online=True)``, whose keys it takes, with ``stream``
    (``StreamSettings``): solver workers produce fresh samples while training runs, no training
    set is stored, validation and test are the same stored samples as offline, and the normalisers
    are fitted on ``normaliser_samples`` solved at start-up. The stream's sample counters travel in
    checkpoints, so a resumed run continues the stream (``upgrade_checkpoint`` for those written
    before this class); one resumed mid-epoch takes the rest of that epoch's steps. The samples a
    checkpoint's counters say were generated but still sat in the buffer are not trained on after a resume
    (at an epoch's end as mid-epoch): the stream's order depends on its workers' timing, so an online run
    never repeats exactly.
    """

    def __init__(self, *args, stream: StreamSettings | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if self.task is not None:
            raise ConfigError("data.online: the online stream serves single input-output pairs; a time-dependent "
                              "dataset with data.task trains offline (data.online=false)")
        if self.settings.device_resident is True:
            self.refuse_resident("data.online=true streams fresh samples from the solvers and stores none for training")
        self.stream_settings = stream or StreamSettings()
        self.stream: SolverStream | None = None
        self.stream_counters: list[int] | None = None

    @property
    def stores_train(self) -> bool:
        return False

    def state_dict(self) -> dict:
        """Each rank's next stream counter per worker: a resumed run continues from there.

        Lightning builds the checkpoint on every rank and writes rank 0's, so the counters of
        all ranks are gathered here.
        """
        counters = self.stream.next_counters if self.stream is not None else self.stream_counters
        if counters is None:
            return {}
        local = torch.tensor(counters, dtype=torch.long)
        _, world = self._ranks()
        gathered = self.trainer.strategy.all_gather(local) if world > 1 else local[None]
        return {"stream_counters": gathered.tolist()}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore this rank's counters (a rank the checkpoint did not have starts its stream at zero)."""
        rows = state_dict.get("stream_counters")
        if rows:
            rank, _ = self._ranks()
            self.stream_counters = list(rows[rank]) if rank < len(rows) else None

    def teardown(self, stage: str) -> None:
        if self.stream is not None and stage == "fit":
            self.stream.stop()
            self.stream = None

    def normaliser_samples(self) -> tuple[np.ndarray, np.ndarray]:
        """Samples from a seed space of their own, the same on every rank, solved here once."""
        n = self.stream_settings.normaliser_samples
        return draw_and_solve(self.spec.problem, self.spec.subsample, self.settings.shuffle_seed, NORMALISER_RANK, 0,
                              range(n))

    def train_dataloader(self) -> DataLoader:
        if self.stream is None:  # started here, after a checkpoint has restored the counters
            rank, _ = self._ranks()
            self.stream = SolverStream(self.spec.problem, self.spec.subsample, self.stream_settings,
                                       self.settings.shuffle_seed, rank, self.stream_counters, self.solvers)
            self.stream.start()
        batches = StreamBatches(self.stream, self.settings.batch_size, self.stream_settings.steps_per_epoch,
                                taken=lambda: batches_taken(self.trainer))
        return DataLoader(batches, batch_size=None, num_workers=0)


def upgrade_checkpoint(checkpoint: dict) -> dict:
    """A checkpoint as this version files it: Lightning keeps a data module's state under its class name, and
    online runs before ``OnlineDataModule`` kept the stream's counters under ``OperatorDataModule`` (which
    stores nothing offline). Moved, a resumed run of such a checkpoint continues its stream."""
    old, new = OperatorDataModule.__qualname__, OnlineDataModule.__qualname__
    if old in checkpoint and new not in checkpoint:
        checkpoint[new] = checkpoint.pop(old)
    return checkpoint
