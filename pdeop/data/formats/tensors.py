"""Named arrays: neuraloperator's ``.pt`` dictionaries and NumPy ``.npz`` archives.

neuraloperator ships its small Darcy sets as ``{"x": bool [N, s, s], "y": float32 [N, s, s]}``
(``darcy_train_16.pt``); its ``PTDataset`` casts ``x`` to float and adds the channel axis, and so
does this reader. ``.pt`` files are opened with ``torch.load(weights_only=True, mmap=True)``: no
unpickling of code, and tensors stay on disk until sliced. ``.npz`` members are read whole, and
only the members named. Arrays default to ``[sample, *space]``, outputs with one axis more to
``[sample, *space, time]``; ``data.axes`` names other layouts (``[sample, channel, x, y]``, ...).
Coordinates come from members named like the spatial axes (``x``, ``y``) and times from ``t``
where the file has them, otherwise nodes on [0, 1].
"""

from __future__ import annotations

import math
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch

from pdeop.data.formats.arrays import SPACE, StoredArray
from pdeop.data.formats.dataset import ExternalDataset, check_coordinates, grid_coordinates
from pdeop.data.formats.matlab import choose_keys, name_axes, output_times
from pdeop.errors import DataFileError, first_line
from pdeop.io import refused_global


class TensorView:
    """A torch tensor sliced like a NumPy array, as float32 (neuraloperator stores Darcy's coefficient as bool);
    ``dtype`` says whether it was complex (which ``ExternalDataset`` refuses)."""

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor
        self.shape = tuple(tensor.shape)
        self.dtype = np.dtype(np.complex64 if tensor.is_complex() else np.float32)

    def __getitem__(self, index: tuple) -> np.ndarray:
        return self.tensor[index].to(torch.float32).numpy()


def file_start(path: Path, size: int = 8) -> bytes:
    """The first ``size`` bytes of ``path``, to tell a file's kind by its magic bytes before a loader guesses."""
    with open(path, "rb") as file:
        return file.read(size)


