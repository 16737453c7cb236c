"""Training loses nothing to a crash: kill -9, damaged or foreign checkpoints, a full disk, a moved or read-only run.

Every run is the same tiny, deterministic CPU training (``COMMON``, three epochs unless a test says
otherwise), so a run that was interrupted and resumed must end with the very weights and metrics of
the uninterrupted ``reference`` run.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY_DATA, run_command, run_entry

from .conftest import (entry_command, entry_env, kill_when, pdeop_error_line, read_only, small_disk,
                       start)

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parents[1]  # where the stop_at callbacks live, for the runs' PYTHONPATH


def stop_at_env(data_dir: Path) -> dict[str, str]:
    """The entry points' environment, with tests/ on the path so that a run's config can name tests/stop_at.py."""
    return entry_env(data_dir, PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))

EPOCHS = 3
COMMON = [*TINY_DATA, "model.n_modes=[6,6]", "model.hidden_channels=8", "scheduler.fn.step_size=1",
          "scheduler.fn.gamma=0.7", "test_after_fit=false"]
PER_EPOCH = ("val/rel_l2", "train/loss")  # the values one epoch logs once, equal in every run of COMMON


def command(run_dir: Path, *overrides: str, epochs: int = EPOCHS) -> list[str]:
    return entry_command(["train.py"], [*COMMON, f"trainer.max_epochs={epochs}", *overrides], run_dir)


def run(cmd: list[str], data_dir: Path) -> subprocess.CompletedProcess:
    return run_command(cmd, 300, env=entry_env(data_dir))


def prepare(run_dir: Path, data_dir: Path, *overrides: str, epochs: int = EPOCHS) -> None:
    """The run a fault is then applied to, trained in this process (``conftest.run_entry``): only what happens
    after the fault is the case's observation, and that runs as the user's own command, in a process of its own."""
    run_entry(["train.py"], [*COMMON, f"trainer.max_epochs={epochs}", *overrides], run_dir, data_dir)


def succeeded(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def output(result: subprocess.CompletedProcess) -> str:
    """What a run printed: Hydra's log lines go to stdout, warnings and errors to stderr."""
    return result.stdout + result.stderr


def rows(run_dir: Path) -> list[dict]:
    path = run_dir / "csv" / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def per_epoch(run_dir: Path) -> dict[tuple[str, int], float]:
    """``(key, epoch) -> value`` for the per-epoch metrics, asserting each was logged once."""
    seen = [(key, int(row["epoch"]), float(row[key])) for row in rows(run_dir) for key in PER_EPOCH if row.get(key)]
    values = {(key, epoch): value for key, epoch, value in seen}
    assert len(values) == len(seen), f"an epoch logged twice: {sorted(seen)}"
    return values


def epoch_logged(run_dir: Path, epoch: int) -> bool:
    """Whether epoch ``epoch`` has logged its training loss, which Lightning does just after handing its checkpoint
    to the background writer (``BackgroundCheckpointIO``): the file may still be on its way."""
    return any(row.get("epoch") == str(epoch) and row.get("train/loss") for row in rows(run_dir))


def epoch_saved(run_dir: Path, epoch: int) -> bool:
    """Whether last.ckpt holds epoch ``epoch`` or a later one (it is replaced atomically, so always readable)."""
    path = run_dir / "checkpoints" / "last.ckpt"
    return path.is_file() and load(path)["epoch"] >= epoch


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def same_weights(a: Path, b: Path) -> bool:
    first, second = load(a), load(b)
    return first["epoch"] == second["epoch"] and all(
        torch.equal(tensor, second["state_dict"][key]) for key, tensor in first["state_dict"].items())


