"""Hostile and damaged dataset files in the community formats: each is written in its format's real layout
(``tests/format_files.py``), then damaged as a stopped writer, a careless converter or a clone without Git LFS
leaves it. Every one is refused in one line naming the file and what was expected; none is read as made-up
numbers (the zeros HDF5 serves for data never written, NaN lead times, a vector field's extra channels).
"""

from __future__ import annotations

import logging
import os
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
import scipy.sparse
from conftest import run_command
from format_files import pattern, write_mat_v5, write_mat_v73, write_pdebench_1d, write_pdebench_groups, write_the_well

from pdeop.data import FileDataModule
from pdeop.data.formats import open_dataset
from pdeop.data.formats.arrays import StoredArray
from pdeop.data.tasks import FinalState
from pdeop.errors import DataFileError

from .conftest import pdeop_error_line

LFS_POINTER = ("version https://git-lfs.github.com/spec/v1\n"
               "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 1244212224\n")


def rewritten(path: Path, key: str, write: Callable[[h5py.File, dict], None]) -> None:
    """Replace dataset ``key`` of the HDF5 file ``path`` by what ``write(file, attrs)`` creates (``attrs``: those of
    the dataset replaced)."""
    with h5py.File(path, "r+") as f:
        attrs = dict(f[key].attrs)
        del f[key]
        write(f, attrs)


def pdebench(path: Path, n: int = 4) -> Path:
    """PDEBench's 1D single file: ``tensor`` [n, 3 times, 8 cells], ``x-coordinate``, ``t-coordinate``."""
    write_pdebench_1d(path, n, 3, 8)
    return path


def pdebench_tensor(path: Path, n: int = 4, **create) -> None:
    """The 1D PDEBench file with its ``tensor`` made again by ``create_dataset(**create)``."""
    rewritten(pdebench(path, n), "tensor", lambda f, _: f.create_dataset("tensor", shape=(n, 3, 8), dtype="f4",
                                                                         **create))


def stopped_writer(path: Path) -> None:
    """A chunked ``tensor`` of 40 samples whose writer stopped after 10."""
    def write(f: h5py.File, _) -> None:
        f.create_dataset("tensor", shape=(40, 3, 8), dtype="f4", chunks=(1, 3, 8))[:10] = 1.0
    rewritten(pdebench(path, 40), "tensor", write)


def external_tensor(path: Path, raw_bytes: int | None) -> None:
    """``tensor`` stored in an external raw file beside ``path`` holding ``raw_bytes`` (None: no such file)."""
    raw = path.with_suffix(".bin")
    if raw_bytes is not None:
        raw.write_bytes(np.ones(4 * 3 * 8, "f4").tobytes()[:raw_bytes])
    pdebench_tensor(path, external=[(str(raw), 0, h5py.h5f.UNLIMITED)])


def edit(path: Path, change: Callable[[h5py.File], None]) -> None:
    with h5py.File(path, "r+") as f:
        change(f)


def set_values(key: str, values) -> Callable[[h5py.File], None]:
    def change(f: h5py.File) -> None:
        f[key][...] = values
    return change


def pdebench_with(path: Path, change: Callable[[h5py.File], None]) -> None:
    edit(pdebench(path), change)


def groups_with(path: Path, change: Callable[[h5py.File], None]) -> None:
    """PDEBench's per-sample layout (groups 0000-0002, ``data`` [3 times, 8, 6, 1], ``grid/{x,y,t}``), changed."""
    write_pdebench_groups(path, 3, 3, (8, 6), 1)
    edit(path, change)


def well_with(path: Path, change: Callable[[h5py.File], None]) -> None:
    """The Well's layout (4 trajectories, 5 times, an 8x6 grid; pressure and a 2D velocity), changed."""
    write_the_well(path, 4, 5, (8, 6))
    edit(path, change)


def well_velocity_of_3_components(f: h5py.File) -> None:
    """A velocity of 3 components [N, T, X, Y, 3] on the 2D grid."""
    velocity, attrs = f["t1_fields/velocity"][()], dict(f["t1_fields/velocity"].attrs)
    del f["t1_fields/velocity"]
    f.create_dataset("t1_fields/velocity", data=np.concatenate([velocity, velocity[..., :1]], -1)).attrs.update(attrs)


def unwritten_group(f: h5py.File) -> None:
    """Group 0002's ``data`` declared (chunked) but never written."""
    del f["0002/data"]
    f.create_dataset("0002/data", shape=(3, 8, 6, 1), dtype="f4", chunks=(1, 8, 6, 1))


