"""evaluate.py and checkpoint loading: the test metric reproduced, unsafe or foreign checkpoints refused."""

import argparse
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import run_entry

from pdeop.data.store import FieldSet
from pdeop.data.tasks import AllToAll
from pdeop.evaluation.metrics import evaluate_fields
from pdeop.evaluation.run import table
from pdeop.pretrained import CheckpointError, load_pretrained


def run_evaluate(*overrides, data_dir, out_dir):
    return run_entry(["evaluate.py"], list(overrides), out_dir, data_dir, check=False)


@pytest.mark.slow
def test_evaluate_reproduces_the_test_metric_at_every_resolution(trained, data_dir, tmp_path):
    tested = json.loads((trained / "test_metrics.json").read_text())
    result = run_evaluate(f"ckpt={tested['checkpoint']}", data_dir=data_dir, out_dir=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| 17 | 16 |" in result.stdout and "| 33 | 16 |" in result.stdout
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())["results"]
    for resolution in ("17", "33"):
        stats = evaluation[resolution]
        assert abs(stats["rel_l2"]["mean"] - tested[f"test/rel_l2_{resolution}"]) < 1e-5
        assert stats["rel_l2"]["median"] <= stats["rel_l2"]["worst"] and stats["rel_h1"]["mean"] > 0
        assert stats["samples"] == 16
    assert (tmp_path / "evaluation_error_by_resolution.png").stat().st_size > 1000