def load_pt(path: Path) -> dict:
    start = file_start(path)
    if not start.startswith((b"PK", b"\x80")):
        raise DataFileError(f"'{path}' is not a .pt file of tensors: it starts with {start!r}, neither a zip archive "
                            f"(PK) nor a legacy pickle")
    try:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:  # a legacy (pickle, not zip) file cannot be mapped: read it whole
            if "mmap can only be used" not in str(exc):
                raise
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for foreign or unsafe files
        name = refused_global(exc)
        if name is not None:
            raise DataFileError(f"'{path}' holds Python objects, not only tensors (it names the global '{name}'); "
                                f"pdeop loads tensors only and refuses it") from exc
        if isinstance(exc, pickle.UnpicklingError):
            raise DataFileError(f"'{path}' is a pickle that tensors-only loading refuses (it holds Python objects, "
                                f"or is damaged); pdeop does not unpickle anything else") from exc
        raise DataFileError(f"'{path}' is not a readable .pt dictionary of tensors: {first_line(exc)}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise DataFileError(f"'{path}': expected a dictionary of tensors (neuraloperator's layout), "
                            f"found {type(data).__name__}")
    odd = [f"{k!r} ({v.layout}, {v.device})" for k, v in data.items()
           if not isinstance(k, str) or v.layout != torch.strided or v.device.type != "cpu"]
    if odd:
        raise DataFileError(f"'{path}': expected a dictionary of dense tensors named by strings, found {odd[0]}")
    return {k: TensorView(v) for k, v in data.items()}


class NpzMembers:
    """The members of an .npz archive by name, each checked against what the archive holds before it is read: a
    header may claim more than the member holds (numpy would allocate it all first), or Python objects."""

    def __init__(self, path: Path, archive: np.lib.npyio.NpzFile):
        self.path, self.archive = path, archive

    def keys(self) -> list[str]:
        return list(self.archive.files)

    def close(self) -> None:
        self.archive.close()

    def __getitem__(self, key: str) -> np.ndarray:
        self.check(key)
        return self.archive[key]

    def check(self, key: str) -> None:
        zipped = self.archive.zip
        name = f"{key}.npy" if f"{key}.npy" in zipped.namelist() else key
        with zipped.open(name) as member:
            try:
                version = np.lib.format.read_magic(member)
            except ValueError:
                raise DataFileError(f"'{self.path}' member '{name}' is not a NumPy array (no .npy header)") from None
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(member)
            start = member.tell()
        if dtype.hasobject:
            raise DataFileError(f"'{self.path}' member '{name}' holds Python objects ({dtype}), not only numbers; "
                                f"pdeop does not unpickle anything and refuses it")
        claimed, held = math.prod(shape) * dtype.itemsize, zipped.getinfo(name).file_size - start
        if claimed > held:
            raise DataFileError(f"'{self.path}' member '{name}': its header claims {list(shape)} {dtype} "
                                f"({claimed} bytes) but the member holds {held} (truncated or corrupt?)")


def load_npz(path: Path) -> NpzMembers:
    start = file_start(path)
    if start.startswith(b"\x93NUMPY"):
        raise DataFileError(f"'{path}': expected an .npz archive of named arrays, found a single array (.npy)")
    if not start.startswith(b"PK"):
        raise DataFileError(f"'{path}' is not a NumPy .npz archive: it starts with {start!r}, not a zip archive's PK")
    try:
        return NpzMembers(path, np.load(path, allow_pickle=False))
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise DataFileError(f"'{path}' is not a readable NumPy .npz archive: {first_line(exc)}") from exc


def read_named_arrays(path: Path, kind: str, inputs: str | None = None, outputs: str | None = None,
                      times: str | None = "t", axes: dict | None = None, periodic: bool = False) -> ExternalDataset:
    """Open a ``.pt`` (``kind="pt"``) or ``.npz`` (``kind="npz"``) file of named arrays."""
    options = (inputs, outputs, times, axes, periodic)
    if kind == "pt":
        return named_arrays(path, kind, load_pt(path), *options)
    members = load_npz(path)
    try:
        return named_arrays(path, kind, members, *options)
    finally:
        members.close()  # the members used were read whole, the archive is no longer needed


def named_arrays(path: Path, kind: str, members: dict | NpzMembers, inputs: str | None, outputs: str | None,
                 times: str | None, axes: dict | None, periodic: bool) -> ExternalDataset:
    """The dataset of ``members``, the arrays of a ``.pt`` or ``.npz`` file, as ``read_named_arrays`` opens it."""
    keys = list(members.keys())
    inputs, outputs = choose_keys(path, keys, inputs, outputs)
    arrays = {k: members[k] for k in (inputs, outputs)}  # an npz member is read here, once
    named = name_axes(path, (inputs, outputs), {k: v.shape for k, v in arrays.items()}, axes)
    space = tuple(a for a in named["inputs"] if a in SPACE)
    sizes = tuple(arrays[inputs].shape[named["inputs"].index(a)] for a in space)
    coords = {}
    for axis, n in zip(space, sizes):
        stored = None
        if axis in keys and axis not in arrays:  # a member named like the axis: its coordinates
            stored = np.asarray(members[axis][()], dtype=np.float64).ravel()
        if stored is not None and len(stored) == n:
            check_coordinates(path, axis, stored)
            coords[axis] = stored
        else:
            coords[axis] = grid_coordinates(n, periodic)
    out = StoredArray(arrays[outputs], named["outputs"], outputs, space=space, space_sizes=sizes)
    recorded = output_times(path, out, times, members[times][()] if times in keys and times not in arrays else None)
    return ExternalDataset(
        path=path, format=kind, coords=coords, periodic=periodic, times=recorded,
        inputs=[StoredArray(arrays[inputs], named["inputs"], inputs, space=space, space_sizes=sizes)],
        outputs=[out], input_names=[inputs], output_names=[outputs], boundary_nodes=not periodic,
    )
