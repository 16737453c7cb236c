"""Community formats: each reader on files written in that format's exact layout, values checked in place."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import scipy.io
import torch
from format_files import (
    pattern,
    write_mat_v5,
    write_mat_v73,
    write_neuralop_burgers_pt,
    write_neuralop_pt,
    write_pdebench_1d,
    write_pdebench_cfd,
    write_pdebench_darcy,
    write_pdebench_groups,
    write_the_well,
)

from pdeop.data.formats import open_dataset, split_paths
from pdeop.data.formats.__main__ import main as describe_main
from pdeop.data.formats.arrays import GroupStack
from pdeop.errors import DataFileError

N, T, X, Y = 6, 5, 9, 5  # samples, recorded times, nodes along x and y (not square: x and y cannot be swapped)


def ns_arrays():
    """FNO's Navier-Stokes variables in MATLAB's order: a [N, X, Y], u [N, X, Y, T] (time last), t [1, T]."""
    a = pattern(N, 1, None, (X, Y))[:, 0]
    u = pattern(N, 1, T, (X, Y))[:, 0] + 0.5  # [N, T, X, Y]
    return a, u, {"a": a, "u": np.moveaxis(u, 1, -1), "t": np.arange(1.0, T + 1)[None]}


def test_mat_v73_is_read_in_matlab_order_from_column_major_storage(tmp_path):
    a, u, arrays = ns_arrays()
    path = write_mat_v73(tmp_path / "ns_V1e-3_N5000_T50.mat", arrays)
    with open(path, "rb") as f:
        assert f.read(10) == b"MATLAB 7.3"
    with h5py.File(path, "r") as f:  # what h5py sees: every axis reversed
        assert f["u"].shape == (T, Y, X, N) and f["a"].shape == (Y, X, N) and f["t"].shape == (T, 1)
    dataset = open_dataset(path)
    assert dataset.format == "mat v7.3" and dataset.n_samples == N and dataset.grid_shape == (X, Y)
    fields = dataset.read(slice(1, 4), subsample=2)
    np.testing.assert_array_equal(fields.inputs[:, 0], a[1:4, ::2, ::2])
    np.testing.assert_array_equal(fields.outputs[:, 0], u[1:4, :, ::2, ::2])
    np.testing.assert_array_equal(fields.times, np.arange(1.0, T + 1))
    np.testing.assert_array_equal(fields.coords["x"], np.linspace(0, 1, X)[::2])


def test_mat_v5_darcy_with_fno_subsampling(tmp_path):
    coeff = pattern(N, 1, None, (X, Y))[:, 0]
    path = write_mat_v5(tmp_path / "piececonst_r421_N1024_smooth1.mat",
                        {"coeff": coeff, "sol": -coeff, "Kcoeff": coeff})
    assert scipy.io.matlab.matfile_version(path)[0] == 1  # v5, as FNO's Darcy and Burgers files
    dataset = open_dataset(path)
    assert (dataset.input_names, dataset.output_names, dataset.times) == (["coeff"], ["sol"], None)
    fields = dataset.read(slice(0, N), subsample=4)  # FNO: [:n, ::r, ::r]
    np.testing.assert_array_equal(fields.inputs[:, 0], coeff[:, ::4, ::4])
    np.testing.assert_array_equal(fields.outputs[:, 0], -coeff[:, ::4, ::4])


def test_mat_v5_burgers_1d_periodic(tmp_path):
    a = pattern(N, 1, None, (16,))[:, 0]
    path = write_mat_v5(tmp_path / "burgers_data_R10.mat", {"a": a, "u": a + 0.25, "visc": np.array([[0.001]])})
    dataset = open_dataset(path, periodic=True)
    fields = dataset.read(slice(N - 2, N), subsample=8)  # FNO's test set: the last rows
    np.testing.assert_array_equal(fields.inputs[:, 0], a[-2:, ::8])
    np.testing.assert_array_equal(fields.outputs[:, 0], a[-2:, ::8] + 0.25)
    np.testing.assert_array_equal(fields.coords["x"], [0.0, 0.5])  # periodic nodes i / n


def test_pdebench_single_file_1d_trajectories(tmp_path):
    data = write_pdebench_1d(tmp_path / "1D_Advection_Sols_beta0.4.hdf5", N, T, 16)
    dataset = open_dataset(tmp_path / "1D_Advection_Sols_beta0.4.hdf5")
    assert dataset.format == "pdebench" and dataset.attrs["beta"] == pytest.approx(0.4)
    fields = dataset.read(slice(2, 5), subsample=2)
    np.testing.assert_array_equal(fields.inputs[:, 0], data[2:5, 0, ::2])  # first state -> input
    np.testing.assert_array_equal(fields.outputs[:, 0], data[2:5, 1:, ::2])  # later states -> trajectory
    np.testing.assert_allclose(fields.times, np.arange(1, T) * 0.01, rtol=1e-6)
    np.testing.assert_allclose(fields.coords["x"], ((np.arange(16) + 0.5) / 16)[::2], rtol=1e-6)
    thinned = dataset.read(slice(2, 5), time_subsample=2)  # PDEBench's reduced_resolution_t
    np.testing.assert_array_equal(thinned.outputs[:, 0], data[2:5, 2::2])
    np.testing.assert_allclose(thinned.times, [0.02, 0.04], rtol=1e-6)


def test_pdebench_darcy_coefficient_to_solution(tmp_path):
    nu, u = write_pdebench_darcy(tmp_path / "2D_DarcyFlow_beta1.0_Train.hdf5", N, (X - 1, Y - 1))
    dataset = open_dataset(tmp_path / "2D_DarcyFlow_beta1.0_Train.hdf5")
    fields = dataset.read(slice(0, N))
    assert dataset.times is None and (dataset.input_names, dataset.output_names) == (["nu"], ["u"])
    np.testing.assert_array_equal(fields.inputs[:, 0], nu)
    np.testing.assert_array_equal(fields.outputs[:, 0], u)


def test_pdebench_compressible_flow_stacks_fields_in_order(tmp_path):
    data = write_pdebench_cfd(tmp_path / "2D_CFD_Rand_M0.1_Eta1e-8_Zeta1e-8_periodic_Train.hdf5", N, T, (8, 4))
    dataset = open_dataset(tmp_path / "2D_CFD_Rand_M0.1_Eta1e-8_Zeta1e-8_periodic_Train.hdf5")
    assert dataset.output_names == ["density", "pressure", "Vx", "Vy"]
    fields = dataset.read(slice(1, 3), subsample=2)
    np.testing.assert_array_equal(fields.inputs, data[1:3, :, 0, ::2, ::2])
    np.testing.assert_array_equal(fields.outputs, data[1:3, :, 1:, ::2, ::2])


def test_pdebench_per_sample_groups(tmp_path):
    data = write_pdebench_groups(tmp_path / "2D_diff-react_NA_NA.h5", N, T, (8, 4), channels=2)
    dataset = open_dataset(tmp_path / "2D_diff-react_NA_NA.h5")
    assert dataset.n_samples == N and dataset.input_names == ["data_0", "data_1"]
    fields = dataset.read(slice(3, 6), subsample=2)
    np.testing.assert_array_equal(fields.inputs, data[3:6, :, 0, ::2, ::2])
    np.testing.assert_array_equal(fields.outputs, data[3:6, :, 1:, ::2, ::2])
    np.testing.assert_allclose(fields.times, np.linspace(0, 5, T)[1:], rtol=1e-6)
    np.testing.assert_allclose(fields.coords["y"], [-0.75, 0.25], rtol=1e-6)  # cell centres, every 2nd


def test_the_well_fields_components_and_grid(tmp_path):
    data = write_the_well(tmp_path / "shear_flow_Reynolds_1e4.hdf5", N, T, (8, 4))
    dataset = open_dataset(tmp_path / "shear_flow_Reynolds_1e4.hdf5")
    assert dataset.format == "the_well" and dataset.periodic
    assert dataset.output_names == ["pressure", "velocity_x", "velocity_y"]
    assert dataset.attrs["constant_fields"] == ["mask"] and dataset.attrs["dataset_name"] == "toy_shear_flow"
    fields = dataset.read(slice(0, 4), subsample=2)
    np.testing.assert_array_equal(fields.inputs, data[:4, :, 0, ::2, ::2])
    np.testing.assert_array_equal(fields.outputs, data[:4, :, 1:, ::2, ::2])
    np.testing.assert_allclose(fields.times, np.arange(1, T) * 0.25)  # measured from the first state
    np.testing.assert_allclose(fields.coords["y"], [0.125, 0.625])  # cell centres, every 2nd
    velocity = open_dataset(tmp_path / "shear_flow_Reynolds_1e4.hdf5", fields=["velocity"]).read(slice(0, 2))
    np.testing.assert_array_equal(velocity.outputs, data[:2, 1:, 1:])


def test_the_well_broadcasts_fields_constant_along_an_axis(tmp_path):
    path = tmp_path / "well.hdf5"
    data = write_the_well(path, N, T, (8, 4))
    with h5py.File(path, "r+") as f:  # pressure the same for every trajectory and constant along y
        del f["t0_fields/pressure"]
        profile = f["t0_fields"].create_dataset("pressure", data=data[0, 0, :, :, 0].astype(np.float32))
        profile.attrs.update({"sample_varying": False, "time_varying": True, "dim_varying": np.array([True, False])})
    fields = open_dataset(path, fields=["pressure"]).read(slice(1, 3))
    expected = np.broadcast_to(data[0, 0, 1:, :, :1], (2, T - 1, 8, 4))
    np.testing.assert_array_equal(fields.outputs[:, 0], expected)


def test_neuralop_pt_bool_coefficient(tmp_path):
    x, y = write_neuralop_pt(tmp_path / "darcy_train_16.pt", N, (X, Y))
    stored = torch.load(tmp_path / "darcy_train_16.pt", weights_only=True)
    assert stored["x"].dtype == torch.bool and stored["y"].dtype == torch.float32
    fields = open_dataset(tmp_path / "darcy_train_16.pt").read(slice(0, 3), subsample=2)
    np.testing.assert_array_equal(fields.inputs[:, 0], x[:3, ::2, ::2])
    np.testing.assert_array_equal(fields.outputs[:, 0], y[:3, ::2, ::2])


def test_a_legacy_pickle_pt_of_tensors_is_read_whole(tmp_path):
    """Files saved before torch's zip format cannot be memory-mapped; they are read whole, still tensors only."""
    path = tmp_path / "darcy_train_16.pt"
    x, y = write_neuralop_pt(path, N, (X, Y))
    stored = torch.load(path, weights_only=True)
    torch.save(stored, path, _use_new_zipfile_serialization=False)
    assert path.read_bytes()[:2] != b"PK"
    fields = open_dataset(path).read(slice(0, 3))
    np.testing.assert_array_equal(fields.inputs[:, 0], x[:3])
    np.testing.assert_array_equal(fields.outputs[:, 0], y[:3])

