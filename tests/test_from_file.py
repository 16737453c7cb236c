"""data=from_file: splits, resolutions and checks of the file data module, the xarray view, and training runs."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from conftest import run_entry
from format_files import (
    pattern,
    write_mat_v5,
    write_mat_v73,
    write_neuralop_burgers_pt,
    write_neuralop_pt,
    write_pdebench_1d,
    write_pdebench_groups,
    write_the_well,
)

from pdeop.data import FileDataModule, OperatorDataModule, to_xarray
from pdeop.data.formats import open_dataset
from pdeop.data.tasks import FinalState
from pdeop.errors import ConfigError, DataFileError
from pdeop.problems import Darcy


def file_module(path, **kwargs) -> FileDataModule:
    dm = FileDataModule(str(path), **kwargs)
    dm.setup("fit")
    return dm


def test_splits_take_first_train_then_val_and_the_last_test_samples(tmp_path):
    coeff = pattern(8, 1, None, (9, 5))[:, 0]
    path = write_mat_v5(tmp_path / "burgers.mat", {"a": coeff, "u": coeff + 1})
    dm = file_module(path, n_train=3, n_val=2, n_test=2, subsample=4, test_subsamples=[1, 2])
    np.testing.assert_array_equal(dm.splits["train"].inputs[:, 0], coeff[:3, ::4, ::4])
    np.testing.assert_array_equal(dm.splits["val"].outputs[:, 0], coeff[3:5, ::4, ::4] + 1)
    assert dm.test_resolutions == [3, 5, 9]  # coarsest first, as for generated data
    np.testing.assert_array_equal(dm.test_sets[9].inputs[:, 0], coeff[6:8])  # the last n_test (FNO's Burgers)
    np.testing.assert_array_equal(dm.test_sets[3].inputs[:, 0], coeff[6:8, ::4, ::4])
    rest = file_module(path, n_val=2, n_test=2, subsample=4)  # n_train null: every other sample
    assert len(rest.splits["train"].inputs) == 4


def test_test_path_supplies_the_test_split(tmp_path):
    coeff = pattern(6, 1, None, (9, 5))[:, 0]
    train = write_mat_v5(tmp_path / "piececonst_r421_N1024_smooth1.mat", {"coeff": coeff, "sol": -coeff})
    test = write_mat_v5(tmp_path / "piececonst_r421_N1024_smooth2.mat", {"coeff": coeff + 100, "sol": -coeff})
    dm = file_module(train, test_path=str(test), n_train=5, n_val=1, n_test=2, subsample=2)
    np.testing.assert_array_equal(dm.test_sets[5].inputs[:, 0], coeff[:2, ::2, ::2] + 100)  # first n_test
    assert len(dm.splits["train"].inputs) == 5


@pytest.mark.parametrize("given", ["the same path", "a link to it"])
def test_a_split_file_that_is_the_training_file_is_refused(tmp_path, given):
    coeff = pattern(6, 1, None, (9, 5))[:, 0]
    train = write_mat_v5(tmp_path / "train.mat", {"coeff": coeff, "sol": -coeff})
    test = train
    if given == "a link to it":
        test = tmp_path / "test.mat"
        test.symlink_to(train)
    with pytest.raises(ConfigError, match=rf"data.test_path: '{test}' is the data data.path names \('{train}'\), so "
                                          r"its test samples are its train samples; give data.test_path a file"):
        file_module(train, test_path=str(test), n_train=4, n_val=1, n_test=1)


def test_a_validation_file_shared_with_the_test_split_is_said(tmp_path, caplog):
    import logging

    coeff = pattern(6, 1, None, (9, 5))[:, 0]
    train = write_mat_v5(tmp_path / "train.mat", {"coeff": coeff, "sol": -coeff})
    test = write_mat_v5(tmp_path / "test.mat", {"coeff": coeff + 1, "sol": -coeff})
    with caplog.at_level(logging.WARNING, logger="pdeop.data.from_file"):
        file_module(train, val_path=str(test), test_path=str(test), n_train=4, n_val=1, n_test=1)
    assert (f"data.val_path: '{test}' is the data data.test_path names ('{test}'), so its val samples are its test "
            f"samples: the checkpoint chosen as best is chosen on them") in caplog.text


def test_the_well_dataset_folder_brings_its_splits_and_files_are_numbered_in_order(tmp_path):
    folder = tmp_path / "shear_flow" / "data"
    written = {}
    for split, sizes in (("train", (3, 4)), ("valid", (2,)), ("test", (2, 1))):
        (folder / split).mkdir(parents=True)
        written[split] = []
        for i, n in enumerate(sizes):  # each file's pressure offset by 1e6 i, so that the order of files shows
            data = write_the_well(folder / split / f"shear_flow_Reynolds_{i}.hdf5", n, 3, (8, 4))
            with h5py.File(folder / split / f"shear_flow_Reynolds_{i}.hdf5", "r+") as f:
                f["t0_fields/pressure"][...] += 1e6 * i
            data[:, 0] += 1e6 * i
            written[split].append(data)
    dm = file_module(tmp_path / "shear_flow", task=FinalState(), in_channels=3, out_channels=3)
    train = np.concatenate([w[:, :, -1] for w in written["train"]])
    assert len(dm.splits["train"].outputs) == 7 and len(dm.splits["val"].outputs) == 2
    np.testing.assert_array_equal(dm.splits["train"].outputs[:, 0], train[:, 0])  # file 0's 3, then file 1's 4
    np.testing.assert_array_equal(dm.test_sets[8].outputs[:, 0], np.concatenate([w[:, 0, -1] for w in written["test"]]))
    disk = file_module(tmp_path / "shear_flow", task=FinalState(), in_channels=3, out_channels=3, in_memory=False,
                       batch_size=7)
    x, y = next(iter(disk.train_dataloader()))
    order = list(disk.train_dataloader().sampler)
    np.testing.assert_array_equal(y[:, 0].numpy(), train[order, 0])  # batches across both files


def test_default_counts_and_a_validation_file(tmp_path):
    coeff = pattern(20, 1, None, (5, 5))[:, 0]
    path = write_mat_v5(tmp_path / "d.mat", {"coeff": coeff, "sol": coeff})
    dm = file_module(path)  # a tenth each for validation and test (PDEBench's test_ratio), the rest trains
    assert [len(dm.splits[k].inputs) for k in ("train", "val")] == [16, 2] and len(dm.test_sets[5].inputs) == 2
    val = write_mat_v5(tmp_path / "v.mat", {"coeff": coeff[:3] - 1, "sol": coeff[:3]})
    dm = file_module(path, val_path=str(val))
    np.testing.assert_array_equal(dm.splits["val"].inputs[:, 0], coeff[:3] - 1)  # all of its own file
    assert len(dm.splits["train"].inputs) == 18
    other = write_mat_v5(tmp_path / "o.mat", {"a": coeff, "u": coeff})
    with pytest.raises(Exception, match=r"o.mat' \(data.val_path\) has inputs \['a'\]"):
        file_module(path, val_path=str(other), inputs=None)


def test_counts_and_channels_are_checked_against_the_file(tmp_path):
    path = write_mat_v5(tmp_path / "d.mat", {"coeff": np.ones((6, 5, 5)), "sol": np.ones((6, 5, 5))})
    with pytest.raises(ConfigError, match=r"data.n_train \+ n_val \+ n_test = 7: the file '.*d.mat' has only 6"):
        file_module(path, n_train=4, n_val=1, n_test=2)
    with pytest.raises(ConfigError, match="data.n_val: expected at least 1 sample, got 0"):
        file_module(path, n_val=0, n_test=2)
    with pytest.raises(ConfigError,
                       match=r"data.in_channels: config says 3, the data of '.*d.mat' has 1; set data.in_channels=1"):
        file_module(path, n_val=1, n_test=1, in_channels=3)
    with pytest.raises(ConfigError, match=r"data.spatial_dims: config says 1, the data of '.*d.mat' has 2; set "
                                          r"data.spatial_dims=2"):  # the losses' spatial axes (loss.d) follow it
        file_module(path, n_val=1, n_test=1, spatial_dims=1)
    with pytest.raises(ConfigError, match=r"data.in_channels: config says 2, .*; data.out_channels: config says 3, "
                                          r".* has 1; set data.in_channels=1 data.out_channels=1"):
        file_module(path, n_val=1, n_test=1, in_channels=2, out_channels=3)  # every mismatch at once
    with pytest.raises(ConfigError, match="data.path: data=from_file needs the file"):
        FileDataModule("")


def test_a_community_file_serves_exactly_what_the_generated_file_does(tmp_path):
    """A pdeop dataset exported in FNO's .mat layout trains on the same arrays and normalisers."""
    generated = OperatorDataModule(Darcy(resolution=17), 6, 2, 3, subsample=2, test_subsamples=[1],
                                   data_dir=str(tmp_path), generate_workers=1)
    generated.prepare_data()
    generated.setup("fit")
    train, val = generated.splits["train"], generated.splits["val"]
    fine = generated.test_sets[17]
    train_file = write_mat_v5(tmp_path / "train.mat", {"coeff": np.concatenate([train.inputs, val.inputs])[:, 0],
                                                       "sol": np.concatenate([train.outputs, val.outputs])[:, 0]})
    test_file = write_mat_v73(tmp_path / "test.mat", {"coeff": fine.inputs[:, 0], "sol": fine.outputs[:, 0]})
    external = file_module(train_file, test_path=str(test_file), n_train=6, n_val=2, n_test=3, subsample=1,
                           test_subsamples=[2])
    for split in ("train", "val"):
        np.testing.assert_array_equal(external.splits[split].inputs, generated.splits[split].inputs)
        np.testing.assert_array_equal(external.splits[split].outputs, generated.splits[split].outputs)
    assert external.test_resolutions == generated.test_resolutions == [9, 17]
    for resolution in (9, 17):
        np.testing.assert_array_equal(external.test_sets[resolution].outputs, generated.test_sets[resolution].outputs)
        np.testing.assert_allclose(external.test_sets[resolution].coords["x"],
                                   generated.test_sets[resolution].coords["x"])
    for side in ("input", "output"):
        for stat in ("mean", "std"):
            torch.testing.assert_close(getattr(getattr(external, f"{side}_normaliser"), stat),
                                       getattr(getattr(generated, f"{side}_normaliser"), stat))
    assert external.periodic is generated.periodic is False