def well_without_trajectory_axis(n_trajectories: int) -> Callable[[h5py.File], None]:
    """Only ``pressure``, stored once for all trajectories (not sample-varying), ``n_trajectories`` claimed."""
    def change(f: h5py.File) -> None:
        pressure, attrs = f["t0_fields/pressure"][0], dict(f["t0_fields/pressure"].attrs)
        del f["t0_fields/pressure"]
        f["t0_fields"].create_dataset("pressure", data=pressure).attrs.update({**attrs, "sample_varying": False})
        f["t1_fields"].attrs["field_names"] = np.array([], dtype=h5py.string_dtype())
        f.attrs["n_trajectories"] = n_trajectories
    return change


def empty_grid(f: h5py.File) -> None:
    """``tensor`` [4, 3, 0] on an ``x-coordinate`` of no cells."""
    for key, shape in (("tensor", (4, 3, 0)), ("x-coordinate", (0,))):
        del f[key]
        f.create_dataset(key, data=np.ones(shape, "f4"))


def ns_mat(path: Path, t: np.ndarray) -> None:
    """FNO's Navier-Stokes .mat (``a`` [4, 8, 6], ``u`` [4, 8, 6, 3] time last) recorded at ``t``."""
    a = pattern(4, 1, None, (8, 6))[:, 0]
    write_mat_v5(path, {"a": a, "u": np.stack([a + 1, a + 2, a + 3], -1), "t": t[None]})


def unwritten_v73(path: Path) -> None:
    """A v7.3 .mat whose ``coeff`` and ``sol`` (MATLAB [2, 1e11]) were declared but never written."""
    write_mat_v73(path, {"coeff": np.ones((2, 8)), "sol": np.ones((2, 8))})
    for key in ("coeff", "sol"):
        rewritten(path, key, lambda f, attrs, key=key: f.create_dataset(
            key, shape=(10**11, 2), dtype="f8", chunks=(10**6, 1)).attrs.update(attrs))


def huge_npz_claim(path: Path) -> None:
    """An .npz whose ``x.npy`` header claims [1e9, 16] float32 (64 GB) over 64 bytes of data."""
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("x.npy", "w") as member:
            np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False,
                                                          "shape": (10**9, 16)})
            member.write(bytes(64))
        with archive.open("y.npy", "w") as member:
            np.lib.format.write_array(member, np.ones((2, 16), "f4"))