def test_npz_named_arrays_with_axes_and_coordinates(tmp_path):
    a = pattern(N, 2, None, (X, Y))
    u = pattern(N, 1, T, (X, Y))[:, 0]  # [N, T, X, Y]
    path = tmp_path / "mine.npz"
    np.savez(path, a=a, u=np.moveaxis(u, 1, -1), x=np.linspace(0, 2, X), t=np.arange(T) * 0.1 + 0.1)
    dataset = open_dataset(path, axes={"inputs": ["sample", "channel", "x", "y"]})
    fields = dataset.read(slice(0, N), subsample=2)
    np.testing.assert_array_equal(fields.inputs, a[:, :, ::2, ::2])
    np.testing.assert_array_equal(fields.outputs[:, 0], u[:, :, ::2, ::2])
    np.testing.assert_allclose(fields.coords["x"], np.linspace(0, 2, X)[::2])  # stored coordinates win
    np.testing.assert_allclose(fields.times, np.arange(T) * 0.1 + 0.1)


class Recording:
    """An array source that records what is sliced from it."""

    def __init__(self, source):
        self.source, self.shape, self.requests = source, source.shape, []

    def __getitem__(self, index):
        self.requests.append(index)
        return self.source[index]


def test_readers_slice_the_storage_instead_of_loading_it(tmp_path):
    _, _, arrays = ns_arrays()
    dataset = open_dataset(write_mat_v73(tmp_path / "ns.mat", arrays))
    recorder = Recording(dataset.outputs[0].source)
    dataset.outputs[0].source = recorder
    dataset.read(slice(2, 4), subsample=2, time_subsample=5)
    assert recorder.requests == [(slice(4, 9, 5), slice(None, None, 2), slice(None, None, 2), slice(2, 4))]
    recorder.requests.clear()
    dataset.read(slice(2, 4), times=slice(1, 3))  # the states a task needs, and no others
    assert recorder.requests == [(slice(1, 3, 1), slice(None, None, 1), slice(None, None, 1), slice(2, 4))]
    write_pdebench_groups(tmp_path / "g.h5", N, T, (8, 4), 1)
    groups = open_dataset(tmp_path / "g.h5")
    stack: GroupStack = groups.outputs[0].source
    read_groups = []
    original = stack.file

    class Spy:
        def __getitem__(self, key):
            read_groups.append(key)
            return original[key]

    stack.file = Spy()
    groups.read(slice(4, 6))
    assert read_groups == ["0004/data", "0005/data"] * 2  # the first state (inputs), then the later ones


