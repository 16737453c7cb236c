"""A run stopped by SIGTERM mid-epoch (preemption, a time limit, ``scancel``) writes its state on the way out and
resumes with the batches the uninterrupted run would have had: nothing of the epoch is lost or trained twice.

The stop is a real SIGTERM, sent by the process to itself after a named batch (``stop_at.SigtermAt``), so the
case is the same on every run; tests/faults/test_training_faults.py sends one from outside.
"""

from __future__ import annotations

import csv
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from pdeop.data.sampling import fit_position, training_sampler
from pdeop.data.stream import StreamBatches
from pdeop.training.callbacks import Throughput
from pdeop.errors import ConfigError
from pdeop.training.resume import Resume, check_goes_on_mid_epoch, configured_world_size, epoch_order
from pdeop.training.run import train
from pdeop.training.step_seed import seed_generators, step_seed
from test_device_path import checkpoint, composed, fake_trainer, learning_curve, tiny_datamodule

EPOCHS = 3
BATCHES = -(-64 // 12)  # SMALL_DATA: 64 training samples in batches of 12, the last one short


def stop_at(epoch: int, batch: int, run: Path) -> list[str]:
    """Overrides that SIGTERM the run in ``run`` after batch ``batch`` of epoch ``epoch``, once: the resumed run keeps
    them (its config must be the stopped run's)."""
    return ["+callbacks.sigterm._target_=stop_at.SigtermAt", f"+callbacks.sigterm.epoch={epoch}",
            f"+callbacks.sigterm.batch={batch}", f"+callbacks.sigterm.marker={run.parent / 'sigterm-sent'}"]


def stopped_then_resumed(run: Path, data_dir: Path, *overrides: str) -> dict:
    """Train ``overrides`` until their SIGTERM, then again in the same folder (auto_resume); the checkpoint the
    SIGTERM left."""
    with pytest.raises(SystemExit):
        train(composed(run, data_dir, f"trainer.max_epochs={EPOCHS}", *overrides))
    left = checkpoint(run)
    with warnings.catch_warnings():
        # Lightning's warning that the loader cannot resume mid-epoch is moot for pdeop's data modules
        warnings.filterwarnings("error", message="You're resuming from a checkpoint that ended before the epoch")
        train(composed(run, data_dir, f"trainer.max_epochs={EPOCHS}", *overrides))
    return left


def assert_same_run(run: Path, reference: Path) -> None:
    """Weights, optimiser state and every logged value (timings aside) bit for bit the reference's."""
    state, expected = checkpoint(run), checkpoint(reference)
    assert state["epoch"] == expected["epoch"] and state["global_step"] == expected["global_step"]
    for key, tensor in expected["state_dict"].items():
        assert torch.equal(state["state_dict"][key], tensor), key
    moments = lambda s: [v["exp_avg_sq"] for v in s["optimizer_states"][0]["state"].values()]  # noqa: E731
    assert all(torch.equal(a, b) for a, b in zip(moments(state), moments(expected)))
    assert learning_curve(run) == learning_curve(reference)


def epoch_times(run: Path) -> list[float]:
    with open(run / "csv" / "metrics.csv") as f:
        return [float(row["time/epoch_s"]) for row in csv.DictReader(f) if row.get("time/epoch_s")]


@pytest.fixture(scope="module")
def straight(tmp_path_factory, data_dir) -> Path:
    """The uninterrupted run (served by the DataLoader; device-resident batches are the same, test_device_path)."""
    run = tmp_path_factory.mktemp("straight") / "run"
    train(composed(run, data_dir, f"trainer.max_epochs={EPOCHS}", "data.device_resident=false"))
    return run


@pytest.mark.parametrize("world", [1, 2])
def test_the_training_order_resumes_after_the_batches_taken(data_dir, tmp_path, world):
    """Loader and device batches of an epoch resumed after k batches are the uninterrupted epoch's from the k-th."""
    loader_module = tiny_datamodule(data_dir, tmp_path, "data.device_resident=false")
    resident_module = tiny_datamodule(data_dir, tmp_path, "data.device_resident=true")
    for rank in range(world):
        for epoch in (0, 3):
            whole, rest = [], []
            for taken, batches in ((0, whole), (2, rest)):  # 2: a checkpoint written after the epoch's 2nd batch
                for module in (loader_module, resident_module):
                    module.trainer = fake_trainer(rank, world, epoch=epoch, batches_taken=taken)
                loaders = loader_module.train_dataloader(), resident_module.train_dataloader()
                batches.extend(list(loader) for loader in loaders)
            assert len(whole[0]) == len(whole[1]) == len(loaders[0]) > 2
            for complete, resumed in zip(whole, rest):
                assert len(resumed) == len(complete) - 2
                for (x, y), (rx, ry) in zip(complete[2:], resumed):
                    assert torch.equal(x, rx) and torch.equal(y, ry)


def test_the_training_sampler_leaves_out_what_was_taken_and_keeps_the_epochs_length():
    plain = training_sampler(range(10), seed=3)
    plain.set_epoch(1)
    resumed = training_sampler(range(10), seed=3, batch_size=2, position=lambda: (1, 2))  # set_epoch not called
    assert list(resumed) == list(plain)[4:] and len(resumed) == len(plain) == 10


def counters(started: int, processed: int, completed: int, ready: int, is_last_batch: bool,
             fn: str = "fit") -> SimpleNamespace:
    """A trainer as fit_position reads it: what it is running, and Lightning's epoch and batch progress counters."""
    batches = SimpleNamespace(current=SimpleNamespace(ready=ready), is_last_batch=is_last_batch)
    epochs = SimpleNamespace(current=SimpleNamespace(started=started, processed=processed, completed=completed))
    return SimpleNamespace(state=SimpleNamespace(fn=fn), fit_loop=SimpleNamespace(
        epoch_progress=epochs, epoch_loop=SimpleNamespace(batch_progress=batches)))


@pytest.mark.parametrize(("state", "position"), [
    ((0, 0, 0, 0, False), (0, 0)),  # a fresh run, before its first batch
    ((3, 2, 2, 0, False), (2, 0)),  # epoch 2 begins (counters reset)
    ((3, 2, 2, 3, False), (2, 3)),  # a checkpoint written after epoch 2's third batch (SIGTERM)
    ((3, 3, 2, 6, True), (3, 0)),  # one written in epoch 2's end hooks (on_train_epoch_end), read before the reset
    ((3, 2, 2, 6, True), (3, 0)),  # one written at the end of epoch 2's validation
    ((3, 3, 3, 6, True), (3, 0)),  # one written on SIGTERM after epoch 2's end hooks (validation not every epoch)
    ((3, 3, 2, 4, False), (3, 0)),  # epoch 2 cut short by max_steps: Lightning resumes at the next epoch
])
def test_the_fit_position_is_the_epoch_and_batch_the_run_goes_on_from(state, position):
    assert fit_position(counters(*state)) == position
    assert fit_position(None) is None and fit_position(counters(*state, fn="validate")) is None


def test_an_online_epoch_resumed_mid_way_draws_only_its_remaining_steps():
    drawn = []

    class Stream:
        def get(self):
            drawn.append(1)
            return torch.zeros(1, 4).numpy(), torch.ones(1, 4).numpy()

    batches = StreamBatches(Stream(), batch_size=3, steps_per_epoch=5, taken=lambda: 2)
    assert len(batches) == 5 and len(list(batches)) == 3 and len(drawn) == 3 * 3


PATHS = {"loader": ["data.device_resident=false"], "resident": ["data.device_resident=true"],
         "workers": ["data.device_resident=false", "data.num_workers=2"]}  # workers draw indices at iter()


@pytest.mark.parametrize("path", list(PATHS))
def test_sigterm_mid_epoch_writes_the_state_and_the_resumed_run_is_the_uninterrupted_one(straight, data_dir, tmp_path,
                                                                                         path):
    run = tmp_path / "run"
    left = stopped_then_resumed(run, data_dir, *PATHS[path], *stop_at(1, 2, run))
    assert (left["epoch"], left["global_step"]) == (1, BATCHES + 3)  # written after epoch 1's third batch
    assert left["pdeop_epoch_loss"]["weight"] == [3 * 12]  # epoch 1's loss so far, which its train/loss goes on from
    assert left["callbacks"]["Throughput"]["samples"] == 3 * 12  # and its throughput
    assert_same_run(run, straight)
    assert len(epoch_times(run)) == EPOCHS


@pytest.mark.parametrize("path", list(PATHS))
def test_a_run_resumed_at_an_epochs_end_trains_every_later_epoch_in_order(straight, data_dir, tmp_path, path):
    run = tmp_path / "run"
    train(composed(run, data_dir, "trainer.max_epochs=1", *PATHS[path]))
    train(composed(run, data_dir, f"trainer.max_epochs={EPOCHS}", *PATHS[path]))  # auto_resume
    assert_same_run(run, straight)


def test_sigterm_during_validation_writes_nothing_and_the_run_resumes_from_the_checkpoint_before(straight, data_dir,
                                                                                                tmp_path):
    """After epoch 1's last batch the signal stops the run in its validation; a checkpoint written there would be
    taken for one written after that batch, and the resumed run would skip the validation (its row and the choice
    of the best checkpoint)."""
    run = tmp_path / "run"
    left = stopped_then_resumed(run, data_dir, *stop_at(1, BATCHES - 1, run))
    assert (left["epoch"], left["global_step"]) == (0, BATCHES)  # epoch 0's
    assert_same_run(run, straight)


def test_throughput_counts_on_from_the_epochs_figures_before_the_stop():
    throughput = Throughput()
    throughput.load_state_dict({"samples": 36, "seconds": 5.0})
    throughput.on_train_start(None, None)
    assert throughput._samples == 36 and time.perf_counter() - throughput._start >= 5.0
    throughput.on_train_epoch_start(None, None)  # the next epoch counts afresh
    assert throughput._samples == 0 and time.perf_counter() - throughput._start < 5.0


@pytest.mark.parametrize(("batch", "written_at"), [(2, "epoch 0's end"), (3, "the stop")])
def test_with_accumulated_gradients_only_a_stop_between_optimiser_steps_is_written(data_dir, tmp_path, batch,
                                                                                   written_at):
    """Gradients summed over batches of one step are in no checkpoint: a stop between them resumes from the
    checkpoint before. Either way the resumed run is the uninterrupted one."""
    accumulate = ["+trainer.accumulate_grad_batches=2"]
    reference = tmp_path / "reference"
    train(composed(reference, data_dir, f"trainer.max_epochs={EPOCHS}", *accumulate))
    run = tmp_path / "run"
    left = stopped_then_resumed(run, data_dir, *accumulate, *stop_at(1, batch, run))
    steps_per_epoch = -(-BATCHES // 2)
    expected = (0, steps_per_epoch) if written_at == "epoch 0's end" else (1, steps_per_epoch + 2)
    assert (left["epoch"], left["global_step"]) == expected
    assert_same_run(run, reference)


@pytest.mark.slow
def test_an_online_run_stopped_mid_epoch_goes_on_with_the_epochs_remaining_steps(data_dir, tmp_path):
    """The stream's order depends on its workers' timing, so an online run never repeats bit for bit; what holds is
    that the resumed run continues the stream and trains each epoch's steps once."""
    stream = ["data.online=true", "data.stream.watermark=16", "data.stream.capacity=16",
              "data.stream.steps_per_epoch=4", "data.stream.normaliser_samples=16", "data.stream.workers=1"]
    run = tmp_path / "run"
    left = stopped_then_resumed(run, data_dir, *stream, *stop_at(1, 1, run))
    assert (left["epoch"], left["global_step"]) == (1, 4 + 2)
    generated = sum(left["OnlineDataModule"]["stream_counters"][0])
    finished = checkpoint(run)
    assert (finished["epoch"], finished["global_step"]) == (EPOCHS - 1, EPOCHS * 4)
    assert sum(finished["OnlineDataModule"]["stream_counters"][0]) > generated > 0  # the stream went on
    with open(run / "csv" / "metrics.csv") as f:
        logged = [int(row["epoch"]) for row in csv.DictReader(f) if row.get("train/loss")]
    assert logged == list(range(EPOCHS))


@pytest.mark.parametrize("accumulate", [1, 4])
def test_sigterm_at_an_epochs_last_batch_without_its_validation_resumes_at_the_next_epoch(data_dir, tmp_path,
                                                                                          accumulate):
    """Validating every other epoch, a SIGTERM at epoch 2's last batch stops the run after that epoch's end hooks,
    where the `latest` checkpoint is written (the last batch steps, however many it accumulates). The loader's
    workers draw their first indices before Lightning's counters move on: they must still draw epoch 3's order."""
    settings = [*PATHS["workers"], "+trainer.check_val_every_n_epoch=2", "trainer.max_epochs=4",
                f"+trainer.accumulate_grad_batches={accumulate}"]
    reference, run = tmp_path / "reference", tmp_path / "run"
    train(composed(reference, data_dir, *settings))
    with pytest.raises(SystemExit):
        train(composed(run, data_dir, *settings, *stop_at(2, BATCHES - 1, run)))
    left = checkpoint(run)
    steps = -(-BATCHES // accumulate)
    assert (left["epoch"], left["global_step"]) == (2, 3 * steps)  # written in epoch 2's end hooks
    train(composed(run, data_dir, *settings, *stop_at(2, BATCHES - 1, run)))
    assert_same_run(run, reference)


# a tiny scOT with dropout: its training steps draw masks from torch's generator
DROPOUT = ["model=scot", "model.image_size=16", "model.embed_dim=8", "model.depths=[1,1,1,1]",
           "model.num_heads=[1,2,2,4]", "model.skip_connections=[1,0,0,0]", "model.window_size=2", "model.patch_size=2",
           "+model.hidden_dropout_prob=0.2", "+model.attention_probs_dropout_prob=0.2"]


@pytest.mark.parametrize("stop", ["mid-epoch", "epoch end"])
def test_a_model_drawing_dropout_masks_resumes_to_the_uninterrupted_runs_weights(data_dir, tmp_path, stop):
    """Lightning's checkpoints hold no generator state; steps seeded by their place in the run (StepSeed) draw the
    same masks whether or not the run was stopped before them."""
    reference, run = tmp_path / "reference", tmp_path / "run"
    train(composed(reference, data_dir, f"trainer.max_epochs={EPOCHS}", *DROPOUT))
    if stop == "mid-epoch":
        stopped_then_resumed(run, data_dir, *DROPOUT, *stop_at(1, 2, run))
    else:
        train(composed(run, data_dir, "trainer.max_epochs=1", *DROPOUT))
        train(composed(run, data_dir, f"trainer.max_epochs={EPOCHS}", *DROPOUT))
    assert_same_run(run, reference)


def test_every_step_and_rank_draws_from_a_stream_of_its_own_and_the_same_one_again():
    seeds = {step_seed(0, rank, epoch, batch) for rank in range(2) for epoch in range(3) for batch in range(5)}
    assert len(seeds | {step_seed(1, 0, 0, 0)}) == 2 * 3 * 5 + 1
    masks = []
    for _ in range(2):
        seed_generators(step_seed(0, 1, 2, 3), torch.device("cpu"))
        masks.append(torch.nn.functional.dropout(torch.ones(64), 0.5))
    assert torch.equal(*masks) and 0 < int((masks[0] == 0).sum()) < 64


def test_a_checkpoint_written_mid_epoch_goes_on_only_where_the_epochs_rest_is_what_it_left(data_dir, tmp_path):
    """The epoch's rest is the same order less the batches taken, shared out by rank: another number of processes,
    batch size or shuffle seed would train samples twice or not at all. Refused before anything is written, so the
    run folder still resumes as it was."""
    stopped = tmp_path / "stopped"
    with pytest.raises(SystemExit):
        train(composed(stopped, data_dir, *stop_at(1, 2, stopped)))
    last = stopped / "checkpoints" / "last.ckpt"
    ddp = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
    with pytest.raises(ConfigError, match=rf"ckpt_path: {last} was written mid-epoch \(epoch 1, after 3 batches\) by "
                                          r"1 process and this run has 2: .* resume with 1 \(trainer.devices"):
        train(composed(stopped, data_dir, *ddp, f"ckpt_path={last}", *stop_at(1, 2, stopped)))
    with pytest.raises(ConfigError, match=r"mid-epoch \(epoch 1, after 3 batches\) with data.batch_size=12 and this "
                                          r"run has 8: the epoch's rest would hold other samples"):
        train(composed(tmp_path / "other", data_dir, "data.batch_size=8", f"ckpt_path={last}"))
    train(composed(stopped, data_dir, f"trainer.max_epochs={EPOCHS}", *stop_at(1, 2, stopped)))  # auto_resume
    assert checkpoint(stopped)["epoch"] == EPOCHS - 1
    order = {"data.batch_size": 12}
    at_the_end = Resume(str(last), 0, {}, position=(2, 0), ranks=1, order=order)  # any number goes on there
    check_goes_on_mid_epoch(at_the_end, {"data": {"batch_size": 8}}, 2, sharded=True)
    drawn = Resume(str(last), 0, {}, position=(1, 3), ranks=1, order=order)  # each rank draws its own points
    check_goes_on_mid_epoch(drawn, {"data": {"batch_size": 12}}, 2, sharded=False)
    for before, now in (({"n_train": None, "n_val": 4}, {"n_train": None, "n_val": 8}),  # from_file: the rest trains
                        ({"steps_per_epoch": 100}, {"steps_per_epoch": 50})):  # physics-informed steps
        cut = Resume(str(last), 0, {}, position=(1, 60), ranks=1, order=epoch_order({"data": before}))
        with pytest.raises(ConfigError, match="the epoch's rest would hold other samples"):
            check_goes_on_mid_epoch(cut, {"data": now}, 1, sharded=False)
    generated = Resume(str(last), 0, {}, position=(1, 3), ranks=1, order=epoch_order({"data": {"n_train": 64}}))
    check_goes_on_mid_epoch(generated, {"data": {"n_train": 64, "n_val": 8}}, 1, sharded=True)  # a set count
    assert configured_world_size({"devices": 4, "num_nodes": 2}) == 8
    assert configured_world_size({"devices": "auto", "num_nodes": 1}) is None


def test_a_run_whose_epoch_max_steps_cut_short_is_not_extended_past_it(straight, data_dir, tmp_path, caplog):
    """Lightning counts the cut epoch as done (validated, its schedule stepped): a longer run from there would start
    the next epoch and never train the rest of it."""
    run = tmp_path / "run"
    train(composed(run, data_dir, f"trainer.max_epochs={EPOCHS}", f"+trainer.max_steps={BATCHES + 2}"))
    train(composed(run, data_dir, f"trainer.max_epochs={EPOCHS}", f"+trainer.max_steps={BATCHES + 2}"))  # no further
    with pytest.raises(ConfigError, match=rf"auto_resume: .*last.ckpt was written when the run stopped at step "
                                          rf"{BATCHES + 2} \(trainer.max_steps\) after 2 batches of epoch 1; training "
                                          r"on from it would skip the rest of that epoch; use a new hydra.run.dir"):
        train(composed(run, data_dir, f"trainer.max_epochs={EPOCHS}"))
    assert checkpoint(run)["global_step"] == BATCHES + 2
    elsewhere = tmp_path / "elsewhere"  # ckpt_path= may (a fine-tuning start, say), and is told
    train(composed(elsewhere, data_dir, "trainer.max_epochs=3", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"))
    assert "would skip the rest of that epoch" in caplog.text
    run = tmp_path / "stopped"  # another stop mid-epoch (max_time, early stopping) is not refused: a requeued job
    stop = [*stop_at(1, 2, run), "callbacks.sigterm._target_=stop_at.StopAt"]  # whose fit had ended tests
    train(composed(run, data_dir, f"trainer.max_epochs={EPOCHS}", *stop))
    assert checkpoint(run)["global_step"] == BATCHES + 3
    train(composed(run, data_dir, f"trainer.max_epochs={EPOCHS}", *stop, "test_after_fit=true"))
    run = tmp_path / "whole"  # a max_steps at an epoch's end goes on
    train(composed(run, data_dir, f"trainer.max_epochs={EPOCHS}", f"+trainer.max_steps={BATCHES}"))
    train(composed(run, data_dir, f"trainer.max_epochs={EPOCHS}"))
    assert_same_run(run, straight)


def test_validating_within_epochs_a_run_stopped_in_a_validation_resumes_with_its_whole_history(data_dir, tmp_path):
    """With validation twice an epoch, `latest` was written at each validation's end, before the epoch's end hooks:
    the resumed run dropped the epoch's last validation row along with the rows it redoes. It is written after the
    end hooks; a SIGTERM in the mid-epoch validation resumes from there."""
    validation = ["+trainer.val_check_interval=0.5"]
    reference, run = tmp_path / "reference", tmp_path / "run"
    train(composed(reference, data_dir, f"trainer.max_epochs={EPOCHS}", *validation))
    stopped_then_resumed(run, data_dir, *validation, *stop_at(1, 2, run))
    assert_same_run(run, reference)


def test_validating_every_other_epoch_the_latest_state_is_written_every_epoch(data_dir, tmp_path):
    """`latest` was written only after validations: a run killed in an epoch without one restarted two epochs back."""
    validation = ["+trainer.check_val_every_n_epoch=2"]
    reference, run = tmp_path / "reference", tmp_path / "run"
    train(composed(reference, data_dir, f"trainer.max_epochs={EPOCHS}", *validation))
    train(composed(run, data_dir, "trainer.max_epochs=1", *validation))
    assert checkpoint(run)["global_step"] == BATCHES
    train(composed(run, data_dir, f"trainer.max_epochs={EPOCHS}", *validation))
    assert_same_run(run, reference)


def test_validating_within_epochs_a_crash_resumes_from_the_last_validation(data_dir, tmp_path):
    """`latest` is also written after a validation within an epoch: a crash (out of memory, a lost node: no SIGTERM)
    late in a long epoch resumes from there, with the uninterrupted run's weights and history."""
    validation = ["+trainer.val_check_interval=0.5"]
    reference, run = tmp_path / "reference", tmp_path / "run"
    train(composed(reference, data_dir, f"trainer.max_epochs={EPOCHS}", *validation))
    crash = [*stop_at(1, 4, run), "callbacks.sigterm._target_=stop_at.CrashAt"]
    with pytest.raises(RuntimeError, match="CrashAt"):
        train(composed(run, data_dir, f"trainer.max_epochs={EPOCHS}", *validation, *crash))
    assert checkpoint(run)["global_step"] == BATCHES + 3  # after epoch 1's validation at its third batch
    train(composed(run, data_dir, f"trainer.max_epochs={EPOCHS}", *validation, *crash))
    assert_same_run(run, reference)