HOSTILE = {
    # data never written: HDF5 serves the fill value (zeros) without a word
    "PDEBench tensor whose chunked writer stopped after 10 of 40 samples": (
        "adv.hdf5", stopped_writer, "key 'tensor': 30 of 40 chunks never written"),
    "PDEBench tensor declared but never written (contiguous, no storage)": (
        "adv.hdf5", pdebench_tensor, "key 'tensor': its [4, 3, 8] values were never written"),
    "PDEBench tensor in an external raw file shorter than the data": (
        "adv.hdf5", lambda p: external_tensor(p, 100), "holds 100 bytes, short of the 384"),
    "PDEBench tensor in an external raw file that is missing": (
        "adv.hdf5", lambda p: external_tensor(p, None), "adv.bin', which does not exist"),
    "PDEBench per-sample file whose group 0002 data were never written": (
        "react.h5", lambda p: groups_with(p, unwritten_group), "key '/0002/data': 3 of 3 chunks never written"),
    "MATLAB v7.3 file whose [2, 1e11] arrays were never written": (
        "darcy.mat", unwritten_v73, "key 'coeff': 200000 of 200000 chunks never written"),
    # recorded times and coordinates
    "PDEBench t-coordinate holding NaN": (
        "adv.hdf5", lambda p: pdebench_with(p, set_values("t-coordinate", [0, np.nan, 0.2, 0.3])),
        "key 't-coordinate': recorded time nan at index 1; expected finite times"),
    "PDEBench t-coordinate of zeros": (
        "adv.hdf5", lambda p: pdebench_with(p, set_values("t-coordinate", 0)),
        "key 't-coordinate': recorded times must increase strictly"),
    "PDEBench t-coordinate decreasing": (
        "adv.hdf5", lambda p: pdebench_with(p, set_values("t-coordinate", [0.3, 0.2, 0.1, 0])),
        "key 't-coordinate': recorded times must increase strictly, but index 0 holds 0.3 and index 1 0.2"),
    "PDEBench x-coordinate holding Inf": (
        "adv.hdf5", lambda p: pdebench_with(p, set_values("x-coordinate", np.r_[np.arange(7.0), np.inf])),
        "key 'x-coordinate': coordinate inf at index 7; expected finite coordinates"),
    "The Well time holding NaN": (
        "shear.hdf5", lambda p: well_with(p, set_values("dimensions/time", [1, 2, np.nan, 4, 5])),
        "key 'dimensions/time': recorded time nan at index 2"),
    "The Well y coordinates holding NaN": (
        "shear.hdf5", lambda p: well_with(p, set_values("dimensions/y", [np.nan, 1, 2, 3, 4, 5])),
        "key 'dimensions/y': coordinate nan at index 0"),
    "FNO Navier-Stokes .mat whose t decreases": (
        "ns.mat", lambda p: ns_mat(p, np.array([3.0, 2.0, 1.0])), "key 't': recorded times must increase"),
    "FNO Navier-Stokes .mat whose t starts before the input's time 0": (
        "ns.mat", lambda p: ns_mat(p, np.array([-1.0, 1.0, 2.0])), "key 't': recorded times from -1 to 2"),
    ".npz whose x coordinates hold NaN": (
        "burgers.npz", lambda p: np.savez(p, a=np.ones((4, 8)), u=np.ones((4, 8)), x=np.r_[np.nan, np.arange(7.0)]),
        "key 'x': coordinate nan at index 0"),
    # PDEBench's per-sample groups: one grid for all
    "PDEBench per-sample file whose group 0001 has another grid/x": (
        "react.h5", lambda p: groups_with(p, set_values("0001/grid/x", np.linspace(0, 1, 8))),
        "key '0001/grid/x': differs from that of group '0000'"),
    "PDEBench per-sample file whose group 0001 has other times": (
        "react.h5", lambda p: groups_with(p, set_values("0001/grid/t", [0, 1, 9])),
        "key '0001/grid/t': differs from that of group '0000'"),
    "PDEBench per-sample file whose group 0002 lacks grid/y": (
        "react.h5", lambda p: groups_with(p, lambda f: f.__delitem__("0002/grid/y")),
        "key '0002/grid/y': missing or unreadable, where group '0000' has it"),
    # The Well: tensor components and trajectory counts
    "The Well velocity of 3 components on a 2D grid": (
        "shear.hdf5", lambda p: well_with(p, well_velocity_of_3_components),
        "key '/t1_fields/velocity': stored [4, 5, 8, 6, 3], its tensor components [3]"),
    "The Well field whose time_varying flag is the text 'False'": (
        "shear.hdf5", lambda p: well_with(p, lambda f: f["t0_fields/pressure"].attrs.__setitem__("time_varying",
                                                                                                 "False")),
        "key '/t0_fields/pressure': attribute 'time_varying' is 'False'; expected true or false"),
    "The Well file claiming n_trajectories=-3": (
        "shear.hdf5", lambda p: well_with(p, well_without_trajectory_axis(-3)),
        "attribute n_trajectories is -3; expected the number of trajectories"),
    # fine files that hold nothing to learn
    "PDEBench tensor of one recorded state": (
        "adv.hdf5", lambda p: rewritten(pdebench(p), "tensor", lambda f, _: f.create_dataset(
            "tensor", data=np.ones((4, 1, 8), "f4"))), "trajectories of one recorded state"),
    "PDEBench tensor on a grid of 0 cells": (
        "adv.hdf5", lambda p: pdebench_with(p, empty_grid),
        "key 'tensor': stored [4, 3, 0] as (sample, time, x), its x axis of size 0"),
    # the size a file claims
    ".npz whose header claims [1e9, 16] float32 over 64 bytes": (
        "big.npz", huge_npz_claim, "member 'x.npy': its header claims [1000000000, 16] float32"),
    # text and other things that are not the data
    ".mat of 30 bytes of text": (
        "darcy.mat", lambda p: p.write_text("coeff = [1 2 3]\nsol = [4 5 6]\n"), "30 bytes, shorter than"),
    ".npz that is a text file": (
        "x.npz", lambda p: p.write_text("x,y\n1,2\n"), "is not a NumPy .npz archive: it starts with b'x,y"),
    ".npz holding an object array": (
        "x.npz", lambda p: np.savez(p, x=np.array([None, 1], dtype=object), y=np.ones((2, 3))),
        "member 'x.npy' holds Python objects"),
    ".pt that is an HTML page": (
        "darcy.pt", lambda p: p.write_text("<!DOCTYPE html><html>Sign in</html>"), "is not a .pt file of tensors"),
    **{f"Git LFS pointer saved as {suffix}": (f"data{suffix}", lambda p: p.write_text(LFS_POINTER),
                                              "is a Git LFS pointer, not the data: run git lfs pull")
       for suffix in (".mat", ".npz", ".h5", ".hdf5", ".pt")},
    # values the readers cannot serve
    "v5 .mat holding a sparse matrix": (
        "darcy.mat", lambda p: write_mat_v5(p, {"coeff": scipy.sparse.random(3, 9, 0.5, random_state=0),
                                                "sol": np.ones((3, 9))}),
        "key 'coeff': a sparse matrix; expected a dense array"),
    "v5 .mat holding 1e300 (beyond float32)": (
        "darcy.mat", lambda p: write_mat_v5(p, {"coeff": np.full((3, 9), 1e300), "sol": np.ones((3, 9))}),
        "key 'coeff': a value in sample 0 overflows float32"),
}