# --- bad input: one line naming the file and the key --------------------------------------------

def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_missing_key_lists_the_keys_present(tmp_path):
    path = write_mat_v5(tmp_path / "d.mat", {"coeff": np.zeros((2, 3, 3)), "sol": np.zeros((2, 3, 3))})
    with pytest.raises(DataFileError) as excinfo:
        open_dataset(path, inputs="coef", outputs="sol")
    assert all(s in one_line(excinfo) for s in ("d.mat", "'coef'", "['coeff', 'sol']"))
    with pytest.raises(DataFileError) as excinfo:
        open_dataset(write_mat_v5(tmp_path / "e.mat", {"k": np.zeros((2, 3))}))
    assert "['k']" in one_line(excinfo) and "data.inputs" in str(excinfo.value)


def test_file_not_in_the_selected_format(tmp_path):
    npz = tmp_path / "a.npz"
    np.savez(npz, x=np.zeros((2, 3)), y=np.zeros((2, 3)))
    with pytest.raises(DataFileError) as excinfo:
        open_dataset(npz, format="pdebench")
    assert "a.npz" in one_line(excinfo) and "data.format=pdebench" in str(excinfo.value)
    write_pdebench_1d(tmp_path / "adv.hdf5", 2, 3, 4)
    with pytest.raises(DataFileError) as excinfo:
        open_dataset(tmp_path / "adv.hdf5", format="the_well")
    assert "t0_fields" in one_line(excinfo) and "'tensor'" in str(excinfo.value)
    with pytest.raises(DataFileError) as excinfo:
        open_dataset(tmp_path / "adv.hdf5", format="pt")
    assert "adv.hdf5" in one_line(excinfo)
    garbage = tmp_path / "x.mat"
    garbage.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(DataFileError) as excinfo:
        open_dataset(garbage)
    assert "x.mat" in one_line(excinfo) and "MATLAB" in str(excinfo.value)