def test_to_xarray_labels_generated_and_community_data(tmp_path):
    generated = OperatorDataModule(Darcy(resolution=9), 2, 1, 2, subsample=2, data_dir=str(tmp_path),
                                   generate_workers=1)
    generated.prepare_data()
    view = to_xarray(generated.path, split="test", resolution=5)
    test = generated.open_store().read("test", 5)
    assert set(view.data_vars) == {"input_a", "output_u"}
    np.testing.assert_array_equal(view.output_u.sel(x=0.5, y=0.25).values, test.outputs[:, 0, 2, 1])

    data = write_the_well(tmp_path / "well.hdf5", 4, 3, (8, 4))
    view = to_xarray(tmp_path / "well.hdf5", samples=slice(1, 3), subsample=2)
    assert view.sizes == {"sample": 2, "time": 2, "x": 4, "y": 2}
    assert list(view.sample.values) == [1, 2]
    picked = view.output_velocity_y.sel(sample=2, time=0.5, x=0.3125, y=0.625).item()
    assert picked == data[2, 2, 2, 2, 2]  # sample 2, velocity_y, 2nd recorded time, 3rd cell in x and y


@pytest.mark.slow
def test_train_and_evaluate_on_fno_darcy_mat(tmp_path):
    problem = Darcy(resolution=33)
    inputs = problem.sample_inputs(48, np.random.default_rng(0))
    outputs = problem.solve(inputs)
    path = write_mat_v5(tmp_path / "darcy.mat", {"coeff": inputs[:, 0], "sol": outputs[:, 0]})
    common = [f"data.path={path}", "data.n_val=8", "data.n_test=8", "data.subsample=2", "data.test_subsamples=[1]",
              "data.batch_size=8", "trainer.max_epochs=3", "model.n_modes=[8,8]"]
    run_entry(["train.py"], ["data=from_file", *common], tmp_path / "run", tmp_path)
    metrics = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    errors = {k: v for k, v in metrics.items() if k.startswith("test/rel_l2_")}
    assert set(errors) == {"test/rel_l2_17", "test/rel_l2_33"} and all(0 < v < 1 for v in errors.values())
    ckpt = next((tmp_path / "run" / "checkpoints").glob("best-*.ckpt"))
    result = run_entry(["evaluate.py"], [f"ckpt={ckpt}"], tmp_path / "eval", tmp_path)
    assert "darcy.mat" in result.stdout
    evaluated = json.loads((tmp_path / "eval" / "evaluation.json").read_text())["results"]
    assert evaluated["17"]["rel_l2"]["mean"] == pytest.approx(errors["test/rel_l2_17"], rel=1e-4)
    run_entry(["predict.py"], [f"ckpt={ckpt}", "resolution=33"], tmp_path / "predict", tmp_path)
    import xarray as xr

    with xr.open_dataset(tmp_path / "predict" / "predictions.nc") as predictions:
        np.testing.assert_allclose(predictions.target_sol.values, outputs[-8:, 0], rtol=1e-6)  # the last 8 samples
        assert json.loads(predictions.attrs["dataset_params"])["format"] == "mat v5"


