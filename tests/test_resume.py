"""auto_resume: a run restarted in its own directory continues only the setting it was trained with, losing nothing."""

import csv
import errno
import os
import threading

import pytest
import torch

from pdeop.errors import ConfigError
from pdeop.io import UnwritablePathError
from pdeop.training.callbacks import RunCheckpoint, rerooted
from pdeop.training.checkpoint_io import AtomicCheckpointIO, BackgroundCheckpointIO
from pdeop.training.loggers import CSVHistoryLogger
from pdeop.training.resume import check_resumable
from pdeop.training.run import write_yaml


def test_auto_resume_continues_further_but_refuses_another_setting(tmp_path):
    config = {"seed": 0, "optim": {"lr": 1.0e-3}, "trainer": {"max_epochs": 20}, "paths": {"output_dir": "a"},
              "data": {"data_dir": "a", "n_train": 200}}
    write_yaml(config, tmp_path / "config_resolved.yaml")
    check_resumable({**config, "trainer": {"max_epochs": 100}, "paths": {"output_dir": "b"},
                     "data": {"data_dir": "b", "n_train": 200}}, tmp_path)  # further, from another place
    # checkpoints written another way since the run began (the background writer became the default)
    writer = [{"_target_": "pdeop.training.checkpoint_io.BackgroundCheckpointIO", "pending": 2}]
    check_resumable({**config, "trainer": {"max_epochs": 20, "plugins": writer}}, tmp_path)
    with pytest.raises(ConfigError, match=r"data.n_train \(200 -> 1000\)"):
        check_resumable({**config, "data": {"data_dir": "a", "n_train": 1000}}, tmp_path)
    with pytest.raises(ConfigError, match=r"holds a run of another setting \(optim.lr \(0.001 -> 0.0005\)\); "
                                          r"use a new hydra.run.dir, or auto_resume=false"):
        check_resumable({**config, "optim": {"lr": 5.0e-4}}, tmp_path)
    with pytest.raises(ConfigError, match=r"seed \(0 -> None\)"):
        check_resumable({k: v for k, v in config.items() if k != "seed"}, tmp_path)


def test_a_run_made_before_a_key_was_added_resumes_where_the_key_keeps_its_behaviour(tmp_path):
    # A folder of an earlier version lacks keys added since: Darcy's discretisation (scheme: harmonic, what it did
    # then), the latest checkpoint's save_on_sigterm (how checkpoints are written), the ranks' agreement on
    # SIGTERM (how a run stops) and the steps' seeding of torch (where a step's random numbers come from). A requeued
    # job goes on.
    before = {"seed": 0, "trainer": {"max_epochs": 20}, "data": {"problem": {"name": "darcy"}},
              "callbacks": {"latest": {"monitor": None}}}
    write_yaml(before, tmp_path / "config_resolved.yaml")
    now = {**before, "data": {"problem": {"name": "darcy", "scheme": "harmonic"}},
           "callbacks": {"latest": {"monitor": None, "save_on_sigterm": True},
                         "sigterm_agreement": {"_target_": "pdeop.training.sigterm.SigtermAgreement"},
                         "step_seed": {"_target_": "pdeop.training.step_seed.StepSeed", "seed": 0}}}
    check_resumable(now, tmp_path)
    with pytest.raises(ConfigError, match=r"data.problem.scheme \('harmonic' -> 'fno'\)"):
        check_resumable({**now, "data": {"problem": {"name": "darcy", "scheme": "fno"}}}, tmp_path)



