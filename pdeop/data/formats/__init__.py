"""Readers of the community's PDE dataset formats, each mapping a file onto the canonical dataset.

``open_dataset(path, format="auto", ...)`` returns an ``ExternalDataset`` (nothing read yet);
``ExternalDataset.read`` returns the samples asked for as a ``FieldSet``. Formats: FNO's MATLAB
files (``mat``), PDEBench HDF5 (``pdebench``), The Well (``the_well``), neuraloperator's
``.pt`` dictionaries (``pt``) and NumPy archives (``npz``). ``split_paths`` finds the file or
folder of each split (The Well's ``data/{train,valid,test}``) and ``open_splits`` opens them: what
``data=from_file`` trains on and ``python -m pdeop.data.formats`` reports.
"""

from __future__ import annotations

from pathlib import Path

import h5py

from pdeop.data.formats.dataset import UNREADABLE, DatasetCollection, ExternalDataset, keys_of
from pdeop.data.formats.matlab import read_matlab
from pdeop.data.formats.pdebench import read_pdebench
from pdeop.data.formats.tensors import read_named_arrays
from pdeop.data.formats.the_well import GROUPS as WELL_GROUPS
from pdeop.data.formats.the_well import read_the_well
from pdeop.data.store import DatasetFile, is_pdeop_file
from pdeop.errors import DataFileError, first_line

FORMATS = ("mat", "pdebench", "the_well", "pt", "npz")
SUFFIXES = {".mat": "mat", ".pt": "pt", ".pth": "pt", ".npz": "npz"}
DATA_SUFFIXES = (".h5", ".hdf5", *SUFFIXES)
WELL_SPLITS = {"train": "train", "val": "valid", "test": "test"}  # split -> The Well's folder under data/
LFS_POINTER = b"version https://git-lfs"  # what a Git LFS pointer file starts with


def detect_format(path: Path) -> str:
    """The format of ``path`` from its suffix, or for HDF5 from what its root holds."""
    if path.suffix.lower() in SUFFIXES:
        return SUFFIXES[path.suffix.lower()]
    if not h5py.is_hdf5(path):
        raise DataFileError(f"'{path}': cannot tell its format (not HDF5, suffix '{path.suffix}'); set data.format "
                            f"to one of {list(FORMATS)}")
    if is_pdeop_file(path):
        problem = DatasetFile(path).attrs.problem
        raise DataFileError(f"'{path}' is a pdeop dataset (problem '{problem}'); train on it with "
                            f"data={problem} data.path={path} rather than data=from_file")
    with h5py.File(path, "r") as f:
        keys = set(keys_of(f))
    if all(g in keys for g in WELL_GROUPS[:3]):
        return "the_well"
    if "tensor" in keys or "density" in keys or any(k.isdigit() for k in keys):
        return "pdebench"
    raise DataFileError(f"'{path}': an HDF5 file in none of the known layouts (The Well, PDEBench, MATLAB v7.3); "
                        f"it has keys {sorted(keys)}; set data.format to one of {list(FORMATS)}")


def expect_layout(path: Path, fmt: str) -> None:
    """Refuse a file that cannot be in the selected format before a reader trips over it."""
    suffix = path.suffix.lower()
    if fmt in ("pdebench", "the_well") and not h5py.is_hdf5(path):
        raise DataFileError(f"'{path}' is not an HDF5 file, so not in the selected format data.format={fmt}")
    if fmt in ("pt", "npz") and h5py.is_hdf5(path):
        raise DataFileError(f"'{path}' is an HDF5 file, not the selected format data.format={fmt} (suffix '{suffix}')")
    if fmt == "the_well":
        with h5py.File(path, "r") as f:
            if not all(g in f for g in WELL_GROUPS[:3]):
                raise DataFileError(f"'{path}' is not in the selected format data.format=the_well: no groups "
                                    f"{[g for g in WELL_GROUPS[:3] if g not in f]}; it has keys {sorted(keys_of(f))}")