@pytest.mark.slow
@pytest.mark.parametrize("case", ["ns_v73", "pdebench_1d", "pdebench_groups", "the_well", "neuralop_pt", "npz"])
def test_train_on_each_format(tmp_path, case):
    if case == "neuralop_pt":
        path = tmp_path / "darcy_train_16.pt"
        write_neuralop_pt(path, 24, (16, 16))
        extra = ["data.periodic=true", "data.subsample=2", "data.test_subsamples=[1]", "model.n_modes=[8,8]"]
    elif case == "npz":
        path = tmp_path / "mine.npz"
        np.savez(path, a=np.cos(pattern(24, 2, None, (9, 9)) / 1e4), u=np.sin(pattern(24, 1, None, (9, 9))[:, 0] / 1e4))
        extra = ["data.axes={inputs: [sample, channel, x, y]}", "data.in_channels=2", "data.subsample=2",
                 "model.n_modes=[4,4]"]
    elif case == "pdebench_groups":
        path = tmp_path / "2D_diff-react_NA_NA.h5"
        write_pdebench_groups(path, 24, 3, (8, 8), channels=2)
        extra = ["data/task=final", "data.in_channels=2", "data.out_channels=2", "data.subsample=2",
                 "model.n_modes=[4,4]"]
    elif case == "ns_v73":
        u = np.sin(pattern(24, 1, 4, (8, 8))[:, 0] / 1e4)
        path = write_mat_v73(tmp_path / "ns_V1e-3_N5000_T50.mat",
                             {"a": u[:, 0], "u": np.moveaxis(u, 1, -1), "t": np.arange(1.0, 5.0)[None]})
        extra = ["data/task=final", "data.periodic=true", "data.subsample=2", "data.test_subsamples=[1]",
                 "data.in_memory=false", "data.num_workers=1", "model.n_modes=[4,4]"]
    elif case == "pdebench_1d":
        path = tmp_path / "1D_Burgers_Sols_Nu0.01.hdf5"
        write_pdebench_1d(path, 24, 4, 32)
        extra = ["data/task=final", "data.subsample=2", "model.n_modes=[8]"]  # the losses take the file's 1 axis
    else:
        path = tmp_path / "shear_flow.hdf5"
        write_the_well(path, 24, 3, (8, 4))
        extra = ["data/task=window", "data.task.history=1", "data.task.horizon=1", "data.in_channels=3",
                 "data.out_channels=3", "model.n_modes=[4,2]"]
    run_entry(["train.py"], ["data=from_file", f"data.path={path}", "data.n_val=4", "data.n_test=4",
                             "data.batch_size=8", "trainer.max_epochs=1", *extra], tmp_path / "run", tmp_path)
    metrics = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    values = [v for k, v in metrics.items() if k.startswith("test/rel_l2")]
    assert values and all(np.isfinite(values))