def test_a_1d_run_from_before_spatial_dims_resumes_where_its_loss_is_the_same(tmp_path):
    """Runs made before data.spatial_dims took the losses over two axes; on one channel of 1-D fields that is the loss
    over one (Burgers' cells), so they resume. With several channels it measured them as one: another setting."""
    before = {"seed": 0, "trainer": {"max_epochs": 20}, "loss": {"_target_": "neuralop.losses.LpLoss", "d": 2},
              "data": {"problem": {"name": "burgers"}, "out_channels": 1}}
    write_yaml(before, tmp_path / "config_resolved.yaml")
    now = {**before, "loss": {**before["loss"], "d": 1}, "data": {**before["data"], "spatial_dims": 1}}
    check_resumable(now, tmp_path)
    write_yaml({**before, "data": {**before["data"], "out_channels": 2}}, tmp_path / "config_resolved.yaml")
    with pytest.raises(ConfigError, match=r"data.spatial_dims \(2 -> 1\), loss.d \(2 -> 1\)"):
        check_resumable({**now, "data": {**now["data"], "out_channels": 2}}, tmp_path)
    files = {**before, "data": {"path": "f.h5", "out_channels": 2}}  # data=from_file: null, the file's axes
    write_yaml(files, tmp_path / "config_resolved.yaml")
    check_resumable({**files, "loss": {**before["loss"], "d": None}, "data": {**files["data"], "spatial_dims": None}},
                    tmp_path)
    write_yaml({**before, "loss": {**before["loss"]}, "data": {"problem": {"name": "darcy"}, "out_channels": 1}},
               tmp_path / "config_resolved.yaml")  # 2-D runs: the value they had
    check_resumable({**before, "data": {"problem": {"name": "darcy"}, "out_channels": 1, "spatial_dims": 2}}, tmp_path)


def test_an_h1_run_from_before_periodic_grids_resumes_where_its_differences_are_the_same(tmp_path):
    """H1 runs made when its finite differences were one-sided on every grid: a bounded grid's (Darcy) run goes on
    with the differences following the data; a periodic grid's (Navier-Stokes) now wraps around: another loss."""
    h1 = {"_target_": "neuralop.losses.H1Loss", "d": 2, "periodic_in_x": False, "periodic_in_y": False}
    now_h1 = {**h1, "periodic_in_x": None, "periodic_in_y": None, "periodic_in_z": None}
    for problem, periodic in (("pdeop.problems.Darcy", False), ("pdeop.problems.NavierStokes2D", True)):
        before = {"seed": 0, "loss": h1, "data": {"problem": {"_target_": problem}, "spatial_dims": 2}}
        write_yaml(before, tmp_path / "config_resolved.yaml")
        now = {**before, "loss": now_h1}
        if periodic:
            with pytest.raises(ConfigError, match=r"loss.periodic_in_x \(False -> None\), loss.periodic_in_y"):
                check_resumable(now, tmp_path)
            check_resumable({**now, "loss": {**now_h1, "periodic_in_x": False, "periodic_in_y": False}}, tmp_path)
        else:
            check_resumable(now, tmp_path)
    files = {"seed": 0, "loss": h1, "data": {"path": "f.h5", "periodic": False}}  # data=from_file, bounded
    write_yaml(files, tmp_path / "config_resolved.yaml")
    check_resumable({**files, "loss": now_h1}, tmp_path)
    cube = {"seed": 0, "loss": {**h1, "d": 3}, "data": {"path": "f.h5", "periodic": False}}  # 3-D, bounded
    write_yaml(cube, tmp_path / "config_resolved.yaml")  # periodic_in_z absent: neuraloperator's default, true
    with pytest.raises(ConfigError, match=r"loss.periodic_in_z \(True -> None\).*loss.periodic_in_x=false "
                                          r"loss.periodic_in_y=false keep the run's one-sided H1 differences"):
        check_resumable({**cube, "loss": {**now_h1, "d": 3}}, tmp_path)
    check_resumable({**cube, "loss": {**now_h1, "d": 3, "periodic_in_z": True}}, tmp_path)
    files["data"]["periodic"] = None  # the format's: not known before the file is open
    write_yaml(files, tmp_path / "config_resolved.yaml")
    with pytest.raises(ConfigError, match=r"setting \(loss.periodic_in_x \(False -> None\), loss.periodic_in_y"):
        check_resumable({**files, "loss": now_h1}, tmp_path)