@pytest.mark.fault("a {case}", "DataFileError, one line naming the file and what was expected; no zeros, NaN or "
                   "channels made up, no numpy advice to unpickle, no warning")
@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_data_file_is_refused_in_one_line(tmp_path, case, observed):
    name, build, expected = HOSTILE[case]
    path = tmp_path / name
    build(path)
    with warnings.catch_warnings(), pytest.raises(DataFileError) as caught:
        warnings.simplefilter("error")
        dataset = open_dataset(path)
        dataset.read(slice(0, 2))
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and expected in message, message
    assert "allow_pickle" not in message
    observed(message)


@pytest.mark.fault("an external raw file found through HDF5_EXTFILE_PREFIX=${{ORIGIN}}, then cut short",
                   "read while whole; once short, exit 2 and one line naming the raw file")
def test_external_raw_files_are_looked_for_where_hdf5_looks(tmp_path, observed):
    path = tmp_path / "adv.hdf5"
    values = pattern(4, 1, 3, (8,))[:, 0].astype("f4")
    (tmp_path / "raw.bin").write_bytes(b"head" + values.tobytes())
    pdebench_tensor(path, external=[("raw.bin", 4, h5py.h5f.UNLIMITED)])  # relative: beside the file by the prefix
    command = [sys.executable, "-c", "import sys; from pdeop.data.formats.__main__ import main; main(); "
               "from pdeop.data.formats import open_dataset; "
               "print(open_dataset(sys.argv[1]).read(slice(0, 4)).outputs[:, 0, -1, -1].tolist())", str(path)]
    env = {**os.environ, "HDF5_EXTFILE_PREFIX": "${ORIGIN}"}  # read by HDF5 at its start; run from elsewhere
    whole = run_command(command, 120, env=env)
    assert whole.returncode == 0 and str(values[:, -1, -1].tolist()) in whole.stdout, whole.stderr
    (tmp_path / "raw.bin").write_bytes(b"head" + values.tobytes()[:-4])
    short = run_command(command, 120, env=env)
    line = pdeop_error_line(short.stderr)
    assert short.returncode == 2 and f"file '{tmp_path}/raw.bin' holds 384 bytes, short of the 388" in line, line
    observed(f"exit 2: {line}")


@pytest.mark.fault("a member named by bytes that are not UTF-8 in a {name} file", "the file is read as without it")
@pytest.mark.parametrize("name", ["adv.hdf5", "darcy.mat"])
def test_a_member_name_that_is_not_utf8_does_not_hide_the_data(tmp_path, name, observed):
    path = tmp_path / name
    if name.endswith(".mat"):
        coeff = pattern(4, 1, None, (8, 6))[:, 0]
        write_mat_v73(path, {"coeff": coeff, "sol": -coeff})
        expected = coeff[:, None]
    else:
        expected = write_pdebench_1d(path, 4, 3, 8)[:, None, 0]
    with h5py.File(path, "r+") as f:
        f.create_dataset(b"notes\xff", data=np.ones(3))
    np.testing.assert_array_equal(open_dataset(path).read(slice(0, 4)).inputs, expected)
    observed("read")


@pytest.mark.fault("a Well file claiming n_trajectories=1e9 over fields stored once for all, two samples read "
                   "within 6 GB of address space", "two samples read; no array of a billion indices")
def test_a_claimed_billion_trajectories_are_not_counted_out_in_memory(tmp_path, observed):
    path = tmp_path / "shear.hdf5"
    well_with(path, well_without_trajectory_axis(10**9))
    script = textwrap.dedent(f"""
        import resource
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30 if hard < 0 else min(6 * 2**30, hard), hard))
        from pdeop.data.formats import open_dataset
        dataset = open_dataset({str(path)!r})
        print(dataset.n_samples, dataset.read(slice(0, 2)).outputs.shape)
    """)
    result = run_command([sys.executable, "-c", script], 120)
    assert result.returncode == 0 and "1000000000 (2, 1, 4, 8, 6)" in result.stdout, result.stderr[-3000:]
    observed(result.stdout.strip())