def test_inputs_and_outputs_that_disagree(tmp_path):
    path = write_mat_v5(tmp_path / "d.mat", {"coeff": np.zeros((4, 5, 5)), "sol": np.zeros((3, 5, 5))})
    with pytest.raises(DataFileError) as excinfo:
        open_dataset(path)
    assert all(s in one_line(excinfo) for s in ("d.mat", "coeff has 4", "sol has 3"))
    path = write_mat_v5(tmp_path / "g.mat", {"coeff": np.zeros((4, 5, 5)), "sol": np.zeros((4, 9, 9))})
    with pytest.raises(DataFileError) as excinfo:
        open_dataset(path)
    assert "g.mat" in one_line(excinfo) and "'sol'" in str(excinfo.value)


def test_nan_is_reported_with_its_sample(tmp_path):
    data = pattern(N, 1, None, (X, Y))[:, 0]
    data[4, 2, 3] = np.nan
    path = write_mat_v73(tmp_path / "d.mat", {"coeff": data, "sol": np.where(np.isnan(data), 0, data)})
    dataset = open_dataset(path)
    dataset.read(slice(0, 4))  # the bad sample is not read
    with pytest.raises(DataFileError) as excinfo:
        dataset.read(slice(2, 6))
    assert all(s in one_line(excinfo) for s in ("d.mat", "'coeff'", "sample 4"))
    data[4, 2, 3] = np.inf
    write_pdebench_1d(tmp_path / "adv.hdf5", N, T, 16)
    with h5py.File(tmp_path / "adv.hdf5", "r+") as f:
        f["tensor"][5, 3, 7] = np.inf
    with pytest.raises(DataFileError, match=r"'tensor': NaN or Inf in sample 5"):
        open_dataset(tmp_path / "adv.hdf5").read(slice(0, N))