@pytest.mark.slow
def test_predict_writes_labelled_netcdf_and_pictures(trained, data_dir, tmp_path):
    import numpy as np
    import xarray as xr

    checkpoint = trained / "checkpoints" / "last.ckpt"
    result = run_entry(["predict.py"], [f"ckpt={checkpoint}", "resolution=17", "chunk=5", "plot_samples=[0,3]"],
                       tmp_path, data_dir, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    with xr.open_dataset(tmp_path / "predictions.nc") as predictions:
        assert dict(predictions.sizes) == {"sample": 16, "x": 17, "y": 17}  # written in 4 chunks of up to 5
        assert set(predictions.data_vars) == {"input_a", "target_u", "prediction_u", "error_u"}
        np.testing.assert_allclose(predictions.x.values, np.linspace(0, 1, 17))
        assert predictions.attrs["model"] == "neuralop.models.FNO" and predictions.attrs["resolution"] == 17
        assert len(predictions.attrs["checkpoint_sha256"]) == 64
        assert json.loads(predictions.attrs["dataset_params"])["n_test"] == 16
        module = load_pretrained(checkpoint)
        with torch.no_grad():
            expected = module(torch.from_numpy(predictions.input_a.values[:, None]))[:, 0].numpy()
        np.testing.assert_allclose(predictions.prediction_u.values, expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(predictions.error_u.values,
                                   predictions.prediction_u.values - predictions.target_u.values, atol=1e-7)
    assert all((tmp_path / f"predictions_sample_{i}.png").stat().st_size > 5000 for i in (0, 3))
    bad = run_entry(["predict.py"], [f"ckpt={checkpoint}", "resolution=20"], tmp_path, data_dir, check=False)
    assert bad.returncode == 2 and "resolution" in bad.stderr and "[17, 33]" in bad.stderr


@pytest.mark.slow
def test_unsafe_and_foreign_checkpoints_are_refused(trained, data_dir, tmp_path):
    unsafe = tmp_path / "unsafe.ckpt"
    torch.save({"state_dict": {}, "pdeop_config": argparse.Namespace(model="x")}, unsafe)
    result = run_evaluate(f"ckpt={unsafe}", data_dir=data_dir, out_dir=tmp_path)
    assert result.returncode == 2 and "needs arbitrary unpickling" in result.stderr and "Traceback" not in result.stderr

    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a pdeop checkpoint"):
        load_pretrained(foreign)

    checkpoint = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["pdeop_config"]["model"]["hidden_channels"] = 16  # the checkpoint was trained with 32
    other = tmp_path / "other.ckpt"
    torch.save(checkpoint, other)
    with pytest.raises(CheckpointError, match=r"shape mismatch: model\.fno_blocks.* \(32, 32") as error:
        load_pretrained(other)
    assert "does not fit the model" in str(error.value)
    with pytest.raises(CheckpointError, match="nope.ckpt' is neither a checkpoint file, a bundle directory nor a "
                                              "registered name"):
        load_pretrained(tmp_path / "nope.ckpt")


def test_a_stop_while_out_is_written_leaves_no_partial_file(tmp_path, capsys):
    """SIGTERM (a scheduler's time limit) or Ctrl-C during the final write: the temporary beside out= is removed,
    the signal's exit status returned, the old file untouched."""
    import os
    import signal
    import time

    from pdeop.io import atomic_path, stops_cleanly

    out = tmp_path / "pred.nc"
    out.write_text("the previous predictions")

    def writer(stop):
        @stops_cleanly
        def job():
            with atomic_path(out) as tmp:
                tmp.write_text("half written")
                stop()
                time.sleep(10)
        return job

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        writer(lambda: os.kill(os.getpid(), signal.SIGTERM))()
    assert stopped.value.code == 143 and signal.getsignal(signal.SIGTERM) == before
    assert capsys.readouterr().err.startswith("pdeop: stopped by SIGTERM; no partial file")

    def interrupt():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as stopped:
        writer(interrupt)()
    assert stopped.value.code == 130 and capsys.readouterr().err.startswith("pdeop: interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.nc"] and out.read_text() == "the previous predictions"


def test_an_entry_point_called_from_a_thread_runs_without_its_signal_handler():
    """Only the main thread may install a SIGTERM handler; a GUI's or a worker's thread calling main must not fail."""
    import threading

    from pdeop.io import stops_cleanly

    results = []
    worker = threading.Thread(target=lambda: results.append(stops_cleanly(lambda: "done")()))
    worker.start()
    worker.join(10)
    assert results == ["done"]


def test_the_worst_all_to_all_pair_is_named_by_trajectory_and_lead():
    """All-to-all evaluation pairs (initial state -> each recorded state) are trajectory-major, so the worst pair's
    index (here 10) is not a trajectory: the report names trajectory 2, lead 3; a one-step evaluation keeps the
    sample's index."""
    class Persistence(torch.nn.Module):
        """Predicts the initial state at every lead: its error is the change since then."""
        rollout = None

        def predict(self, x, t=None):
            return x

    change = np.full((3, 4), 0.1, dtype=np.float32)  # [trajectory, recorded time]
    change[2, 2] = 3.0  # trajectory 2 at its third recorded time: pair 2 * 4 + 2
    grid = np.linspace(0, 1, 8, dtype=np.float32)
    initial = np.ones((3, 1, 8, 8), dtype=np.float32)
    outputs = (initial[:, :, None] * (1 + change[:, None, :, None, None])).astype(np.float32)
    trajectories = FieldSet(initial, outputs, {"x": grid, "y": grid}, times=np.arange(1.0, 5.0))
    pairs = AllToAll().pairs(trajectories)

    result = evaluate_fields(Persistence(), pairs, periodic=True)
    assert result["rel_l2"]["worst_sample"] == 10
    assert (result["rel_l2"]["worst_trajectory"], result["rel_l2"]["worst_lead"]) == (2, 3)
    row = table({8: result}).splitlines()[-1]
    assert f"{result['rel_l2']['worst']:.4f} (traj 2, lead 3)" in row and "(10)" not in row

    one_step = evaluate_fields(Persistence(), FieldSet(initial, outputs[:, :, 2], trajectories.coords), periodic=True)
    assert "worst_trajectory" not in one_step["rel_l2"]
    assert f"{one_step['rel_l2']['worst']:.4f} (2) |" in table({8: one_step})


@pytest.mark.slow
def test_out_replaces_only_an_earlier_output_of_its_kind(trained, data_dir, tmp_path):
    """out= naming the checkpoint, the dataset or any other file was replaced by the predictions or the JSON; an
    earlier output of the same command still is (a rerun). Mistyped settings are one line before the model loads."""
    checkpoint = trained / "checkpoints" / "last.ckpt"
    kept = tmp_path / "kept.ckpt"
    shutil.copy(checkpoint, kept)
    dataset = next(data_dir.glob("*.h5"))
    for script, out in (("predict.py", kept), ("evaluate.py", dataset), ("evaluate.py", tmp_path / "notes.json")):
        if out.suffix == ".json":
            out.write_text('{"my": "notes"}')
        before = out.read_bytes()
        result = run_entry([script], [f"ckpt={kept}", f"out={out}"], tmp_path / "hydra", data_dir, check=False)
        assert result.returncode == 2, result.stderr[-3000:]
        assert f"out: '{out}' exists and is not an earlier" in result.stderr and "Traceback" not in result.stderr
        assert out.read_bytes() == before
    for script, out in (("predict.py", tmp_path / "p.nc"), ("evaluate.py", tmp_path / "e.json")):
        for _ in range(2):  # written, then replaced by the rerun
            result = run_entry([script], [f"ckpt={kept}", f"out={out}", "split=val"], tmp_path / "hydra", data_dir,
                               check=False)
            assert result.returncode == 0, result.stderr[-3000:]
    for overrides, message in ((["chunk=0"], "chunk: expected a positive number"),
                               (["plot_samples=5"], "plot_samples: expected list[int], got 5"),
                               (["chunk=abc"], "chunk: expected int, got 'abc'"),
                               (["split=train"], "split: expected 'test' or 'val', got 'train'")):
        result = run_entry(["predict.py"], [f"ckpt={kept}", *overrides], tmp_path / "hydra", data_dir, check=False)
        assert result.returncode == 2 and message in result.stderr, result.stderr[-3000:]


@pytest.mark.slow
def test_data_of_another_dimension_is_refused_before_it_is_generated(trained, tmp_path):
    """A 2-D model evaluated on Burgers generated the whole 1-D dataset, then refused it."""
    empty = tmp_path / "data"
    result = run_entry(["evaluate.py"], [f"ckpt={trained / 'checkpoints' / 'last.ckpt'}", "data=burgers"],
                       tmp_path / "run", empty, check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "data: FNO takes 2-D fields and this data's are 1-D (data.spatial_dims)" in result.stderr
    assert not empty.exists() or not any(empty.iterdir())