def open_dataset(path: str | Path, format: str = "auto", inputs: str | None = None, outputs: str | None = None,
                 axes: dict | None = None, fields: list[str] | None = None, periodic: bool | None = None,
                 times: str = "t") -> ExternalDataset | DatasetCollection:
    """Open a dataset file (or a folder of files of one dataset) lazily and map it onto inputs, outputs,
    grid and times.

    ``inputs``/``outputs`` name the arrays of ``mat``, ``pt`` and ``npz`` files (default: the usual
    pairs, ``coeff``/``sol``, ``a``/``u``, ``x``/``y``), ``axes`` their axis names
    (``{"outputs": ["sample", "x", "y", "time"]}``), ``times`` the array of recorded times;
    ``fields`` picks The Well's fields. ``periodic`` says how to place nodes in files without
    coordinates and which subsampling factors divide the grid (default: from the format). A
    folder's files (sorted by name) are numbered one after the other; The Well's dataset folder
    opens as its training split (``open_splits`` opens all three).
    """
    path = split_paths(path)["train"]
    options = dict(format=format, inputs=inputs, outputs=outputs, axes=axes, fields=fields, periodic=periodic,
                   times=times)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in DATA_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise DataFileError(f"dataset folder '{path}' holds no data files ({', '.join(DATA_SUFFIXES)}) and is "
                                f"no dataset folder of The Well (data/train, data/valid, data/test)")
        datasets = []
        try:
            for file in files:
                datasets.append(open_file(file, **options))
            return datasets[0] if len(datasets) == 1 else DatasetCollection(path, datasets)
        except Exception:
            for dataset in datasets:
                dataset.close()
            raise
    return open_file(path, **options)


def split_paths(path: str | Path, val_path: str | Path | None = None,
                test_path: str | Path | None = None) -> dict[str, Path]:
    """The file or folder of each split that has its own, ``train`` always: The Well's dataset folder
    (``<name>/data/{train,valid,test}``) brings all three, ``val_path``/``test_path`` name others; the
    splits not named are carved from ``train`` by sample index."""
    path = Path(path)
    paths = {"train": path}
    if (path / "data" / "train").is_dir():
        paths = {split: path / "data" / folder for split, folder in WELL_SPLITS.items()}
        missing = [str(p) for p in paths.values() if not p.is_dir()]
        if missing:
            raise DataFileError(f"The Well's dataset folder '{path}' lacks {missing}; download all three splits "
                                f"or set data.path to '{paths['train']}' alone")
    paths.update({split: Path(p) for split, p in (("val", val_path), ("test", test_path)) if p})
    return paths


def open_splits(paths: dict[str, Path], **options) -> dict[str, ExternalDataset | DatasetCollection]:
    """Open the file or folder of each split in ``paths`` (``split_paths``); ``options`` as for ``open_dataset``.
    All or none are left open."""
    opened = {}
    try:
        for split, split_path in paths.items():
            opened[split] = open_dataset(split_path, **options)
    except Exception:
        for dataset in opened.values():
            dataset.close()
        raise
    return opened


def check_not_lfs_pointer(path: Path) -> None:
    """Refuse a Git LFS pointer file saved under the data's name (a clone without ``git lfs``): a few lines of text
    that every reader would call corrupt."""
    with open(path, "rb") as file:
        if file.read(len(LFS_POINTER)) == LFS_POINTER:
            raise DataFileError(f"'{path}' is a Git LFS pointer, not the data: run git lfs pull in its repository")


def open_file(path: Path, format: str, inputs: str | None, outputs: str | None, axes: dict | None,
              fields: list[str] | None, periodic: bool | None, times: str) -> ExternalDataset:
    if not path.is_file():
        raise DataFileError(f"dataset file '{path}' does not exist")
    if format != "auto" and format not in FORMATS:
        raise DataFileError(f"data.format: '{format}' is not a known format; expected auto or one of {list(FORMATS)}")
    try:
        check_not_lfs_pointer(path)
        fmt = detect_format(path) if format == "auto" else format
        expect_layout(path, fmt)
        if fmt == "mat":
            return read_matlab(path, inputs, outputs, times, axes, bool(periodic))
        if fmt in ("pt", "npz"):
            return read_named_arrays(path, fmt, inputs, outputs, times, axes, bool(periodic))
        if fmt == "pdebench":
            return read_pdebench(path, periodic)
        return read_the_well(path, fields, periodic)
    except MemoryError as exc:
        raise DataFileError(f"'{path}': not enough memory to open it (it claims more than fits, or is corrupt): "
                            f"{first_line(exc)}") from exc
    except UNREADABLE as exc:
        raise DataFileError(f"'{path}' could not be read as {format if format != 'auto' else 'a dataset'} "
                            f"(truncated or corrupt?): {first_line(exc)}") from exc


__all__ = ["FORMATS", "DatasetCollection", "ExternalDataset", "detect_format", "open_dataset", "open_splits",
           "split_paths"]
