"""Time-dependent datasets: trajectories stored with their time axis, tasks that pair them, rollouts trained end to
end."""

import json

import h5py
import numpy as np
import pytest
import torch
from conftest import run_entry

from pdeop.data.generation import DatasetSpec, generate, subsample_grid
from pdeop.data.store import DatasetFile, FieldSet
from pdeop.data.tasks import AllToAll, FinalState, Window
from pdeop.errors import ConfigError, DataFileError
from pdeop.problems import Burgers1D, NavierStokes2D
from pdeop.training.operator_module import OperatorModule

# Navier-Stokes small enough to generate in a second: 32 periodic nodes, 4 snapshots every 0.1.
TINY_NS = ["data=navier_stokes", "data.problem.resolution=32", "data.problem.final_time=0.4",
           "data.problem.record_every=0.1", "data.problem.dt=0.01", "data.problem.device=cpu",
           "data.n_train=16", "data.n_val=4", "data.n_test=4", "data.batch_size=4", "data.generate_workers=1",
           "model.n_modes=[6,6]", "model.hidden_channels=8", "model.domain_padding=0.0"]


def trajectory_fields(n=3, channels=2, times=5, size=4) -> FieldSet:
    """State value = 1000 sample + 100 channel + time index + node / 100: every number says where it belongs."""
    sample, channel, t, node = np.meshgrid(np.arange(n), np.arange(channels), np.arange(times), np.arange(size),
                                           indexing="ij")
    outputs = (1000 * sample + 100 * channel + t + 1 + node / 100).astype(np.float64)
    inputs = outputs[:, :, 0] - 1  # the initial state is time index 0 -> value t = 0
    return FieldSet(inputs, outputs, {"x": np.arange(size) / size}, times=0.5 * np.arange(1, times + 1))


def test_final_state_pairs_the_initial_state_with_the_chosen_time():
    fields = trajectory_fields()
    last = FinalState().pairs(fields)
    np.testing.assert_array_equal(last.inputs, fields.inputs)
    np.testing.assert_array_equal(last.outputs, fields.outputs[:, :, -1])
    np.testing.assert_array_equal(FinalState(time=1.0).pairs(fields).outputs, fields.outputs[:, :, 1])
    with pytest.raises(ConfigError, match=r"data.task.time: 0.7 is not a recorded time; the data has \[0.5, 1.0"):
        FinalState(time=0.7).pairs(fields)
    with pytest.raises(DataFileError, match="needs a time-dependent dataset"):
        FinalState().pairs(FieldSet(fields.inputs, fields.inputs, fields.coords))


def test_window_stacks_states_time_major_and_rollout_feeds_predictions_back():
    fields = trajectory_fields()
    task = Window(history=2, horizon=2, step=1, start=1)
    pairs = task.pairs(fields)
    assert pairs.inputs.shape == (3, 4, 4) and pairs.outputs.shape == (3, 4, 4)
    # sample 2, input channel 3 = (time index 2, channel 1); output channel 2 = (time index 4, channel 0)
    assert pairs.inputs[2, 3, 0] == 2000 + 100 + 3 and pairs.outputs[2, 2, 1] == 2000 + 5 + 0.01
    with_initial = Window(history=2, horizon=2, include_initial=True).pairs(fields)
    np.testing.assert_array_equal(with_initial.inputs[:, :2], fields.inputs)

    def next_state(x):  # the exact dynamics of the pattern: every state is the last one plus 1
        return x[:, -2:] + 1

    predicted = task.rollout(next_state, torch.from_numpy(pairs.inputs))
    np.testing.assert_allclose(predicted.numpy(), pairs.outputs, rtol=0, atol=1e-12)
    errors = task.lead_errors(predicted + 1e-3 * torch.arange(1, 3).repeat_interleave(2)[None, :, None],
                              torch.from_numpy(pairs.outputs))
    assert errors.shape == (3, 2) and torch.all(errors[:, 1] > errors[:, 0])
    with pytest.raises(ConfigError, match="start \\+ history \\+ horizon = 6 snapshots, but the data has 5"):
        Window(history=3, horizon=2, start=1).pairs(fields)
    with pytest.raises(ConfigError, match="data.task.step: expected a divisor of horizon = 3"):
        Window(history=1, horizon=3, step=2)