def test_ckpt_path_of_another_setting_is_allowed_but_said(tmp_path, caplog):
    """``ckpt_path=`` may continue a run under another setting (new data, say), which auto_resume refuses; the
    differences are named in a warning rather than passed over."""
    import logging

    from omegaconf import OmegaConf

    from pdeop.training.resume import resume_from

    config = {"seed": 0, "optim": {"lr": 1.0e-3}, "trainer": {"max_epochs": 20}, "paths": {"output_dir": "a"},
              "data": {"n_train": 200}, "model": {"_target_": "neuralop.models.FNO", "hidden_channels": 8}}
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}, "pdeop_config": config, "global_step": 3}, path)
    now = {**config, "trainer": {"max_epochs": 40}, "paths": {"output_dir": "b"}, "data": {"n_train": 30}}
    cfg = OmegaConf.create({"ckpt_path": str(path), "auto_resume": True})
    with caplog.at_level(logging.WARNING, logger="pdeop.training.resume"):
        assert resume_from(cfg, now, tmp_path).path == str(path)
    assert f"ckpt_path: {path} was trained with another setting (data.n_train (200 -> 30))" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pdeop.training.resume"):
        resume_from(cfg, {**config, "trainer": {"max_epochs": 40}}, tmp_path)  # only longer: nothing to say
    assert "another setting" not in caplog.text

def test_a_schedule_sized_by_the_run_refuses_a_longer_run(tmp_path):
    optimiser = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    first = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=1.0, total_steps=10)
    longer = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=1.0, total_steps=50)
    longer.load_state_dict(first.state_dict())
    assert longer.total_steps == 10  # what a resumed run gets back from its checkpoint, whatever max_epochs says

    onecycle = {"_target_": "torch.optim.lr_scheduler.OneCycleLR", "_partial_": True, "total_steps": None}
    config = {"seed": 0, "trainer": {"max_epochs": 20, "max_steps": -1}, "scheduler": {"interval": "step",
                                                                                       "fn": onecycle}}
    write_yaml(config, tmp_path / "config_resolved.yaml")
    check_resumable(config, tmp_path)  # the same length: an interrupted run continues
    with pytest.raises(ConfigError, match=r"trainer.max_epochs changed \(20 -> 100\), but OneCycleLR spans the "
                                          r"first run's length \(scheduler.fn.total_steps"):
        check_resumable({**config, "trainer": {"max_epochs": 100, "max_steps": -1}}, tmp_path)

    fixed = {**config, "scheduler": {"interval": "step", "fn": {**onecycle, "total_steps": 5000}}}
    write_yaml(fixed, tmp_path / "config_resolved.yaml")
    check_resumable({**fixed, "trainer": {"max_epochs": 100, "max_steps": -1}}, tmp_path)


def test_a_moved_run_directory_is_the_same_setting(tmp_path):
    def run_config(run: str, checkpoints: str | None = None) -> dict:
        return {"seed": 0, "paths": {"output_dir": run}, "trainer": {"default_root_dir": run},
                "logger": {"csv": {"save_dir": run}},
                "callbacks": {"latest": {"dirpath": checkpoints or f"{run}/checkpoints"}}}

    write_yaml(run_config("/old/place/run"), tmp_path / "config_resolved.yaml")
    check_resumable(run_config("/new/place/run"), tmp_path)  # every path inside the run directory moved with it
    with pytest.raises(ConfigError, match=r"callbacks.latest.dirpath \('<run>/checkpoints' -> '/shared/ckpts'\)"):
        check_resumable(run_config("/new/place/run", checkpoints="/shared/ckpts"), tmp_path)


def test_checkpoint_record_follows_a_moved_run_directory(tmp_path):
    old, new = "/gone/run/checkpoints", str(tmp_path)
    (tmp_path / "best-001.ckpt").touch()
    state = {"dirpath": old, "best_model_path": f"{old}/best-001.ckpt", "kth_best_model_path": f"{old}/best-001.ckpt",
             "last_model_path": "", "best_k_models": {f"{old}/best-001.ckpt": 0.5}}
    moved = rerooted(state, old, new, RunCheckpoint.PATH_KEYS)
    assert moved["dirpath"] == new and moved["best_model_path"] == f"{new}/best-001.ckpt"
    assert moved["best_k_models"] == {f"{new}/best-001.ckpt": 0.5} and moved["last_model_path"] == ""
    (tmp_path / "best-001.ckpt").unlink()  # another run's checkpoint: its record stays Lightning's
    assert rerooted(state, old, new, RunCheckpoint.PATH_KEYS) is state