@pytest.mark.fault("data=from_file whose {split} split would not fit in the machine's memory",
                   "DataFileError before reading, naming the file, the size and data.n_{split}; a split larger than "
                   "the memory available now (page cache and mapped files may make room) is read with a warning")
@pytest.mark.parametrize("split", ["train", "val"])
def test_a_split_larger_than_memory_is_refused_before_it_is_read(tmp_path, monkeypatch, caplog, split, observed):
    path = pdebench(tmp_path / "adv.hdf5", 40)
    n_train, n_val = {"train": (30, 2), "val": (10, 20)}[split]
    per_sample = 4 * 8 * 2  # float32 on 8 cells: the input and the final state (all that FinalState reads)
    short = per_sample * max(n_train, n_val) - 1  # a byte short of the larger split; the other fits
    monkeypatch.setattr("pdeop.data.formats.dataset.memory_bytes", lambda: (short, short))
    module = FileDataModule(str(path), n_train=n_train, n_val=n_val, n_test=2, task=FinalState())
    with pytest.raises(DataFileError) as caught:
        module.setup("fit")
    message = str(caught.value)
    assert str(path) in message and f"split '{split}'" in message and f"set a smaller data.n_{split}" in message
    assert ("data.in_memory=false" in message) == (split == "train") and "more than this machine's" in message
    monkeypatch.setattr("pdeop.data.formats.dataset.memory_bytes", lambda: (short, 2**40))
    with caplog.at_level(logging.WARNING, logger="pdeop.data.formats.dataset"):
        FileDataModule(str(path), n_train=n_train, n_val=n_val, n_test=2, task=FinalState()).setup("fit")
    assert f"split '{split}'" in caplog.text and "more than the" in caplog.text and "available now" in caplog.text
    observed(message)


@pytest.mark.fault("MemoryError while a file is {stage}", "DataFileError naming the file, one line")
@pytest.mark.parametrize("stage", ["opened", "read"])
def test_running_out_of_memory_on_a_file_is_one_line(tmp_path, monkeypatch, stage, observed):
    path = pdebench(tmp_path / "adv.hdf5")

    def exhausted(*args, **kwargs):
        raise MemoryError("Unable to allocate 745. GiB for an array with shape (100000000000,) and data type float64")

    if stage == "opened":
        monkeypatch.setattr("pdeop.data.formats.read_pdebench", exhausted)
    else:
        monkeypatch.setattr(StoredArray, "read", exhausted)
    with pytest.raises(DataFileError) as caught:
        open_dataset(path).read(slice(0, 2))
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "not enough memory" in message
    observed(message)


def regridded(f: h5py.File, group: str, key: str, values: np.ndarray) -> None:
    del f[f"{group}/grid/{key}"]
    f.create_dataset(f"{group}/grid/{key}", data=values)


@pytest.mark.fault("PDEBench per-sample groups whose grids are {case}", "{outcome}")
@pytest.mark.parametrize(("case", "outcome"), [
    ("integers in group 0000, other numbers in group 0002 (HDF5 would round them to the first's)", "refused"),
    ("float64 in group 0001, the same values as group 0000's float32", "read"),
    ("the same, beside a string and a subgroup of metadata in every grid", "read"),
])
def test_grids_are_compared_by_value_and_only_where_they_are_read(tmp_path, case, outcome, observed):
    path = tmp_path / "react.h5"

    def change(f: h5py.File) -> None:
        if case.startswith("integers"):
            regridded(f, "0000", "x", np.arange(8))
            regridded(f, "0001", "x", np.arange(8))
            regridded(f, "0002", "x", np.arange(8) + 0.4)
        elif case.startswith("float64"):
            regridded(f, "0001", "x", f["0000/grid/x"][()].astype(np.float64))
        else:
            for group in ("0000", "0001", "0002"):
                f[f"{group}/grid/name"] = "diffusion-reaction"
                f.create_group(f"{group}/grid/meta")

    groups_with(path, change)
    if outcome == "refused":
        with pytest.raises(DataFileError, match="key '/?0002/grid/x': differs from that of group '0000'") as caught:
            open_dataset(path)
        observed(str(caught.value))
    else:
        observed(f"{open_dataset(path).n_samples} samples read")
