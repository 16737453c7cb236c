"""SLURM launching against a real one-node cluster (slurm/local-cluster.sh, the ``slurm_env`` fixture of
conftest.py): a Hydra sweep through the submitit launcher, and a job requeued mid-run that resumes from its
checkpoint."""

import json
import re
import subprocess
import sys
import time

import pytest
import torch
from conftest import SMALL_EXPERIMENT, TINY_DATA, TINY_FNO, run_command, slurm_job_state

pytestmark = pytest.mark.slow

def test_a_two_point_sweep_runs_as_two_slurm_jobs(slurm_env, tmp_path, data_dir):
    env = {**slurm_env, "PDEOP_DATA_DIR": str(data_dir)}
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "train.py", "--multirun", "hydra/launcher=slurm", f"hydra.sweep.dir={sweep}",
           "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=20", *TINY_DATA, *TINY_FNO,
           "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "optim.lr=1e-3,5e-4"]
    result = run_command(cmd, 1200, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    submitted = list((sweep / ".submitit").glob("*_[01]/*_submitted.pkl"))
    assert len(submitted) == 2  # two array tasks of one SLURM job
    for job, lr in ((sweep / "0", 1e-3), (sweep / "1", 5e-4)):
        assert (job / "csv" / "metrics.csv").is_file() and (job / "test_metrics.json").is_file()
        checkpoint = torch.load(job / "checkpoints" / "last.ckpt", weights_only=True)
        assert checkpoint["epoch"] == 1 and checkpoint["pdeop_config"]["optim"]["lr"] == lr


def test_a_requeued_job_resumes_from_its_last_checkpoint(slurm_env, tmp_path, data_dir):
    # last.ckpt is the latest epoch's state, written after every epoch: the job must still be
    # running when the test sees the first one, so it is given many short epochs
    epochs = 40
    env = {**slurm_env, "PDEOP_DATA_DIR": str(data_dir), "PDEOP_RUN_ROOT": str(tmp_path)}
    log = tmp_path / "job.out"
    submit = run_command(
        ["sbatch", "--parsable", f"--output={log}", "--job-name=requeue", "slurm/train.sbatch", *TINY_DATA, *TINY_FNO,
         f"trainer.max_epochs={epochs}", "trainer.enable_progress_bar=false", "test_after_fit=false"], 60, env=env)
    assert submit.returncode == 0, submit.stderr
    job_id = submit.stdout.strip().split(";")[0]
    run = tmp_path / f"requeue-{job_id}"
    deadline = time.monotonic() + 600
    while not (run / "checkpoints" / "last.ckpt").exists():  # some epochs done and checkpointed
        assert time.monotonic() < deadline and slurm_job_state(env, job_id) in ("PENDING", "RUNNING"), log.read_text()
        time.sleep(0.5)
    interrupted_at = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]
    assert interrupted_at < epochs - 1, "the job finished before it could be requeued; make it longer"
    subprocess.run(["scontrol", "requeue", job_id], env=env, check=True, timeout=60)
    while slurm_job_state(env, job_id) not in ("COMPLETED", "FAILED", "CANCELLED", "GONE"):
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(1)
    output = log.read_text()
    assert slurm_job_state(env, job_id) in ("COMPLETED", "GONE"), output[-3000:]
    assert "restart 1" in output
    assert re.search(r"resuming from .*last\.ckpt \(auto_resume\)", output), output[-3000:]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == epochs - 1


def test_leaderboard_cells_run_as_slurm_jobs_and_are_recorded(slurm_env, tmp_path, data_dir):
    env = {**slurm_env, "PDEOP_DATA_DIR": str(data_dir)}
    records = tmp_path / "records"
    cmd = [sys.executable, "-m", "pdeop.leaderboard", "run", "darcy85", "--tier", "cpu", "--cells", "fno", "t1",
           "--launcher", "slurm", "--runs", str(tmp_path / "runs"), "--records", str(records),
           "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=20", *SMALL_EXPERIMENT]
    result = run_command(cmd, 1200, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list((tmp_path / "runs" / "darcy85" / ".submitit").glob("*_[01]/*_submitted.pkl"))) == 2
    for cell in ("fno", "t1"):
        record = json.loads((records / "darcy85" / f"{cell}.cpu.json").read_text())
        assert record["experiment"] == f"darcy85/{cell}_cpu" and record["measured"] is not None
        assert (tmp_path / "runs" / "darcy85" / f"{cell}.cpu" / "test_metrics.json").is_file()