def test_metrics_history_continues_from_the_resumed_step(tmp_path):
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "metrics.csv").write_text("epoch,step,train/loss\n0,7,0.5\n,8,\n1,15,0.4\n1,1")  # cut short by a kill
    logger = CSVHistoryLogger(tmp_path, name="csv", version="")
    logger.continue_from(8)
    logger.log_metrics({"train/loss": 0.45, "epoch": 1}, step=15)
    logger.save()
    with open(folder / "metrics.csv", newline="") as f:
        assert [(r["step"], r["train/loss"]) for r in csv.DictReader(f)] == [("7", "0.5"), ("15", "0.45")]

    fresh = CSVHistoryLogger(tmp_path, name="csv", version="")
    fresh.continue_from(None)
    fresh.log_metrics({"train/loss": 0.6}, step=7)
    fresh.save()
    assert "0.45" in (folder / "previous-1" / "metrics.csv").read_text()
    assert "0.45" not in (folder / "metrics.csv").read_text()


def test_checkpoint_writes_are_atomic_and_a_full_disk_is_one_error(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"epoch": 0, "w": torch.ones(3)}, path)
    assert io.load_checkpoint(path)["epoch"] == 0

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(UnwritablePathError, match=rf"'{path.parent}' is on a full disk \(no partial file left"):
        io.save_checkpoint({"epoch": 1, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]
    assert io.load_checkpoint(path)["epoch"] == 0


def test_background_checkpoints_are_snapshots_written_in_order_and_errors_surface(tmp_path):
    """The file holds the weights as they were when saved, a removal waits for the write queued before it (the
    new best is on disk before the old one goes), at most ``pending`` writes are in flight, and a failed write
    is raised on the training thread."""
    gate = threading.Event()
    inner = AtomicCheckpointIO()
    write = inner.save_checkpoint
    inner.save_checkpoint = lambda checkpoint, path, options=None: gate.wait(30) and write(checkpoint, path, options)
    io = BackgroundCheckpointIO(inner, pending=2)
    weights, old_best, best = torch.ones(3), tmp_path / "best-000.ckpt", tmp_path / "best-001.ckpt"
    AtomicCheckpointIO().save_checkpoint({"epoch": 0, "w": torch.zeros(3)}, old_best)

    io.save_checkpoint({"epoch": 1, "w": weights}, best)
    weights += 1  # the next optimiser step, in place
    io.remove_checkpoint(old_best)
    third = threading.Thread(target=io.save_checkpoint, args=({"epoch": 1, "w": weights}, tmp_path / "last.ckpt"))
    third.start()
    third.join(0.5)
    assert third.is_alive() and old_best.is_file() and not best.exists()  # two in flight: the third waits
    gate.set()
    third.join(30)
    loaded = io.load_checkpoint(best)  # a read waits for every write
    assert loaded["w"].tolist() == [1.0, 1.0, 1.0] and not old_best.exists()
    assert io.load_checkpoint(tmp_path / "last.ckpt")["w"].tolist() == [2.0, 2.0, 2.0]

    (tmp_path / "file").write_text("not a directory")
    gate.clear()
    io.save_checkpoint({"epoch": 2}, tmp_path / "file" / "best-002.ckpt")
    io.remove_checkpoint(best)  # queued behind the write that will fail: must not run
    gate.set()
    with pytest.raises(UnwritablePathError, match="checkpoint .*best-002.ckpt' not written"):
        io.teardown()
    assert best.is_file()


def test_a_checkpoint_record_keeps_another_runs_files_but_not_ones_lightning_would_delete(tmp_path):
    """Another run's best checkpoint (outside this folder: Lightning leaves it alone) stays the recorded best; a
    path under the folder that climbs out of it, or a bucket, is dropped with a warning (Lightning deletes those)."""
    import warnings

    from pdeop.training.callbacks import confined

    ours, theirs = tmp_path / "b" / "checkpoints", tmp_path / "a" / "checkpoints"
    ours.mkdir(parents=True)
    keys = ("best_model_path", "kth_best_model_path", "last_model_path")
    other_run = {"best_model_path": str(theirs / "best-003.ckpt"), "best_k_models": {str(theirs / "best-003.ckpt"): 1}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert confined(other_run, str(ours), keys) == other_run
    hostile = {"best_model_path": f"{ours}/../../../victim", "kth_best_model_path": "s3://bucket/data",
               "best_k_models": {f"{ours}/../../../victim": 1, "s3://bucket/data": 2, str(ours / "best-001.ckpt"): 3}}
    with pytest.warns(UserWarning, match="resolve outside"):
        kept = confined(hostile, str(ours), keys)
    assert kept["best_model_path"] == kept["kth_best_model_path"] == ""
    assert kept["best_k_models"] == {str(ours / "best-001.ckpt"): 3}


def test_auto_resume_takes_the_furthest_trained_checkpoint_whatever_the_files_times(tmp_path):
    """A run folder copied without its files' times (cp -r) can hold an early best checkpoint newer on disk than
    last.ckpt; ordered by time, auto_resume took it and the training since was lost."""
    from pdeop.training.resume import newest_first

    def save(name: str, step: int, age_s: int) -> None:
        torch.save({"global_step": step, "state_dict": {"w": torch.zeros(2)}}, tmp_path / name)
        os.utime(tmp_path / name, ns=(0, (2_000_000_000 - age_s) * 10**9))

    save("last.ckpt", 40, age_s=100)
    save("best-001.ckpt", 20, age_s=0)  # copied last
    save("best-003.ckpt", 40, age_s=0)  # the same state as last.ckpt, written at the epoch's validation
    assert [p.name for p in newest_first(tmp_path)] == ["last.ckpt", "best-003.ckpt", "best-001.ckpt"]
    (tmp_path / "last.prev.ckpt").write_bytes((tmp_path / "last.ckpt").read_bytes()[:100])  # cut short
    assert newest_first(tmp_path)[0].name == "last.prev.ckpt"  # tried first, to be set aside as damaged
    (tmp_path / "last.prev.ckpt").unlink()
    torch.save({"global_step": 60, "state_dict": {}}, tmp_path / "best-009.ckpt", _use_new_zipfile_serialization=False)
    assert newest_first(tmp_path)[0].name == "best-009.ckpt"  # a legacy pickle's step is read too (not memory mapped)


def test_one_training_run_holds_a_run_directory_at_a_time(tmp_path):
    """The lock's holder is named to the refused run; released (and its file removed) however the block ends; a
    process that holds it (Hydra's callback took it) goes on."""
    import fcntl
    import socket

    from pdeop.training.run_lock import LOCK_NAME, RunDirectoryInUse, acquire, run_directory_lock

    with run_directory_lock(tmp_path):
        assert f"pid {os.getpid()} on {socket.gethostname()}" in (tmp_path / LOCK_NAME).read_text()
        with run_directory_lock(tmp_path):  # held by this process already: no second lock
            pass
        assert (tmp_path / LOCK_NAME).exists()
    assert not (tmp_path / LOCK_NAME).exists()
    other = acquire(tmp_path / LOCK_NAME)  # another holder: a lock on its own open file, as another process has
    try:
        with pytest.raises(RunDirectoryInUse, match=rf"hydra.run.dir: '{tmp_path}' is in use by another pdeop run "
                                                     rf"\(pid {os.getpid()} on .*\); wait for it to end"):
            with run_directory_lock(tmp_path):
                pass
    finally:
        fcntl.flock(other, fcntl.LOCK_UN)
        os.close(other)
    with pytest.raises(RuntimeError), run_directory_lock(tmp_path):
        raise RuntimeError("a run that failed")
    assert not (tmp_path / LOCK_NAME).exists()
    with run_directory_lock(tmp_path):  # free again
        pass


@pytest.mark.parametrize("content", [b"model: [\n", b"- a\n- list\n", b"seed: \xff\xfe\n", b""])
def test_a_damaged_run_config_is_one_line_naming_it(tmp_path, content):
    (tmp_path / "config_resolved.yaml").write_bytes(content)
    with pytest.raises(ConfigError, match=rf"auto_resume: {tmp_path}/config_resolved.yaml is damaged \(.+\), so the "
                                          r"setting of the run there cannot be checked; restore it") as refused:
        check_resumable({"seed": 0}, tmp_path)
    assert "\n" not in str(refused.value)


def test_a_training_state_not_as_pdeop_writes_it_is_one_line(tmp_path):
    from omegaconf import OmegaConf

    from pdeop.pretrained import CheckpointError
    from pdeop.training.resume import resume_from

    config = {"seed": 0, "model": {"_target_": "neuralop.models.FNO"}}
    path = tmp_path / "altered.ckpt"
    torch.save({"state_dict": {}, "pdeop_config": config, "global_step": 3, "loops": {"fit_loop": 5}}, path)
    cfg = OmegaConf.create({"ckpt_path": str(path), "auto_resume": True})
    with pytest.raises(CheckpointError, match=rf"ckpt_path: '{path}' holds a training state that this pdeop does "
                                              r"not read \(AttributeError: .*\): damaged, or not written by"):
        resume_from(cfg, config, tmp_path)


@pytest.mark.parametrize("damage", ["NaN weights", "a training state pdeop does not read", "an encrypted record"])
def test_auto_resume_sets_a_damaged_checkpoint_aside_and_takes_the_next(tmp_path, caplog, damage):
    """Only a file torch or the CRC check could not read was set aside: these stopped the requeued run although a
    good checkpoint lay beside them (the encrypted record was a RuntimeError traceback)."""
    import logging
    import struct
    import zipfile

    from omegaconf import OmegaConf

    from pdeop.training.resume import resume_from

    config = {"seed": 0, "model": {"_target_": "neuralop.models.FNO"}, "data": {"n_train": 2}}
    write_yaml(config, tmp_path / "config_resolved.yaml")
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    weights = {"model.w": torch.ones(3)}
    torch.save({"state_dict": weights, "pdeop_config": config, "global_step": 4}, folder / "best-000.ckpt")
    last = {"state_dict": weights, "pdeop_config": config, "global_step": 8}
    if damage == "NaN weights":
        last["state_dict"] = {"model.w": torch.full((3,), float("nan"))}
    elif damage == "a training state pdeop does not read":
        last["loops"] = {"fit_loop": 5}
    torch.save(last, folder / "last.ckpt")
    if damage == "an encrypted record":  # the flag bit of the first central-directory entry
        data = bytearray((folder / "last.ckpt").read_bytes())
        with zipfile.ZipFile(folder / "last.ckpt") as archive:
            entry = data.index(b"PK\x01\x02", archive.start_dir)
        flags = struct.unpack_from("<H", data, entry + 8)[0]
        struct.pack_into("<H", data, entry + 8, flags | 1)
        (folder / "last.ckpt").write_bytes(bytes(data))
    cfg = OmegaConf.create({"ckpt_path": None, "auto_resume": True})
    with caplog.at_level(logging.WARNING, logger="pdeop.training.resume"):
        resume = resume_from(cfg, config, tmp_path)
    assert resume.path == str(folder / "best-000.ckpt")
    assert (folder / "last.ckpt.broken").is_file() and "moved it to last.ckpt.broken" in caplog.text


def test_a_checkpoint_of_other_optimiser_groups_is_refused_before_lightning_restores_it(tmp_path):
    """Resuming with other ``model.freeze`` or ``model.param_lr`` gave Lightning's ValueError about parameter groups
    as it restored the optimiser, naming neither key."""
    from omegaconf import OmegaConf

    from pdeop.training.resume import check_fits, resume_from

    class Module(torch.nn.Module):
        def __init__(self, param_lr: dict | None = None):
            super().__init__()
            self.model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
            self.param_lr = param_lr or {}

    trained = Module()
    optimiser = torch.optim.Adam(trained.model.parameters())
    config = {"seed": 0, "model": {"_target_": "neuralop.models.FNO"}}
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": trained.state_dict(), "pdeop_config": config, "optimizer_states": [
        optimiser.state_dict()]}, path)
    cfg = OmegaConf.create({"ckpt_path": str(path), "auto_resume": True})
    check_fits(Module(), resume_from(cfg, config, tmp_path))  # the same groups: goes on
    frozen = Module()
    frozen.model[0].requires_grad_(False)
    with pytest.raises(ConfigError, match=rf"ckpt_path: '{path}' holds optimiser state for parameter groups of \[4\] "
                                          r"parameters, and this run's optimiser has \[2\]: model.freeze or "
                                          r"model.param_lr differ"):
        check_fits(frozen, resume_from(cfg, config, tmp_path))
    with pytest.raises(ConfigError, match=r"groups of \[4\] parameters, and this run's optimiser has \[2, 2\]"):
        check_fits(Module({"1.*": 0.1}), resume_from(cfg, config, tmp_path))