def test_subsampling_factor_must_divide_the_grid(tmp_path):
    path = write_mat_v5(tmp_path / "d.mat", {"coeff": np.zeros((2, 9, 5)), "sol": np.zeros((2, 9, 5))})
    dataset = open_dataset(path)
    dataset.read(slice(0, 2), subsample=4)  # 9 nodes, 8 intervals; 5 nodes, 4 intervals
    with pytest.raises(DataFileError) as excinfo:
        dataset.read(slice(0, 2), subsample=3)
    assert all(s in one_line(excinfo) for s in ("d.mat", "'coeff'", "factor 3"))
    with pytest.raises(DataFileError, match="factor 3 does not divide axis x of 16 cells or periodic nodes"):
        write_pdebench_1d(tmp_path / "adv.hdf5", 2, 3, 16)
        open_dataset(tmp_path / "adv.hdf5").read(slice(0, 2), subsample=3)


def test_unknown_axis_names_and_formats(tmp_path):
    path = write_mat_v5(tmp_path / "d.mat", {"coeff": np.zeros((2, 5, 5)), "sol": np.zeros((2, 5, 5))})
    with pytest.raises(DataFileError, match=r"d.mat' key 'coeff' \(data.axes.inputs\): unknown axis names \['row'\]"):
        open_dataset(path, axes={"inputs": ["sample", "row", "y"]})
    with pytest.raises(DataFileError, match="data.format: 'matlab' is not a known format"):
        open_dataset(path, format="matlab")
    with pytest.raises(DataFileError, match="does not exist"):
        open_dataset(tmp_path / "missing.mat")


def test_a_folder_is_one_dataset_only_if_its_files_agree(tmp_path):
    write_pdebench_1d(tmp_path / "a.hdf5", 3, T, 16)
    write_pdebench_1d(tmp_path / "b.hdf5", 2, T, 8)
    with pytest.raises(DataFileError) as excinfo:
        open_dataset(tmp_path)
    assert all(s in one_line(excinfo) for s in ("b.hdf5", "grid (8,)", "a.hdf5"))
    (tmp_path / "b.hdf5").unlink()
    write_pdebench_1d(tmp_path / "b.hdf5", 2, T, 16)
    dataset = open_dataset(tmp_path)
    assert dataset.n_samples == 5
    fields = dataset.read(np.array([1, 3, 4]))  # across both files, in order
    expected = pattern(3, 1, T, (16,))[:, 0]
    np.testing.assert_array_equal(fields.inputs[:, 0], np.stack([expected[1, 0], expected[0, 0], expected[1, 0]]))
    with pytest.raises(DataFileError, match="holds no data files"):
        (tmp_path / "empty").mkdir()
        open_dataset(tmp_path / "empty")


