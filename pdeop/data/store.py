"""The project's one HDF5 layout for generated datasets (documented in docs/hdf5_format.md).

A file holds splits (train, val, test), each at one or more grid resolutions:

    /                      attrs: problem, params (JSON), seed, pdeop_version, format_version, created_utc
    /<split>/<n>/          one resolution, n nodes a side; attrs: subsample
    /<split>/<n>/inputs    float32 [samples, in_channels, n, n]
    /<split>/<n>/outputs   float32 [samples, out_channels, n, n], or [samples, out_channels, times, n, n]
    /<split>/<n>/x, y      float64 node coordinates
    /<split>/<n>/t         float64 recorded times (time-dependent problems: the outputs are trajectories)

Writes go to a temporary file in the same folder that is renamed into place only when
complete, so an interrupted write never leaves a file that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from pdeop.errors import DataFileError

UMASK = os.umask(0o022)  # read once (os.umask only reports it by setting it), then restored
os.umask(UMASK)

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")


@dataclass
class FieldSet:
    """Inputs and outputs of one split at one resolution, with the node coordinates of each axis.

    For a time-dependent problem the outputs are trajectories recorded at ``times``; a task
    (``pdeop.data.tasks``) turns them into the input-output pairs a model trains on.
    """

    inputs: np.ndarray
    outputs: np.ndarray
    coords: dict[str, np.ndarray]
    subsample: int = 1
    times: np.ndarray | None = None  # trajectories: outputs are [samples, channels, times, *grid]
    lead_times: np.ndarray | None = None  # pairs of a time-conditioned task: the model's time input per sample


@dataclass
class DatasetAttrs:
    """What a file records about how it was made."""

    problem: str
    params: dict
    seed: int
    pdeop_version: str
    created_utc: str
    format_version: int = FORMAT_VERSION
    input_names: tuple[str, ...] = field(default_factory=tuple)
    output_names: tuple[str, ...] = field(default_factory=tuple)

    def to_h5(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "params"}
        out["params"] = json.dumps(self.params, sort_keys=True)
        out["input_names"] = list(self.input_names)
        out["output_names"] = list(self.output_names)
        return out

    @classmethod
    def from_h5(cls, attrs: h5py.AttributeManager) -> "DatasetAttrs":
        def names(key: str) -> tuple[str, ...]:
            return tuple(str(v.decode() if isinstance(v, bytes) else v) for v in attrs[key])

        return cls(
            problem=str(attrs["problem"]),
            params=json.loads(attrs["params"]),
            seed=int(attrs["seed"]),
            pdeop_version=str(attrs["pdeop_version"]),
            created_utc=str(attrs["created_utc"]),
            format_version=int(attrs["format_version"]),
            input_names=names("input_names"),
            output_names=names("output_names"),
        )


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o666 & ~UMASK)  # mkstemp's 0600 would hide shared datasets from a cluster group
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class DatasetWriter:
    """Writes one dataset file atomically; use as a context manager and add split groups inside."""

    def __init__(self, path: Path, attrs: DatasetAttrs):
        self.path = Path(path)
        self.attrs = attrs
        self._atomic = atomic_path(self.path)
        self._file: h5py.File | None = None

    def __enter__(self) -> "DatasetWriter":
        tmp = self._atomic.__enter__()
        self._file = h5py.File(tmp, "w")
        self._file.attrs.update(self.attrs.to_h5())
        return self

    def create(self, split: str, resolution: int, n_samples: int, in_channels: int,
               out_channels: int, coords: dict[str, np.ndarray], subsample: int,
               times: np.ndarray | None = None) -> h5py.Group:
        """Create an empty group for ``split`` at ``resolution``, to be filled sample by sample.

        With ``times``, the outputs are trajectories with a time axis after the channels.
        """
        group = self._file.create_group(f"{split}/{resolution}")
        group.attrs["subsample"] = subsample
        shape = (resolution,) * len(coords)
        time_axis = () if times is None else (len(times),)
        for name, channels, extra in (("inputs", in_channels, ()), ("outputs", out_channels, time_axis)):
            # one sample per chunk, so a lazy reader can slice single samples cheaply
            group.create_dataset(name, (n_samples, channels, *extra, *shape), "f4",
                                 chunks=(1, channels, *extra, *shape))
        for name, values in coords.items():
            group.create_dataset(name, data=values)
        if times is not None:
            group.create_dataset("t", data=np.asarray(times, dtype=np.float64))
        return group

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._file.close()
        return self._atomic.__exit__(exc_type, exc, tb)


def is_pdeop_file(path: Path) -> bool:
    """Whether ``path`` is a dataset in this layout (HDF5 with the ``problem`` and ``format_version`` attributes)."""
    if not h5py.is_hdf5(path):
        return False
    with h5py.File(path, "r") as f:
        return "format_version" in f.attrs and "problem" in f.attrs


def regenerate_hint(path: Path) -> str:
    return f"delete '{path}' and run `python -m pdeop.generate` with the same data config to make it again"


class DatasetFile:
    """Read access to a stored dataset; splits are read only when asked for."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataFileError(
                f"dataset file '{self.path}' does not exist; generate it with "
                f"`python -m pdeop.generate data=<name>` (or train with data.generate=true)"
            )
        try:
            with h5py.File(self.path, "r") as f:
                self.attrs = DatasetAttrs.from_h5(f.attrs)
                self.layout = {
                    split: sorted(int(r) for r in f[split].keys()) for split in f.keys()
                }
        except (OSError, KeyError, ValueError) as exc:
            raise DataFileError(
                f"dataset file '{self.path}' is not a readable pdeop dataset ({exc}); "
                + regenerate_hint(self.path)
            ) from exc
        if self.attrs.format_version != FORMAT_VERSION:
            raise DataFileError(
                f"dataset file '{self.path}' has format version {self.attrs.format_version}, "
                f"this pdeop reads version {FORMAT_VERSION}; " + regenerate_hint(self.path)
            )

    @property
    def input_names(self) -> list[str]:
        return list(self.attrs.input_names)

    @property
    def output_names(self) -> list[str]:
        return list(self.attrs.output_names)

    @property
    def provenance(self) -> dict:
        """How the data was made: every generation parameter."""
        return self.attrs.params

    def resolutions(self, split: str) -> list[int]:
        """Stored resolutions of ``split``, coarsest first."""
        if split not in self.layout:
            raise DataFileError(f"dataset file '{self.path}' has no split '{split}'; it has {sorted(self.layout)}")
        return self.layout[split]

    def read(self, split: str, resolution: int | None = None) -> FieldSet:
        """Load one split at one resolution (default: the coarsest) into memory."""
        available = self.resolutions(split)
        resolution = available[0] if resolution is None else resolution
        if resolution not in available:
            raise DataFileError(
                f"dataset file '{self.path}' has split '{split}' at resolutions {available}, not {resolution}"
            )
        try:
            with h5py.File(self.path, "r") as f:
                group = f[f"{split}/{resolution}"]
                coord_names = [k for k in group.keys() if k not in ("inputs", "outputs", "t")]
                return FieldSet(
                    inputs=group["inputs"][()],
                    outputs=group["outputs"][()],
                    coords={k: group[k][()] for k in sorted(coord_names)},
                    subsample=int(group.attrs["subsample"]),
                    times=group["t"][()] if "t" in group else None,
                )
        except (OSError, KeyError) as exc:
            raise DataFileError(
                f"dataset file '{self.path}' could not be read at '{split}/{resolution}' ({exc}); "
                + regenerate_hint(self.path)
            ) from exc
