"""End-to-end training through train.py: learning, repeatability, exact resume, loggers."""

import csv
import json

import pytest
import torch

pytestmark = pytest.mark.slow


def read_metrics(run_dir, key):
    with open(run_dir / "csv" / "metrics.csv") as f:
        return [float(row[key]) for row in csv.DictReader(f) if row.get(key)]


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_training_drops_validation_error_and_tests_every_resolution(train):
    result, run = train("trainer.max_epochs=25", "optim.lr=3e-3", "model.n_modes=[8,8]", "model.hidden_channels=16")
    printed = result.stdout + result.stderr
    # frameworks' noise silenced (pdeop/training/quiet.py)
    assert "litlogger" not in printed and "LeafSpec" not in printed
    val = read_metrics(run, "val/rel_l2")
    assert len(val) == 25
    assert min(val) < 0.35 * val[0], val
    results = json.loads((run / "test_metrics.json").read_text())
    assert results["checkpoint"].endswith(".ckpt") and "best-" in results["checkpoint"]
    assert results["test/rel_l2_17"] < 0.35 * val[0]
    # zero-shot super-resolution: the fine test grid is scored too, and the model has learnt there as well
    assert results["test/rel_l2_33"] < 0.5 * val[0]
    assert read_metrics(run, "time/samples_per_s")[0] > 0
    assert read_metrics(run, "lr-Adam")[0] == pytest.approx(3e-3)
    assert (run / "config_resolved.yaml").read_text().count("n_train: 64") == 1
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_same_seed_repeats_and_resume_continues_exactly(train):
    common = ("model.n_modes=[6,6]", "model.hidden_channels=8", "scheduler.fn.step_size=1", "scheduler.fn.gamma=0.7")
    _, full = train("trainer.max_epochs=3", *common, run_name="full")
    _, again = train("trainer.max_epochs=3", *common, run_name="again")
    _, part = train("trainer.max_epochs=1", "test_after_fit=false", *common, run_name="part")
    _, resumed = train("trainer.max_epochs=3", f"ckpt_path={part / 'checkpoints' / 'last.ckpt'}", *common,
                       run_name="resumed")
    # a run started again in its own directory (a requeued job) resumes from its last checkpoint
    train("trainer.max_epochs=1", "test_after_fit=false", *common, run_name="restarted")
    result, restarted = train("trainer.max_epochs=3", *common, run_name="restarted")
    assert "auto_resume" in result.stdout + result.stderr
    reference = load(full / "checkpoints" / "last.ckpt")
    for other in (again, resumed, restarted):
        state = load(other / "checkpoints" / "last.ckpt")
        assert state["epoch"] == reference["epoch"] == 2
        for key, tensor in reference["state_dict"].items():
            assert torch.equal(state["state_dict"][key], tensor), key
        assert state["lr_schedulers"][0]["last_epoch"] == reference["lr_schedulers"][0]["last_epoch"] == 3
        exp_avg = lambda s: s["optimizer_states"][0]["state"][0]["exp_avg"]  # noqa: E731
        assert torch.equal(exp_avg(state), exp_avg(reference))
    assert "input_normaliser.mean" in reference["state_dict"]
    assert reference["pdeop_config"]["data"]["n_train"] == 64
    _, other_seed = train("trainer.max_epochs=1", "seed=1", "test_after_fit=false", *common, run_name="seed1")
    first = load(part / "checkpoints" / "last.ckpt")["state_dict"]
    differs = load(other_seed / "checkpoints" / "last.ckpt")["state_dict"]
    assert any(not torch.equal(first[k], differs[k]) for k in first if k.startswith("model."))


@pytest.mark.parametrize("logger, produced", [("wandb", "wandb"), ("tensorboard", "tensorboard")])
def test_other_loggers_write_offline(train, logger, produced):
    _, run = train(f"logger={logger}", "trainer.max_epochs=1", "test_after_fit=false", "model.hidden_channels=8")
    assert any((run / produced).rglob("*")), f"{logger} wrote nothing under {run / produced}"
    if logger == "wandb":
        assert list((run / "wandb").glob("offline-run-*"))


@pytest.mark.parametrize("logger", ["tensorboard", "wandb"])
def test_test_pictures_go_to_the_run_directory_and_the_logger(train, logger):
    _, run = train(f"logger={logger}", "trainer.max_epochs=1", "model.hidden_channels=8",
                   "callbacks.prediction_plots.samples=2")
    pictures = sorted(p.name for p in (run / "plots").iterdir())
    assert pictures == ["error_by_resolution.png", "test_sample_0_17.png", "test_sample_1_17.png"]
    assert all((run / "plots" / name).stat().st_size > 5000 for name in pictures)
    if logger == "tensorboard":
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(next((run / "tensorboard").rglob("events.out.tfevents.*")).parent),
                                  size_guidance={"images": 0})
        events.Reload()
        assert {"test/sample_0", "test/sample_1", "test/error_by_resolution"} <= set(events.Tags()["images"])
        image = events.Images("test/sample_0")[0]
        assert image.width > 500 and image.height > 100
    else:
        logged = list((run / "wandb").rglob("media/images/test/sample_0_*.png"))
        assert logged and logged[0].stat().st_size > 5000


def test_onecycle_and_h1_options_train(train):
    _, run = train("scheduler=onecycle", "loss=h1", "optim=adamw", "trainer.max_epochs=2", "test_after_fit=false",
                   "model.hidden_channels=8")
    lrs = read_metrics(run, "lr-AdamW")
    assert lrs[0] == pytest.approx(1e-3 / 2.0)  # OneCycle starts at max_lr / div_factor
    assert lrs[1] != lrs[0]


def test_mgno_trains_with_its_paper_recipe(train):
    _, run = train("model=mgno", "+recipe=mgno", "model.channels=8", "model.num_layers=2",
                   "model.smoothing=[[1,0],[1,0],[2,0]]", "trainer.max_epochs=3")
    resolved = (run / "config_resolved.yaml").read_text()
    assert "FourierSobolevLoss" in resolved and "OneCycleLR" in resolved and "lr: 0.0005" in resolved
    val = read_metrics(run, "val/rel_l2")
    assert val[-1] < val[0]
    results = json.loads((run / "test_metrics.json").read_text())
    assert {k for k in results if k.startswith("test/")} == {"test/rel_l2_17", "test/rel_l2_33"}
    assert results["checkpoint"] and results["parameters"] > 0 and results["resources"]["peak_host_mib"] > 0


@pytest.mark.parametrize("model, overrides, recipe", [
    ("t1", ["model.modes=[6,6]", "model.width=8"], "pdeop.training.losses.TransformedRelativeL2"),
    ("t1", ["model.modes=[6,6]", "model.width=8", "model.transform=dft", "model.activation=tanh", "loss=rel_l2"],
     "torch.optim.AdamW"),
    ("lsm", ["model.width=8", "model.patch_size=[2,2]"], "lr: 0.0005"),
])
def test_every_model_config_trains_through_train_py(train, model, overrides, recipe):
    _, run = train(f"model={model}", f"+recipe={model}", *overrides, "trainer.max_epochs=2")
    assert recipe in (run / "config_resolved.yaml").read_text()
    results = json.loads((run / "test_metrics.json").read_text())
    assert all(0 < results[f"test/rel_l2_{res}"] < 10 for res in (17, 33))