def test_the_well_with_spherical_axis_names_and_walls(tmp_path):
    data = write_the_well(tmp_path / "planetswe.hdf5", N, T, (8, 4), dims=("theta", "phi"), walls=True)
    dataset = open_dataset(tmp_path / "planetswe.hdf5")
    assert not dataset.periodic and list(dataset.coords) == ["theta", "phi"]
    assert dataset.output_names == ["pressure", "velocity_theta", "velocity_phi"]
    fields = dataset.read(slice(0, 3), subsample=2)  # 8 and 4 cells: r = 2 divides both
    np.testing.assert_array_equal(fields.outputs, data[:3, :, 1:, ::2, ::2])
    assert open_dataset(tmp_path / "planetswe.hdf5", periodic=True).periodic  # data.periodic overrides


def test_pdebench_darcy_cell_centres_subsample_and_test_first(tmp_path):
    nu, u = write_pdebench_darcy(tmp_path / "2D_DarcyFlow_beta1.0_Train.hdf5", N, (16, 8))
    dataset = open_dataset(tmp_path / "2D_DarcyFlow_beta1.0_Train.hdf5")
    assert not dataset.periodic and dataset.test_first  # PDEBench's FNODatasetSingle tests on the first samples
    fields = dataset.read(slice(0, N), subsample=2)  # PDEBench's reduced_resolution: 2 on 128 cells
    np.testing.assert_array_equal(fields.outputs[:, 0], u[:, ::2, ::2])
    trans = tmp_path / "2D_CFD_Rand_M0.1_Eta0.01_Zeta0.01_trans_Train.hdf5"
    write_pdebench_cfd(trans, 2, T, (8, 4))
    assert not open_dataset(trans).periodic
    write_pdebench_groups(tmp_path / "2D_rdb_NA_NA.h5", 2, T, (8, 4), 1)
    assert not open_dataset(tmp_path / "2D_rdb_NA_NA.h5").periodic  # radial dam break: open boundaries


def test_time_subsample_must_divide_the_recorded_states(tmp_path):
    write_pdebench_1d(tmp_path / "adv.hdf5", N, 7, 16)  # 6 states after the first
    dataset = open_dataset(tmp_path / "adv.hdf5")
    np.testing.assert_allclose(dataset.read(slice(0, 1), time_subsample=3).times, [0.03, 0.06], rtol=1e-6)
    for r in (4, 7):
        with pytest.raises(DataFileError) as excinfo:
            dataset.read(slice(0, 1), time_subsample=r)
        assert all(s in one_line(excinfo) for s in ("adv.hdf5", "'tensor'", f"factor {r}", "[1, 2, 3, 6]"))


@pytest.mark.parametrize("cut", [0, 100, 0.3, 0.7])
def test_truncated_files_are_one_line(tmp_path, cut):
    arrays = {"coeff": np.ones((4, 30, 30)), "sol": np.ones((4, 30, 30))}
    for name, write in (("d.mat", lambda p: write_mat_v5(p, arrays)), ("v73.mat", lambda p: write_mat_v73(p, arrays)),
                        ("adv.hdf5", lambda p: write_pdebench_1d(p, 4, 3, 512))):
        path = tmp_path / name
        write(path)
        content = path.read_bytes()
        path.write_bytes(content[: int(cut * len(content)) if isinstance(cut, float) else cut])
        with pytest.raises(DataFileError) as excinfo:
            open_dataset(path).read(slice(0, 4))
        assert name in one_line(excinfo)