@pytest.mark.parametrize("model", ["t1", "scot"])
def test_a_model_sized_by_the_grid_asks_for_the_files_grid_size(tmp_path, model):
    """T1's signal_resolution and scOT's image_size are ${data.grid_size}, which data=from_file leaves unset: the
    message was that the model's key got None."""
    path = write_mat_v5(tmp_path / "d.mat", {"coeff": np.ones((6, 5, 5)), "sol": np.ones((6, 5, 5))})
    result = run_entry(["train.py"], ["data=from_file", f"data.path={path}", f"model={model}"], tmp_path / "run",
                       tmp_path, check=False)
    assert result.returncode == 2
    key = {"t1": "signal_resolution", "scot": "image_size"}[model]
    assert result.stderr.strip().splitlines()[-1] == (
        f"pdeop error: data.grid_size: model.{key} is the training grid's size (${{data.grid_size}}), which this data "
        f"config leaves unset; set data.grid_size to the training grid's nodes a side, after data.subsample "
        f"(python -m pdeop.data.formats <file> shows the stored grid)")
    run_entry(["train.py"], ["data=from_file", f"data.path={path}", "model=t1", "data.grid_size=5", "model.modes=[2,2]",
                             "model.width=4", "model.head_width=4", "data.n_val=1", "data.n_test=1",
                             "trainer.max_epochs=1"], tmp_path / "sized", tmp_path)