def fno_rollout_errors(prediction: torch.Tensor, target: torch.Tensor, calls: int) -> tuple[float, float]:
    """``test_l2_step`` and ``test_l2_full`` as fourier_2d_time.py computes them: per-sample norms of each call's
    block and of the whole rollout (``LpLoss(size_average=False)`` on ``reshape(batch, -1)``), summed, then
    divided by the samples (and the calls)."""
    b = target.shape[0]

    def summed(p, t):
        return ((p - t).reshape(b, -1).norm(dim=1) / t.reshape(b, -1).norm(dim=1)).sum().item()

    blocks = zip(prediction.chunk(calls, dim=1), target.chunk(calls, dim=1))
    return sum(summed(p, t) for p, t in blocks) / b / calls, summed(prediction, target) / b


@pytest.mark.parametrize("step, channels", [(1, 1), (2, 3)])
def test_rollout_errors_are_fno_and_lsm_test_l2_step_and_test_l2_full(step, channels):
    task = Window(history=2, horizon=4, step=step)
    generator = torch.Generator().manual_seed(0)
    target = torch.randn(5, 4 * channels, 6, 6, generator=generator, dtype=torch.float64)
    # states differ in size
    target = target * torch.arange(1, 4 * channels + 1, dtype=torch.float64)[None, :, None, None]
    prediction = target + 0.3 * torch.randn(target.shape, generator=generator, dtype=torch.float64)
    l2_step, l2_full = fno_rollout_errors(prediction, target, task.horizon // step)
    assert task.step_errors(prediction, target).shape == (5, 4 // step)
    assert task.step_errors(prediction, target).mean().item() == pytest.approx(l2_step, rel=1e-12)
    assert task.full_errors(prediction, target).mean().item() == pytest.approx(l2_full, rel=1e-12)
    assert l2_full != pytest.approx(l2_step, rel=1e-3)  # two different figures
    if step == channels == 1:  # what pdeop logged as test/rel_l2_<n> for rollouts before the split: the per-step mean
        assert OperatorModule.relative_l2(prediction, target).item() == pytest.approx(l2_step, rel=1e-6)  # LpLoss eps

def test_window_normalises_a_state_alike_in_every_slot_so_a_latest_state_residual_stays_physical():
    fields = trajectory_fields(n=4, channels=2, times=6)  # states grow in time: later ones have a larger mean
    task = Window(history=2, horizon=3)
    pairs = task.pairs(fields)
    to_model, from_model = task.fit_normalisers(pairs.inputs, pairs.outputs)
    torch.testing.assert_close(to_model.mean[:, -2:], from_model.mean)
    torch.testing.assert_close(to_model.std[:, -2:], from_model.std)

    def persistence(x):  # a model that returns its latest input state in normalised units (MgNO's residual)
        return from_model.inverse_transform(to_model.transform(x)[:, -2:])

    x = torch.from_numpy(pairs.inputs)
    torch.testing.assert_close(task.rollout(persistence, x), x[:, -2:].repeat(1, 3, 1))


def test_all_to_all_serves_every_ordered_pair_with_its_lead_time():
    fields = trajectory_fields(n=2, channels=1, times=3)  # 4 snapshots with the initial state: t = 0, .5, 1, 1.5
    pairs = AllToAll().train_dataset(fields)
    assert len(pairs) == 2 * 10  # i <= j among 4 snapshots
    seen = set()
    for k in range(len(pairs)):
        x, t, y = pairs[k]
        i, j, trajectory = int(x[0, 0]) % 100, int(y[0, 0]) % 100, int(x[0, 0]) // 1000
        assert j >= i and float(t) == pytest.approx((j - i) / 3) and int(y[0, 0]) // 1000 == trajectory
        seen.add((trajectory, i, j))
    assert len(seen) == 20
    assert len(AllToAll(max_lead=1, same_time=False).train_dataset(fields)) == 2 * 3
    evaluation = AllToAll().pairs(fields)
    assert evaluation.inputs.shape == (6, 1, 4) and evaluation.outputs.shape == (6, 1, 4)
    assert (evaluation.inputs[:, 0, 0] % 100 == 0).all()
    np.testing.assert_array_equal(evaluation.outputs[:3, 0, 0] % 100, [1, 2, 3])
    np.testing.assert_allclose(evaluation.lead_times, [1 / 3, 2 / 3, 1, 1 / 3, 2 / 3, 1], rtol=1e-6)


def test_trajectories_are_stored_with_their_times_and_subsampled_in_space_only(tmp_path):
    problem = NavierStokes2D(resolution=32, final_time=0.3, record_every=0.1, dt=0.01, device="cpu")
    spec = DatasetSpec(problem, n_train=2, n_val=2, n_test=3, subsample=2, test_subsamples=(1,), seed=5)
    path = generate(spec, tmp_path, progress=False)
    stored = DatasetFile(path)
    coarse, fine = stored.read("test", 16), stored.read("test", 32)
    assert coarse.outputs.shape == (3, 1, 3, 16, 16) and fine.outputs.shape == (3, 1, 3, 32, 32)
    np.testing.assert_allclose(coarse.times, [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(coarse.outputs, subsample_grid(fine.outputs, 2, 2))
    np.testing.assert_allclose(coarse.coords["x"], np.arange(16) / 16)
    np.testing.assert_allclose(problem.solve(fine.inputs), fine.outputs, rtol=0, atol=1e-6)  # the solver's own
    with h5py.File(path) as f:
        assert f["test/16/outputs"].chunks == (1, 1, 3, 16, 16)
    with pytest.raises(ConfigError, match="expected a positive divisor of the periodic resolution 32"):
        DatasetSpec(problem, 2, 2, 2, subsample=3)


def test_a_diverging_solver_stops_generation_and_writes_nothing(tmp_path):
    # an explicit step 5000x FNO's: the vorticity overflows within 40 steps
    problem = NavierStokes2D(resolution=16, viscosity=1e-5, final_time=20.0, record_every=20.0, dt=0.5, device="cpu")
    with pytest.raises(ConfigError, match=r"navier_stokes solver diverged on train sample 0: .* "
                                          r"\(lower data.problem.dt"):
        generate(DatasetSpec(problem, n_train=2, n_val=1, n_test=1, subsample=1), tmp_path, progress=False)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_navier_stokes_rollout_trains_and_reports_errors_per_lead_time(data_dir, tmp_path):
    run = tmp_path / "ns"
    run_entry(["train.py"], [*TINY_NS, "data/task=window", "data.task.history=2", "data.task.horizon=2",
                             "data.in_channels=2", "trainer.max_epochs=2"], run, data_dir)
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert {"test/rel_l2_step_16", "test/rel_l2_full_16", "test/rel_l2_16_lead1", "test/rel_l2_16_lead2",
            "test/rel_l2_step_32", "test/rel_l2_full_32", "test/rel_l2_32_lead2"} <= set(metrics)
    assert "test/rel_l2_16" not in metrics  # a rollout's errors say which they are
    assert metrics["test/rel_l2_step_16"] == pytest.approx((metrics["test/rel_l2_16_lead1"]
                                                            + metrics["test/rel_l2_16_lead2"]) / 2, rel=1e-5)
    run_entry(["evaluate.py"], [f"ckpt={metrics['checkpoint']}"], tmp_path / "evaluate", data_dir)
    evaluation = json.loads((tmp_path / "evaluate" / "evaluation.json").read_text())["results"]
    assert evaluation["16"]["rel_l2"]["mean"] == pytest.approx(metrics["test/rel_l2_step_16"], abs=1e-5)
    assert evaluation["16"]["rel_l2_full"]["mean"] == pytest.approx(metrics["test/rel_l2_full_16"], abs=1e-5)
    for lead in ("1", "2"):
        assert evaluation["16"]["rel_l2_by_lead"][lead] == pytest.approx(metrics[f"test/rel_l2_16_lead{lead}"],
                                                                         abs=1e-5)


@pytest.mark.slow
def test_scot_trains_all_to_all_and_is_evaluated_per_lead_time(data_dir, tmp_path):
    scot = ["model=scot", "+recipe=scot", "model.embed_dim=8", "model.depths=[1,1,1,1]", "model.num_heads=[1,2,2,4]",
            "model.skip_connections=[1,0,0,0]", "model.window_size=4", "model.patch_size=2"]
    run = tmp_path / "a2a"
    run_entry(["train.py"], [*TINY_NS[:-3], *scot, "data/task=all_to_all", "trainer.max_epochs=1"], run, data_dir)
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert {"test/rel_l2_16", "test/rel_l2_32"} <= set(metrics)
    run_entry(["evaluate.py"], [f"ckpt={metrics['checkpoint']}"], tmp_path / "evaluate", data_dir)
    evaluation = json.loads((tmp_path / "evaluate" / "evaluation.json").read_text())["results"]["16"]
    assert list(evaluation["rel_l2_by_lead_time"]) == ["0.25", "0.5", "0.75", "1"]
    assert evaluation["samples"] == 4 * 4 and evaluation["rel_l1"]["median"] > 0

    fno = run_entry(["train.py"], [*TINY_NS, "data/task=all_to_all", "trainer.max_epochs=1"], tmp_path / "fno",
                    data_dir, check=False)
    assert fno.returncode == 2 and "does not take (as configured); use a time-conditioned model" in fno.stderr
    unconditioned = run_entry(["train.py"], [*TINY_NS[:-3], *scot, "model.use_conditioning=false",
                                             "data/task=all_to_all", "trainer.max_epochs=1"], tmp_path / "plain",
                              data_dir, check=False)  # its norms ignore the lead time: trained blind to it
    assert unconditioned.returncode == 2 and "ScOT does not take (as configured)" in unconditioned.stderr


@pytest.mark.slow
def test_burgers_trains_a_1d_fno_on_the_final_state(data_dir, tmp_path):
    run = tmp_path / "burgers"
    run_entry(["train.py"], ["data=burgers", "model=fno_1d", "data.problem.resolution=256", "data.problem.dt=1e-3",
                             "data.n_train=64", "data.n_val=8", "data.n_test=8", "data.batch_size=8",
                             "data.subsample=4", "data.test_subsamples=[1]", "data.generate_workers=1",
                             "model.hidden_channels=16", "trainer.max_epochs=10"], run, data_dir)
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert {k for k in metrics if k.startswith("test/")} == {"test/rel_l2_64", "test/rel_l2_256"}
    assert metrics["test/rel_l2_64"] < 0.3  # learnt in 80 steps (0.07 after 120 here); the mean guess scores 1
    # 1-D samples are drawn as curves (none were drawn): after training, and by predict.py
    assert (run / "plots" / "test_sample_0_64.png").stat().st_size > 5000
    predicted = run_entry(["predict.py"], [f"ckpt={run / 'checkpoints' / 'last.ckpt'}", f"out={tmp_path / 'p.nc'}",
                                           "plot_samples=[1]"], tmp_path / "predict", data_dir)
    assert "samples at 256 points" in predicted.stdout
    assert (tmp_path / "p_sample_1.png").stat().st_size > 5000


def test_a_time_dependent_dataset_without_a_task_is_a_clear_error(data_dir, tmp_path):
    result = run_entry(["train.py"], [*TINY_NS, "~data.task", "trainer.max_epochs=1"], tmp_path / "run", data_dir,
                       check=False)
    assert result.returncode == 2 and "data.task:" in result.stderr and "holds trajectories" in result.stderr


def test_burgers_problem_reports_its_times():
    problem = Burgers1D(resolution=64, final_time=0.3, record_every=0.1, dt=0.01)
    np.testing.assert_allclose(problem.times(), [0.1, 0.2, 0.3])