def run_tool(monkeypatch, capsys, *args: str) -> str:
    """``python -m pdeop.data.formats ARGS``: its output, or its one-line error."""
    monkeypatch.setattr("sys.argv", ["pdeop.data.formats", *map(str, args)])
    try:
        describe_main()
    except SystemExit as exc:
        assert exc.code == 2
        return capsys.readouterr().err.rstrip("\n")
    return capsys.readouterr().out


def write_well_dataset(base, sizes: dict[str, tuple[int, ...]]) -> None:
    """The Well's dataset folder as downloaded: ``<base>/data/{train,valid,test}/<name>_<i>.hdf5``."""
    for split, counts in sizes.items():
        (base / "data" / split).mkdir(parents=True)
        for i, n in enumerate(counts):
            write_the_well(base / "data" / split / f"shear_flow_Reynolds_{i}.hdf5", n, T, (8, 4))


def test_the_tool_reports_a_well_dataset_folder_per_split_as_training_reads_it(tmp_path, monkeypatch, capsys):
    base = tmp_path / "datasets" / "shear_flow"
    write_well_dataset(base, {"train": (3, 4), "valid": (2,), "test": (1, 1)})
    assert split_paths(base) == {"train": base / "data" / "train", "val": base / "data" / "valid",
                                 "test": base / "data" / "test"}
    out = run_tool(monkeypatch, capsys, base)
    assert "holds no data files" not in out
    for split, folder, files, n in (("train", "train", 2, 7), ("val", "valid", 1, 2), ("test", "test", 2, 2)):
        assert f"split '{split}': {base / 'data' / folder}" in out
        if files > 1:
            assert f"{base / 'data' / folder}: {files} files, {n} samples in all" in out
    assert f"{base / 'data' / 'valid' / 'shear_flow_Reynolds_0.hdf5'} (the_well): 2 samples on a 8x4 grid" in out
    assert open_dataset(base).n_samples == 7  # in Python: the training split
    shutil.rmtree(base / "data" / "test")  # a split not downloaded is named, not carved silently from train
    error = run_tool(monkeypatch, capsys, base)
    assert "lacks" in error and str(base / "data" / "test") in error and "\n" not in error


def test_the_tool_takes_axes_as_training_does(tmp_path, monkeypatch, capsys):
    path = tmp_path / "burgers_lowres.pt"
    x, y = write_neuralop_burgers_pt(path, N, 11, 16)  # (sample, time, x): 11 states of 16 nodes
    error = run_tool(monkeypatch, capsys, path)
    assert "grid {'x': 11} does not match the dataset's grid {'x': 16}" in error and "\n" not in error
    assert "data.axes={outputs: [sample, time, x]}" in error and "--axes '{outputs: [sample, time, x]}'" in error
    out = run_tool(monkeypatch, capsys, path, "--axes", "{outputs: [sample, time, x]}")
    assert "11 recorded times" in out and "'y' stored [6, 11, 16] as (sample, time, x)" in out
    fields = open_dataset(path, axes={"outputs": ["sample", "time", "x"]}).read(slice(0, 2))
    np.testing.assert_array_equal(fields.outputs[:, 0], y[:2])
    np.testing.assert_array_equal(fields.inputs[:, 0], x[:2])
    assert "--axes: cannot parse" in run_tool(monkeypatch, capsys, path, "--axes", "{outputs: [sample, time, x]")
    assert "data.axes names ['output']" in run_tool(monkeypatch, capsys, path, "--axes", "{output: [sample, time, x]}")
    assert "spatial axes ['y'] that the inputs" in run_tool(monkeypatch, capsys, path, "--axes",
                                                            "{outputs: [sample, time, y]}")