@pytest.mark.parametrize("spatial_dims", [None, 1, 2])
def test_the_losses_take_the_files_spatial_axes(tmp_path, spatial_dims):
    """data=from_file leaves data.spatial_dims null: the losses are built over the file's axes (1 here); one set
    explicitly is checked against the file."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from pdeop.conf import CONF
    from pdeop.training.run import build_module

    path = tmp_path / "1D_Burgers_Sols_Nu0.01.hdf5"
    write_pdebench_1d(path, 24, 4, 32)
    overrides = ["data=from_file", f"data.path={path}", "data/task=final", "model=fno_1d", "loss=h1",
                 f"paths.output_dir={tmp_path / 'run'}"]
    if spatial_dims is not None:
        overrides.append(f"data.spatial_dims={spatial_dims}")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    datamodule = instantiate(cfg.data)
    if spatial_dims == 2:
        with pytest.raises(ConfigError, match="data.spatial_dims: config says 2, the data of .* has 1"):
            datamodule.setup("fit")
        return
    datamodule.setup("fit")
    module = build_module(cfg, datamodule, OmegaConf.to_container(cfg, resolve=True))
    assert module.loss.d == 1
    prediction, target = torch.randn(2, 1, 16), torch.randn(2, 1, 16)
    assert torch.isfinite(module.loss(prediction, target))  # H1 over two axes failed on [B, 1, N]
    # PDEBench's 1-D grids are periodic: H1's differences wrap around, so a shifted pair has the same error
    assert datamodule.periodic and module.loss.periodic_in_x is True
    shifted = module.loss(prediction.roll(5, dims=-1), target.roll(5, dims=-1))
    torch.testing.assert_close(shifted, module.loss(prediction, target))


def test_bad_file_is_one_line_at_the_entry_point(tmp_path):
    path = write_mat_v5(tmp_path / "d.mat", {"coeff": np.ones((6, 5, 5)), "sol": np.ones((6, 5, 5))})
    result = run_entry(["train.py"], ["data=from_file", f"data.path={path}", "data.inputs=kappa", "data.outputs=sol"],
                       tmp_path / "run", tmp_path, check=False)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "d.mat" in last and "'kappa'" in last and "['coeff', 'sol']" in last


@pytest.mark.parametrize("task", [None, "final", "window"])
def test_training_split_left_on_disk_serves_the_same_batches_and_normalisers(tmp_path, task):
    from pdeop.data.tasks import FinalState, Window

    u = np.sin(pattern(40, 1, 4, (9, 5))[:, 0] / 3e4)  # [N, T, X, Y]
    path = write_mat_v73(tmp_path / "ns.mat", {"a": np.cos(u[:, 0]), "u": np.moveaxis(u, 1, -1),
                                               "t": np.arange(1.0, 5.0)[None]})
    options = dict(n_val=4, n_test=4, subsample=2, batch_size=6, shuffle_seed=3)
    if task is None:  # steady pairs: a(x) -> u at the first time, as a plain [N, X, Y] file
        path = write_mat_v5(tmp_path / "d.mat", {"coeff": np.cos(u[:, 0]), "sol": u[:, 0]})
    else:
        options["task"] = FinalState() if task == "final" else Window(history=2, horizon=2)
        options["in_channels"] = 2 if task == "window" else 1
        options["out_channels"] = 1
    memory = file_module(path, **options)
    disk = file_module(path, in_memory=False, num_workers=2 if task == "window" else 0, **options)
    assert "train" not in disk.splits
    for side in ("input_normaliser", "output_normaliser"):
        for stat in ("mean", "std"):
            torch.testing.assert_close(getattr(getattr(disk, side), stat), getattr(getattr(memory, side), stat),
                                       rtol=1e-6, atol=1e-7)
    for epoch in (0, 1):
        loaders = [dm.train_dataloader() for dm in (memory, disk)]
        for loader in loaders:
            loader.sampler.set_epoch(epoch)
        batches = [list(loader) for loader in loaders]
        assert len(batches[0]) == len(batches[1]) == 6  # 32 training samples, batches of 6
        for (x_mem, y_mem), (x_disk, y_disk) in zip(*batches):
            torch.testing.assert_close(x_disk, x_mem, rtol=0, atol=0)
            torch.testing.assert_close(y_disk, y_mem, rtol=0, atol=0)


def test_all_to_all_needs_the_split_in_memory(tmp_path):
    from pdeop.data.tasks import AllToAll

    with pytest.raises(ConfigError, match="data.in_memory: all-to-all"):
        FileDataModule(str(tmp_path / "x.mat"), in_memory=False, task=AllToAll())


@pytest.mark.parametrize("task", ["final_at", "window", "window_initial", "window_initial_later"])
def test_tasks_read_only_the_states_they_use(tmp_path, task, monkeypatch):
    from pdeop.data.formats.arrays import StoredArray
    from pdeop.data.tasks import Window

    write_the_well(tmp_path / "well.hdf5", 12, 9, (8, 4))  # 8 states after the first
    chosen = {"final_at": FinalState(time=1.0), "window": Window(history=2, horizon=1, start=3),
              "window_initial": Window(history=2, horizon=2, include_initial=True),
              "window_initial_later": Window(history=1, horizon=2, start=2, include_initial=True)}[task]
    channels = 3 * (chosen.history if isinstance(chosen, Window) else 1)
    outputs = 3 * (chosen.step if isinstance(chosen, Window) else 1)
    read_times = []
    original = StoredArray.read

    def spy(self, samples, step=1, time_step=1, times=slice(None)):
        out = original(self, samples, step, time_step, times)
        if self.has_time:
            read_times.append(out.shape[2])
        return out

    monkeypatch.setattr(StoredArray, "read", spy)
    dm = file_module(tmp_path / "well.hdf5", n_val=2, n_test=2, task=chosen, in_channels=channels,
                     out_channels=outputs)
    needed = {"final_at": 1, "window": 3, "window_initial": 3, "window_initial_later": 3}[task]
    assert set(read_times) == {needed}
    everything = open_dataset(tmp_path / "well.hdf5").read(slice(0, 8))
    expected = chosen.pairs(everything)
    np.testing.assert_array_equal(dm.splits["train"].inputs, expected.inputs)
    np.testing.assert_array_equal(dm.splits["train"].outputs, expected.outputs)
    disk = file_module(tmp_path / "well.hdf5", n_val=2, n_test=2, task=chosen, in_channels=channels,
                       out_channels=outputs, in_memory=False, batch_size=8, shuffle_seed=1)
    x, y = next(iter(disk.train_dataloader()))
    order = list(disk.train_dataloader().sampler)
    np.testing.assert_array_equal(y.numpy(), expected.outputs[order])


def test_describe_command_reports_what_it_finds(tmp_path):
    import subprocess
    import sys

    write_the_well(tmp_path / "well.hdf5", 3, 4, (8, 4))
    result = subprocess.run([sys.executable, "-m", "pdeop.data.formats", str(tmp_path / "well.hdf5")],
                            capture_output=True, text=True, check=True)
    assert "3 samples on a 8x4 grid (x, y), trajectories of 3 recorded times" in result.stdout
    assert "'/t1_fields/velocity' stored [3, 4, 8, 4, 2] as (sample, time, x, y, channel)" in result.stdout
    failed = subprocess.run([sys.executable, "-m", "pdeop.data.formats", str(tmp_path / "none.mat")],
                            capture_output=True, text=True)
    assert failed.returncode != 0 and "none.mat' does not exist" in failed.stderr


def test_time_before_space_needs_axes_and_the_error_says_how(tmp_path):
    path = tmp_path / "burgers_lowres.pt"
    _, y = write_neuralop_burgers_pt(path, 10, 5, 16)
    with pytest.raises(DataFileError) as excinfo:
        file_module(path, task=FinalState())
    message = str(excinfo.value)
    assert "\n" not in message and "grid {'x': 5} does not match" in message
    assert "name them: data.axes={outputs: [sample, time, x]}" in message
    dm = file_module(path, task=FinalState(), axes={"outputs": ["sample", "time", "x"]}, n_val=1, n_test=1)
    np.testing.assert_array_equal(dm.splits["train"].outputs[:, 0], y[:8, -1])


def test_neuralop_darcy_16_inside_32_with_periodic_placement(tmp_path):
    """neuraloperator's 16-point Darcy grid is every other node of its 32-point grid (n/r, not (n - 1)/r + 1)."""
    fine = tmp_path / "darcy_test_32.pt"
    x, y = write_neuralop_pt(fine, 4, (32, 32))
    coarse = tmp_path / "darcy_train_16.pt"
    torch.save({"x": torch.from_numpy(x[:, ::2, ::2] > 0), "y": torch.from_numpy(y[:, ::2, ::2].astype(np.float32))},
               coarse)
    options = dict(test_path=str(fine), n_train=3, n_val=1, n_test=2, test_subsamples=[2])
    with pytest.raises(DataFileError) as excinfo:
        file_module(coarse, **options)
    message = str(excinfo.value)
    assert "\n" not in message and "darcy_test_32.pt" in message and "factor 2" in message
    assert "both boundary nodes" in message and "(n - 1)/r + 1 points" in message
    assert "data.periodic=true: n/r = 16 points, every r-th node from the first" in message
    dm = file_module(coarse, periodic=True, **options)
    assert dm.test_resolutions == [16, 32]
    np.testing.assert_array_equal(dm.test_sets[16].outputs[:, 0], y[:2, ::2, ::2])
    np.testing.assert_array_equal(dm.test_sets[16].coords["x"], dm.splits["train"].coords["x"])  # i / 16