def assert_continues_reference(run_dir: Path, reference: Path) -> None:
    """One row set per epoch, each value the uninterrupted run's, and its final weights bit for bit."""
    values = per_epoch(run_dir)
    assert values == per_epoch(reference)
    assert sorted({epoch for _, epoch in values}) == list(range(EPOCHS))
    assert same_weights(run_dir / "checkpoints" / "last.ckpt", reference / "checkpoints" / "last.ckpt")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir) -> Path:
    """The uninterrupted run every resumed one must equal."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    prepare(run_dir, data_dir)
    return run_dir


@pytest.mark.fault("kill -9 of train.py just after epoch {epoch}'s checkpoint, then the same command again",
                   "resumes: exit 0, metrics.csv one row set per epoch, earlier rows unchanged, final weights "
                   "bit-identical to an uninterrupted run")
@pytest.mark.parametrize("epoch", [0, 1])
def test_kill_9_and_the_same_command_continue_exactly(reference, data_dir, tmp_path, observed, epoch):
    run_dir = tmp_path / "run"
    kill_when(start(command(run_dir), entry_env(data_dir)), lambda: epoch_saved(run_dir, epoch))
    before = per_epoch(run_dir)
    result = succeeded(run(command(run_dir), data_dir))
    assert "resuming from" in output(result)
    assert_continues_reference(run_dir, reference)
    assert before.items() <= per_epoch(run_dir).items()
    observed(f"killed with epochs {sorted({e for _, e in before})} logged; rerun exit 0, "
             f"{len(per_epoch(run_dir))} per-epoch values, all equal to the uninterrupted run's; weights identical")


@pytest.mark.fault("SIGTERM to train.py (a scheduler's time limit, scancel) just after epoch 0's checkpoint, then the "
                   "same command again", "exit 143 and one line naming the checkpoint to resume from; the rerun "
                   "continues: one row set per epoch, final weights bit-identical to an uninterrupted run")
def test_sigterm_exits_143_and_the_same_command_continues_exactly(reference, data_dir, tmp_path, observed):
    run_dir = tmp_path / "run"
    process = start(command(run_dir), entry_env(data_dir))
    _, stderr = kill_when(process, lambda: epoch_saved(run_dir, 0), signum=signal.SIGTERM)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    line = f"pdeop: training stopped by SIGTERM; the same command with hydra.run.dir={run_dir} resumes it from "
    assert line in stderr and "Traceback" not in stderr, stderr[-3000:]
    result = succeeded(run(command(run_dir), data_dir))
    assert "resuming from" in output(result)
    assert_continues_reference(run_dir, reference)
    observed(f"exit {process.returncode}, '{stderr.strip().splitlines()[-1][:90]}...'; rerun exit 0, per-epoch "
             f"values and final weights equal to the uninterrupted run's")


@pytest.mark.fault("SIGTERM to train.py in the middle of epoch 1 (held after its 3rd of 8 batches until the signal "
                   "comes), then the same command again",
                   "exit 143 and the resume line; last.ckpt holds the state after that batch; the rerun trains the "
                   "epoch's other 5 batches: one row set per epoch, final weights bit-identical to an uninterrupted "
                   "run")
def test_sigterm_mid_epoch_is_written_and_the_same_command_continues_exactly(reference, data_dir, tmp_path, observed):
    run_dir, held = tmp_path / "run", tmp_path / "held-at-batch"
    hold = ["+callbacks.hold._target_=stop_at.PauseAt", "+callbacks.hold.epoch=1", "+callbacks.hold.batch=2",
            f"+callbacks.hold.marker={held}"]  # tests/stop_at.py, in both runs: the rerun's config is the same
    env = stop_at_env(data_dir)
    process = start(command(run_dir, *hold), env)
    _, stderr = kill_when(process, held.exists, signum=signal.SIGTERM)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert f"hydra.run.dir={run_dir} resumes it from last.ckpt" in stderr, stderr[-3000:]
    left = load(run_dir / "checkpoints" / "last.ckpt")
    batches = 64 // 8
    assert (left["epoch"], left["global_step"]) == (1, batches + 3)
    result = succeeded(run_command(command(run_dir, *hold), 300, env=env))
    assert "resuming from" in output(result)
    assert_continues_reference(run_dir, reference)
    observed(f"exit {process.returncode}; last.ckpt at epoch {left['epoch']}, step {left['global_step']}; rerun exit "
             f"0, per-epoch values and final weights equal to the uninterrupted run's")


@pytest.mark.fault("SIGTERM to both ranks of a two-process DDP run (scancel, a time limit), rank 0 held after its "
                   "2nd batch of epoch 1 while rank 1 waits in the next batch's gradient all-reduce, then the same "
                   "command again",
                   "the ranks stop after the same batch (no hang): exit 143 within seconds and one resume line; "
                   "last.ckpt holds that batch's state; the rerun's per-epoch values and final weights are "
                   "bit-identical to an uninterrupted two-process run's")
def test_sigterm_to_every_rank_stops_them_together_and_the_same_command_continues_exactly(data_dir, tmp_path,
                                                                                            observed):
    ddp = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
    reference = tmp_path / "reference"
    succeeded(run(command(reference, *ddp), data_dir))
    run_dir, held = tmp_path / "run", tmp_path / "held-at-batch"
    hold = [*ddp, "+callbacks.hold._target_=stop_at.PauseAt", "+callbacks.hold.epoch=1", "+callbacks.hold.batch=1",
            "+callbacks.hold.rank=0", f"+callbacks.hold.marker={held}"]
    env = stop_at_env(data_dir)
    process = start(command(run_dir, *hold), env)
    while not held.exists() and process.poll() is None:
        time.sleep(0.05)
    sent = time.monotonic()
    os.killpg(process.pid, signal.SIGTERM)  # every rank, as scancel's signal reaches every task
    try:
        _, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError(f"the ranks hung after SIGTERM:\n{process.communicate()[1][-3000:]}") from None
    took = time.monotonic() - sent
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert stderr.count("pdeop: training stopped by SIGTERM") == 1, stderr[-3000:]
    left = load(run_dir / "checkpoints" / "last.ckpt")
    per_rank = 64 // (8 * 2)
    assert (left["epoch"], left["global_step"]) == (1, per_rank + 3)  # both ranks stopped after batch 2
    succeeded(run_command(command(run_dir, *hold), 300, env=env))
    assert same_weights(run_dir / "checkpoints" / "last.ckpt", reference / "checkpoints" / "last.ckpt")
    assert per_epoch(run_dir) == per_epoch(reference)  # epoch 1's train/loss: each rank's sum went on from its own
    observed(f"exit {process.returncode} {took:.1f} s after SIGTERM, one resume line; last.ckpt at epoch "
             f"{left['epoch']}, step {left['global_step']}; rerun's per-epoch values and weights equal to the "
             f"uninterrupted run's")


@pytest.mark.fault("kill -9 of train.py as soon as epoch 1 has logged, its checkpoint perhaps still being written in "
                   "the background, then the same command again",
                   "continues from whichever checkpoint is on disk (never a partial one): exit 0, one row set per "
                   "epoch, final weights bit-identical to an uninterrupted run")
def test_kill_9_while_a_checkpoint_is_written_continues_exactly(reference, data_dir, tmp_path, observed):
    run_dir = tmp_path / "run"
    kill_when(start(command(run_dir), entry_env(data_dir)), lambda: epoch_logged(run_dir, 1))
    on_disk = load(run_dir / "checkpoints" / "last.ckpt")["epoch"] if epoch_saved(run_dir, 0) else None
    result = succeeded(run(command(run_dir), data_dir))
    assert ("resuming from" in output(result)) == (on_disk is not None)
    assert "auto_resume:" not in output(result)  # no checkpoint found damaged
    assert_continues_reference(run_dir, reference)
    observed(f"killed with last.ckpt at epoch {on_disk}; rerun exit 0, {len(per_epoch(run_dir))} per-epoch values, "
             f"all equal to the uninterrupted run's; weights identical")


@pytest.mark.fault("last.ckpt cut in half (other checkpoints intact), then the run started again",
                   "one warning naming last.ckpt, resumes from the newest readable best-*.ckpt, finishes exactly; "
                   "the broken file kept as last.ckpt.broken")
def test_truncated_last_checkpoint_resumes_from_best(reference, data_dir, tmp_path, observed):
    run_dir = tmp_path / "run"
    prepare(run_dir, data_dir, epochs=EPOCHS - 1)
    last = run_dir / "checkpoints" / "last.ckpt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    result = succeeded(run(command(run_dir), data_dir))
    warnings = [line for line in output(result).splitlines() if "auto_resume:" in line and "last.ckpt" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0], output(result)[-3000:]
    resumed = next(line for line in output(result).splitlines() if "resuming from" in line)
    assert "best-" in resumed
    assert (run_dir / "checkpoints" / "last.ckpt.broken").read_bytes() == data[: len(data) // 2]
    assert_continues_reference(run_dir, reference)
    observed(f"warning: {warnings[0].split('] - ')[-1]}; {resumed.split('] - ')[-1]}; exit 0, weights identical")


@pytest.mark.fault("every checkpoint of the run unreadable (random bytes), then the run started again",
                   "a warning for each, a warning that it starts over, the files kept as *.broken, the old metrics "
                   "moved to csv/previous-1/; finishes as an uninterrupted run")
def test_no_readable_checkpoint_starts_over(reference, data_dir, tmp_path, observed):
    run_dir = tmp_path / "run"
    prepare(run_dir, data_dir, epochs=1)
    old_metrics = (run_dir / "csv" / "metrics.csv").read_text()
    checkpoints = sorted((run_dir / "checkpoints").glob("*.ckpt"))
    for path in checkpoints:
        path.write_bytes(os.urandom(4096))
    result = succeeded(run(command(run_dir), data_dir))
    assert "starting over" in output(result) and "resuming from" not in output(result)
    assert all(path.with_name(path.name + ".broken").is_file() for path in checkpoints)
    assert (run_dir / "csv" / "previous-1" / "metrics.csv").read_text() == old_metrics
    assert_continues_reference(run_dir, reference)
    observed(f"{len(checkpoints)} warnings, started over; kept {', '.join(p.name + '.broken' for p in checkpoints)} "
             f"and csv/previous-1/metrics.csv; weights identical to an uninterrupted run")


@pytest.mark.fault("the run directory on a small tmpfs that fills up at epoch 1's checkpoint",
                   "one pdeop error line naming the checkpoint directory (exit 2), no temporary files left, "
                   "the previous last.ckpt whole and loadable")
def test_checkpoint_on_a_full_disk_is_one_error_and_keeps_the_last(reference, data_dir, tmp_path, observed):
    size = (reference / "checkpoints" / "last.ckpt").stat().st_size
    with small_disk(tmp_path / "disk", f"{(5 * size // 2 + 65536) // 1024}k") as disk:
        run_dir = disk / "run"
        result = run(command(run_dir), data_dir)
        assert result.returncode == 2, result.stderr[-3000:]
        line = pdeop_error_line(result.stderr)
        assert f"'{run_dir / 'checkpoints'}' is on a full disk" in line
        leftovers = [p.name for p in (run_dir / "checkpoints").iterdir() if not p.name.endswith(".ckpt")]
        assert leftovers == []
        assert load(run_dir / "checkpoints" / "last.ckpt")["epoch"] == 0
    observed(f"exit 2: {line}; no temporary files; last.ckpt (epoch 0) loads")


def pickled_checkpoint(path: Path, reference: Path) -> None:
    """A checkpoint that needs arbitrary unpickling (an object, not only tensors)."""
    torch.save({**load(reference / "checkpoints" / "last.ckpt"), "hparams": argparse.Namespace(lr=1.0)}, path)


HOSTILE_CHECKPOINTS = {
    "pickle": pickled_checkpoint,
    "random bytes": lambda path, reference: path.write_bytes(os.urandom(65536)),
    "truncated": lambda path, reference: path.write_bytes(
        (reference / "checkpoints" / "last.ckpt").read_bytes()[:50000]),
}


@pytest.mark.fault("train.py ckpt_path= a checkpoint file that is {kind}", "exit 2, one pdeop error line naming "
                                                                          "ckpt_path and the file, no traceback")
@pytest.mark.parametrize("kind", list(HOSTILE_CHECKPOINTS))
def test_hostile_ckpt_path_is_one_line(reference, data_dir, tmp_path, observed, kind):
    path = tmp_path / "given.ckpt"
    HOSTILE_CHECKPOINTS[kind](path, reference)
    result = run(command(tmp_path / "run", f"ckpt_path={path}"), data_dir)
    assert result.returncode == 2
    line = pdeop_error_line(result.stderr)
    assert line.startswith("pdeop error: ckpt_path:") and str(path) in line
    assert "weights_only=False" not in result.stderr
    observed(f"exit 2: {line}")


@pytest.mark.fault("train.py ckpt_path= another model's checkpoint (FNO hidden_channels 8 into a run of 16)",
                   "exit 2, one pdeop error line naming both models")
def test_another_models_checkpoint_is_one_line(reference, data_dir, tmp_path, observed):
    given = reference / "checkpoints" / "last.ckpt"
    result = run(command(tmp_path / "run", f"ckpt_path={given}", "model.hidden_channels=16"), data_dir)
    assert result.returncode == 2
    line = pdeop_error_line(result.stderr)
    assert "ckpt_path:" in line and "FNO(hidden_channels=8)" in line and "FNO(hidden_channels=16)" in line
    observed(f"exit 2: {line}")


@pytest.mark.fault("a finished 1-epoch run directory moved elsewhere, then trained to 3 epochs there",
                   "resumes (paths inside the run directory are not another setting), keeps its history and its "
                   "best checkpoint's record, ends as an uninterrupted run")
def test_moved_run_directory_resumes(reference, data_dir, tmp_path, observed):
    first, moved = tmp_path / "first", tmp_path / "elsewhere" / "run"
    prepare(first, data_dir, epochs=1)
    before = per_epoch(first)
    moved.parent.mkdir()
    shutil.move(first, moved)
    result = succeeded(run(command(moved), data_dir))
    assert "resuming from" in output(result)
    assert before.items() <= per_epoch(moved).items()
    assert_continues_reference(moved, reference)
    best = sorted(p.name for p in (moved / "checkpoints").glob("best-*.ckpt"))
    assert best == sorted(p.name for p in (reference / "checkpoints").glob("best-*.ckpt"))
    observed(f"resumed in the new place; history kept; best checkpoints {best} as in the uninterrupted run; "
             f"weights identical")


@pytest.mark.fault("a 2-epoch run directory copied by cp -r (new file times, epoch 0's best checkpoint the newest), "
                   "then trained to 3 epochs there",
                   "resumes from last.ckpt (the furthest-trained checkpoint, not the newest file) and ends as an "
                   "uninterrupted run")
def test_copied_run_directory_resumes_its_furthest_checkpoint(reference, data_dir, tmp_path, observed):
    first, copied = tmp_path / "first", tmp_path / "copied"
    keep_all = "callbacks.checkpoint.save_top_k=-1"  # every epoch's best-*.ckpt kept: an early one lies beside last
    prepare(first, data_dir, keep_all, epochs=EPOCHS - 1)
    subprocess.run(["cp", "-r", str(first), str(copied)], check=True)
    early = copied / "checkpoints" / "best-000.ckpt"
    os.utime(early, (time.time() + 60, time.time() + 60))  # copied last
    result = succeeded(run(command(copied, keep_all), data_dir))
    resumed = next(line for line in output(result).splitlines() if "resuming from" in line)
    assert resumed.endswith("last.ckpt (auto_resume)"), resumed
    assert_continues_reference(copied, reference)
    observed(f"{resumed.split('] - ')[-1].replace(str(tmp_path), '<tmp>')}; exit 0, weights identical")


@pytest.mark.fault("kill -9 with TensorBoard and wandb (offline) logging too, then the same command again",
                   "TensorBoard shows every step once (purge_step at the resumed step), wandb continues the same "
                   "run id")
def test_tensorboard_and_wandb_history_survive_a_kill(data_dir, tmp_path, observed):
    run_dir = tmp_path / "run"
    loggers = "logger=[csv,tensorboard,wandb]"
    kill_when(start(command(run_dir, loggers), entry_env(data_dir)), lambda: epoch_saved(run_dir, 0))
    succeeded(run(command(run_dir, loggers), data_dir))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    csv_values = per_epoch(run_dir)
    for key in PER_EPOCH:
        logged = [(s.step, s.value) for s in events.Scalars(key)]
        assert len({step for step, _ in logged}) == len(logged) == EPOCHS, logged
        assert [value for _, value in logged] == pytest.approx([csv_values[key, e] for e in range(EPOCHS)])
    lr_steps = [s.step for s in events.Scalars("lr-Adam")]
    assert len(set(lr_steps)) == len(lr_steps) == EPOCHS, lr_steps
    run_id = (run_dir / "wandb" / "pdeop-run-id").read_text()
    offline = sorted(p.name for p in (run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and all(name.endswith(f"-{run_id}") for name in offline), offline
    observed(f"TensorBoard: {', '.join(PER_EPOCH)} and lr-Adam once per epoch; wandb: both offline runs "
             f"are id {run_id}")


@pytest.mark.fault("a used run directory started again with auto_resume=false",
                   "a new history and new checkpoints: the old metrics.csv moved to csv/previous-1/, the old "
                   "checkpoints to checkpoints/previous-1/, config and test results to previous-1/, plots to "
                   "plots/previous-1/, each with a warning, nothing deleted or overwritten")
def test_fresh_start_keeps_the_old_history(data_dir, tmp_path, observed):
    run_dir = tmp_path / "run"
    prepare(run_dir, data_dir, "test_after_fit=true", epochs=2)
    old = (run_dir / "csv" / "metrics.csv").read_text()
    saved = {p.name: p.read_bytes() for p in (run_dir / "checkpoints").glob("*.ckpt")}
    results = {name: (run_dir / name).read_bytes() for name in ("config_resolved.yaml", "test_metrics.json")}
    plots = {p.name: p.read_bytes() for p in (run_dir / "plots").iterdir()}
    assert plots
    result = succeeded(run(command(run_dir, "auto_resume=false", epochs=1), data_dir))  # not tested
    assert (run_dir / "csv" / "previous-1" / "metrics.csv").read_text() == old
    # the earlier run's test results were overwritten or, untested, stood beside this run's checkpoints as its own
    assert {name: (run_dir / "previous-1" / name).read_bytes() for name in results} == results
    assert {p.name: p.read_bytes() for p in (run_dir / "plots" / "previous-1").iterdir()} == plots
    assert not (run_dir / "test_metrics.json").exists() and (run_dir / "config_resolved.yaml").is_file()
    assert "previous-1" in output(result) and "resuming from" not in output(result)
    assert sorted({epoch for _, epoch in per_epoch(run_dir)}) == [0]
    # the earlier run's last.ckpt was overwritten, and its best checkpoint lay beside the new run's (or under its name)
    kept = {p.name: p.read_bytes() for p in (run_dir / "checkpoints" / "previous-1").glob("*.ckpt")}
    assert kept == saved and len(kept) == 2, sorted(kept)
    now = sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt"))
    assert now == ["best-000.ckpt", "last.ckpt"], now
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0
    observed(f"old history in csv/previous-1/metrics.csv, the old {', '.join(sorted(kept))} in "
             f"checkpoints/previous-1/, config and test results in previous-1/, plots in plots/previous-1/, warnings "
             f"printed; new metrics.csv holds epoch 0 once, checkpoints/ {', '.join(now)}")


@pytest.mark.fault("train.py ckpt_path=<another run's last.ckpt> into a used run directory, then the command run "
                   "again there without ckpt_path and to one more epoch",
                   "the folder's earlier checkpoints and history move to previous-1/ (the earlier run's further-"
                   "trained best is not resumed later); the rerun resumes this run's last.ckpt")
def test_ckpt_path_from_elsewhere_sets_the_folders_earlier_run_aside(data_dir, tmp_path, observed):
    used, other = tmp_path / "used", tmp_path / "other"
    prepare(used, data_dir, epochs=3)  # the earlier run of the folder: its checkpoints are 24 steps in
    prepare(other, data_dir, epochs=1)
    earlier = sorted(p.name for p in (used / "checkpoints").glob("*.ckpt"))
    refused = run(command(used, f"ckpt_path={other / 'checkpoints' / 'last.ckpt'}", "data.grid_size=20", epochs=2),
                  data_dir)  # refused once the data are open: the folder stays as it was, its run resumable
    assert refused.returncode == 2 and "data.grid_size" in refused.stderr, refused.stderr[-3000:]
    assert sorted(p.name for p in (used / "checkpoints").iterdir()) == earlier
    succeeded(run(command(used, f"ckpt_path={other / 'checkpoints' / 'last.ckpt'}", epochs=2), data_dir))
    assert sorted(p.name for p in (used / "checkpoints" / "previous-1").glob("*.ckpt")) == earlier
    assert (used / "csv" / "previous-1" / "metrics.csv").is_file()
    assert sorted({epoch for _, epoch in per_epoch(used)}) == [1]  # this run's history: the epoch it trained
    again = succeeded(run(command(used, epochs=3), data_dir))
    resumed = next(line for line in output(again).splitlines() if "resuming from" in line)
    assert resumed.endswith(f"{used}/checkpoints/last.ckpt (auto_resume)"), resumed
    assert load(used / "checkpoints" / "last.ckpt")["epoch"] == 2
    observed(f"the earlier run's {', '.join(earlier)} in checkpoints/previous-1/, its history in csv/previous-1/; "
             f"the rerun {resumed.split('] - ')[-1].replace(str(tmp_path), '<tmp>')}")


@pytest.mark.fault("train.py started a second time in a run directory while the first trains there (held after "
                   "a batch), then the first killed with kill -9 and the command run again",
                   "the second exits 2 at once with one line naming the folder and the first's pid, writing nothing; "
                   "after the kill the command trains (exit 0) and leaves no lock file")
def test_a_second_run_in_a_used_directory_is_refused_while_the_first_trains(data_dir, tmp_path, observed):
    run_dir, held = tmp_path / "run", tmp_path / "held-at-batch"
    hold = ["+callbacks.hold._target_=stop_at.PauseAt", "+callbacks.hold.epoch=0", "+callbacks.hold.batch=1",
            f"+callbacks.hold.marker={held}"]
    env = stop_at_env(data_dir)
    first = start(command(run_dir, *hold, epochs=1), env)
    try:
        deadline = time.monotonic() + 300
        while not held.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert held.exists(), first.communicate()[1][-3000:]
        def runs_files() -> dict[str, bytes]:  # everything in the folder, Hydra's .hydra/ files and log included
            return {str(p.relative_to(run_dir)): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}

        before = runs_files()
        second = run_command(command(run_dir, *hold, epochs=1), 120, env=env)
        assert second.returncode == 2, second.stderr[-3000:]
        line = pdeop_error_line(second.stderr)
        assert f"'{run_dir}' is in use by another pdeop run (pid {first.pid} on " in line, line
        assert runs_files() == before  # neither the first's config (Hydra's too), history nor checkpoints touched
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate()
    third = succeeded(run_command(command(run_dir, *hold, epochs=1), 300, env=env))
    assert not (run_dir / ".pdeop-run.lock").exists()
    observed(f"second run: exit 2: {line.replace(str(tmp_path), '<tmp>')}; after kill -9 of the first, the command "
             f"ran (exit {third.returncode}), no lock file left")


@pytest.mark.fault("hydra.run.dir a read-only directory (Hydra's own .hydra/ and train.log off)",
                   "exit 2, one pdeop error line naming the directory and hydra.run.dir")
def test_read_only_run_directory_is_one_line(data_dir, tmp_path, observed):
    with read_only(tmp_path / "run") as run_dir:
        result = run(command(run_dir, "hydra.output_subdir=null", "hydra/job_logging=disabled"), data_dir)
    assert result.returncode == 2
    line = pdeop_error_line(result.stderr)
    assert str(run_dir) in line and "hydra.run.dir" in line
    observed(f"exit 2: {line}")


@pytest.mark.fault("hydra.run.dir a read-only directory (default config)",
                   "exit 2, one pdeop error line naming the directory and hydra.run.dir")
def test_read_only_run_directory_default_config(data_dir, tmp_path, observed):
    with read_only(tmp_path / "run") as run_dir:
        result = run(command(run_dir), data_dir)
    assert result.returncode == 2
    line = pdeop_error_line(result.stderr)
    assert str(run_dir) in line and "hydra.run.dir" in line
    observed(f"exit 2: {line}")


def escaping(checkpoint: dict, dirpath: Path, victim_file: Path, victim_dir: Path) -> dict:
    """``checkpoint`` whose checkpoint callbacks' records name ``victim_file`` (by ``..``) and ``victim_dir``
    (by a link in ``dirpath``) as their superseded files, with a score every new checkpoint beats."""
    climb = str(dirpath) + "/.." * len(dirpath.parts) + str(victim_file)
    (dirpath / "old-best.ckpt").symlink_to(victim_dir)
    for key, state in checkpoint["callbacks"].items():
        if key.startswith("RunCheckpoint"):
            by_link = str(dirpath / "old-best.ckpt")
            state.update(dirpath=str(dirpath), best_model_path=climb, kth_best_model_path=by_link,
                         last_model_path=climb, best_k_models={climb: torch.tensor(float("inf")),
                                                               by_link: torch.tensor(float("inf"))},
                         kth_value=torch.tensor(float("inf")), best_model_score=torch.tensor(float("inf")))
    return checkpoint


@pytest.mark.fault("train.py ckpt_path= a checkpoint whose checkpoint callbacks name a file outside the run (by "
                   "'..') and a folder (by a link in checkpoints/) as superseded checkpoints",
                   "trains on; both stay where they were (Lightning deletes a superseded checkpoint recursively); "
                   "a warning names them")
def test_a_checkpoints_record_cannot_delete_files_outside_its_folder(reference, data_dir, tmp_path, observed):
    run_dir, victim_file, victim_dir = tmp_path / "run", tmp_path / "victim.txt", tmp_path / "victim-dir"
    victim_file.write_text("keep")
    victim_dir.mkdir()
    (victim_dir / "data.txt").write_text("keep")
    (run_dir / "checkpoints").mkdir(parents=True)
    given = tmp_path / "given.ckpt"
    checkpoint = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)
    torch.save(escaping(checkpoint, run_dir / "checkpoints", victim_file, victim_dir), given)
    result = succeeded(run(command(run_dir, f"ckpt_path={given}", epochs=EPOCHS + 1), data_dir))
    assert victim_file.read_text() == "keep" and (victim_dir / "data.txt").read_text() == "keep"
    assert "names files that resolve outside" in output(result)
    observed("exit 0; both left in place; warned: checkpoint state names files outside the run's checkpoints/")