def test_subsampling_message_names_the_assumed_node_placement_and_the_other(tmp_path):
    write_neuralop_pt(tmp_path / "darcy_test_32.pt", 2, (32, 32))
    with pytest.raises(DataFileError) as excinfo:
        open_dataset(tmp_path / "darcy_test_32.pt").check_subsample(2)
    message = one_line(excinfo)
    assert "taken to include both boundary nodes" in message and "(n - 1)/r + 1 points" in message
    assert "the 31 intervals, one of [1, 31]" in message
    assert "set data.periodic=true: n/r = 16 points, every r-th node from the first" in message
    open_dataset(tmp_path / "darcy_test_32.pt", periodic=True).check_subsample(2)
    with pytest.raises(DataFileError) as excinfo:
        open_dataset(tmp_path / "darcy_test_32.pt").check_subsample(3)
    assert "data.periodic" not in one_line(excinfo)  # 3 fits neither placement: no hint to a dead end


def pdebench_of_virtual_tensor(path, build_tensor) -> None:
    """A 1D PDEBench file (2 samples, 3 times, 8 cells) whose ``tensor`` ``build_tensor(file)`` makes virtual."""
    with h5py.File(path, "w") as f:
        f["x-coordinate"] = (np.arange(8) + 0.5) / 8
        f["t-coordinate"] = np.arange(4) * 0.1
        build_tensor(f)


def test_virtual_sources_are_looked_for_where_hdf5_looks(tmp_path, monkeypatch):
    """A virtual dataset's source is accepted where HDF5 finds it (here only through HDF5_VDS_PREFIX, and h5py
    reads its values there) and refused in one line naming it where HDF5 does not (it would read zeros)."""
    data = np.arange(2 * 3 * 8, dtype="f4").reshape(2, 3, 8) + 1
    sources = tmp_path / "sources"
    sources.mkdir()
    with h5py.File(sources / "part.h5", "w") as f:
        f["tensor"] = data

    def virtual(f):
        layout = h5py.VirtualLayout(shape=data.shape, dtype="f4")
        layout[:] = h5py.VirtualSource("part.h5", "tensor", shape=data.shape)  # relative: searched for
        f.create_virtual_dataset("tensor", layout, fillvalue=0)

    path = tmp_path / "virtual.h5"
    pdebench_of_virtual_tensor(path, virtual)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataFileError, match=r"virtual.h5' key 'tensor': a virtual dataset whose source file "
                                            r"'part.h5'"):
        open_dataset(path)
    with h5py.File(path) as f:
        assert not f["tensor"][...].any()  # what HDF5 would have served

    monkeypatch.setenv("HDF5_VDS_PREFIX", f"{tmp_path / 'elsewhere'}:{sources}")
    with h5py.File(path) as f:
        np.testing.assert_array_equal(f["tensor"][...], data)  # HDF5 finds it through the second prefix
    open_dataset(path).close()


def test_printf_named_virtual_sources_are_found_block_by_block(tmp_path, monkeypatch):
    """A printf-style source name (``%b``: the block number of an unlimited mapping, not a file's name) names one
    file per block of the dataset's extent: present, they are accepted, as HDF5 reads them."""
    monkeypatch.chdir(tmp_path)
    blocks = [np.full((1, 3, 8), b + 1, dtype="f4") for b in range(2)]
    for b, block in enumerate(blocks):
        with h5py.File(tmp_path / f"part-{b}.h5", "w") as f:
            f["tensor"] = block

    def printf_mapping(f):
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        unlimited = h5py.h5s.UNLIMITED
        vspace = h5py.h5s.create_simple((2, 3, 8), (unlimited, 3, 8))
        vspace.select_hyperslab((0, 0, 0), (unlimited, 1, 1), stride=(1, 1, 1), block=(1, 3, 8))
        dcpl.set_virtual(vspace, b"part-%b.h5", b"tensor", h5py.h5s.create_simple((1, 3, 8)))
        dcpl.set_fill_value(np.zeros((), "f4"))
        h5py.h5d.create(f.id, b"tensor", h5py.h5t.IEEE_F32LE, vspace, dcpl=dcpl).close()

    path = tmp_path / "virtual.h5"
    pdebench_of_virtual_tensor(path, printf_mapping)
    with h5py.File(path) as f:
        np.testing.assert_array_equal(f["tensor"][...], np.concatenate(blocks))
    open_dataset(path).close()
