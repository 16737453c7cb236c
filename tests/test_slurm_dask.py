"""Generation's solvers as SLURM jobs (``solvers=slurm``, dask-jobqueue) on a real one-node cluster
(slurm/local-cluster.sh, the ``slurm_env`` fixture of conftest.py): the Dask workers run as SLURM jobs and the
file is the one ``solvers=local`` writes, bit for bit; an ``scancel`` of a worker job mid-generation (one of two
1-core jobs, or the only, 2-core, job) changes nothing in the file and a job is submitted in its place; SLURM
refusing the jobs, or jobs that fail before their workers start, are one ``pdeop error:`` line each.

The jobs ask for 2 cores in all: they fill the 2-core machine CI runs on.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import dask
import pytest
from conftest import ROOT, TINY_DATA, TINY_FNO, run_command
from distributed import Client
from test_dask_generation import SlowDarcy, busy_worker, fixed_creation_time  # noqa: F401 -- an autouse fixture

from pdeop.data.generation import DatasetSpec, generate
from pdeop.data.slurm_solvers import SlurmSolvers
from pdeop.io import file_sha256
from pdeop.problems import Darcy

pytestmark = pytest.mark.slow

SMALL_JOBS = ["solvers=slurm", "solvers.jobs=2", "solvers.cores=1", "solvers.memory=1GB",
              "solvers.walltime=00:20:00", "solvers.timeout_s=300"]

# `python -m pdeop.generate` with `created_utc` fixed (as the fixture does in this process), so that the files of
# two runs compare by SHA-256.
GENERATE_AT_A_FIXED_TIME = """
import runpy, sys
from datetime import datetime, timezone
from pdeop.data import generation

class Fixed(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime(2026, 1, 1, tzinfo=timezone.utc)

generation.datetime = Fixed
sys.argv[0] = "pdeop.generate"
runpy.run_module("pdeop.generate", run_name="__main__", alter_sys=True)
"""


def with_this_tree(env: dict, *more: Path) -> dict:
    """``env`` with this checkout (and ``more``) first on PYTHONPATH: the jobs inherit it (sbatch's default
    ``--export=ALL``), so their workers import the pdeop under test."""
    paths = [str(ROOT), *map(str, more), *filter(None, [env.get("PYTHONPATH")])]
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}


def unique_job_name() -> str:
    return f"pdeop-test-{uuid.uuid4().hex[:8]}"


def jobs_named(env: dict, name: str) -> dict[str, str]:
    """``{job id: state}`` of the jobs called ``name``, ended ones included (MinJobAge: 5 minutes)."""
    out = subprocess.run(["squeue", "-h", "-t", "all", "-n", name, "-o", "%i %T"], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def generate_cli(env: dict, run_dir: Path, data_dir: Path, *overrides: str,
                 timeout: float = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", GENERATE_AT_A_FIXED_TIME, f"hydra.run.dir={run_dir}", *TINY_DATA, *overrides]
    return run_command(cmd, timeout, env={**env, "PDEOP_DATA_DIR": str(data_dir)})


def test_generation_through_slurm_jobs_writes_the_local_file(slurm_env, tmp_path):
    env = with_this_tree(slurm_env)
    local = generate_cli(env, tmp_path / "local_run", tmp_path / "local", "solvers=local")
    assert local.returncode == 0, local.stderr[-3000:]
    name = unique_job_name()
    slurm = generate_cli(env, tmp_path / "slurm_run", tmp_path / "slurm", *SMALL_JOBS, f"solvers.job_name={name}")
    assert slurm.returncode == 0, slurm.stderr[-3000:]
    jobs = jobs_named(env, name)
    assert len(jobs) == 2 and set(jobs.values()) <= {"CANCELLED", "COMPLETED"}, jobs  # cancelled at the end
    assert f"Dask workers joining from SLURM jobs {', '.join(sorted(jobs, key=int))}" in slurm.stdout + slurm.stderr
    for job in jobs:  # each job's worker joined this generation's scheduler (conf: log_directory in the run dir)
        output = (tmp_path / "slurm_run" / "solver-jobs" / f"{name}-{job}.err").read_text()
        assert "Registered to:" in output, output[-2000:]
    path = Path(slurm.stdout.strip().splitlines()[-1])
    assert path.parent == tmp_path / "slurm"
    assert file_sha256(path) == file_sha256(Path(local.stdout.strip().splitlines()[-1]))


def scheduler_address(logs: Path, generating: threading.Thread, result: dict, timeout: float = 300) -> str:
    """The scheduler the jobs' workers registered to, read from their output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and generating.is_alive():
        for log in logs.glob("*.err"):
            match = re.search(r"Registered to:\s+(\S+)", log.read_text())
            if match:
                return match.group(1)
        time.sleep(0.2)
    raise AssertionError(f"no SLURM worker registered while the generation ran: {result}")


def samples_reported(client: Client) -> float:
    """Samples' worth the workers have reported solved in this generation (its progress events)."""
    return sum(sum(message for _, message in events)
               for topic, events in client.get_events().items() if str(topic).startswith("pdeop-progress-"))


# Two 1-core jobs: the other job's worker solves on. One 2-core job (two worker processes): no worker is left until
# the replacement starts; a job whose workers do not share its name is the case dask-jobqueue's adapt never refills.
@pytest.mark.parametrize(("jobs", "cores", "memory"), [(2, 1, "1GB"), (1, 2, "2GB")],
                         ids=["two_1-core_jobs", "one_2-core_job"])
def test_a_cancelled_worker_job_is_survived_and_replaced(slurm_env, tmp_path, monkeypatch, caplog, jobs, cores,
                                                         memory):
    for key, value in with_this_tree(slurm_env, ROOT / "tests").items():  # tests/: SlowDarcy's module
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # as a SLURM launcher exports it: the workers still get one thread
    # 64 samples at 0.25 s each on 2 workers: 8 s or more of solving, so the cancel lands mid-way
    spec = DatasetSpec(SlowDarcy(resolution=33, seconds=0.25), 48, 8, 8, subsample=2, test_subsamples=(1,), seed=2)
    expected = file_sha256(generate(DatasetSpec(Darcy(resolution=33), 48, 8, 8, subsample=2, test_subsamples=(1,),
                                                seed=2), tmp_path / "in_process", progress=False))
    name, logs = unique_job_name(), tmp_path / "jobs"
    solvers = SlurmSolvers(jobs=jobs, cores=cores, memory=memory, walltime="00:20:00", timeout_s=300, job_name=name,
                           log_directory=str(logs))
    result: dict[str, Path | BaseException] = {}

    def run() -> None:
        try:
            result["path"] = generate(spec, tmp_path / "slurm", progress=False, solvers=solvers)
        except BaseException as exc:  # noqa: BLE001 -- re-raised below, in the test's thread
            result["error"] = exc

    # A job counts as lost once its workers have been gone for Dask's lost-worker-timeout (15 s by default):
    # shortened, so that the replacement is submitted while the generation still runs.
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "2s"}), caplog.at_level(logging.WARNING):
        thread = threading.Thread(target=run)
        thread.start()
        with Client(scheduler_address(logs, thread, result), set_as_default=False) as client:
            deadline = time.monotonic() + 300
            while samples_reported(client) < 1:  # some chunks solved, more to come
                assert thread.is_alive() and time.monotonic() < deadline, result.get("error")
                time.sleep(0.05)
            assert set(client.run(lambda: os.environ["OMP_NUM_THREADS"]).values()) == {"1"}
            assert not any(client.run(lambda: "MALLOC_TRIM_THRESHOLD_" in os.environ).values())  # glibc's own
            victim = busy_worker(client, thread)
            job = client.run(lambda: os.environ["SLURM_JOB_ID"], workers=[victim])[victim]
            assert jobs_named(slurm_env, name)[job] == "RUNNING"
            done_at_cancel = samples_reported(client)
            subprocess.run(["scancel", job], env=slurm_env, check=True, timeout=60)
        thread.join(timeout=600)
    assert not thread.is_alive() and "error" not in result, result.get("error")
    assert done_at_cancel < 64
    submitted = jobs_named(slurm_env, name)
    assert submitted[job] == "CANCELLED" and len(submitted) == jobs + 1, submitted  # one in the cancelled one's place
    assert any(f"SLURM job {job} lost its workers" in record.getMessage() for record in caplog.records)
    assert file_sha256(result["path"]) == expected


def one_error_line(slurm_env: dict, tmp_path: Path, setting: str) -> tuple[str, str]:
    """Generate on ``SMALL_JOBS`` with ``setting`` under jobs of a name of their own, expecting exit status 2, no
    traceback and exactly one ``pdeop error:`` line: that line and the jobs' name."""
    name = unique_job_name()
    result = generate_cli(with_this_tree(slurm_env), tmp_path / "run", tmp_path / "data", *SMALL_JOBS, setting,
                          f"solvers.job_name={name}", timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.startswith("pdeop error:")]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(lines) == 1, lines
    return lines[0], name


def test_a_controller_that_does_not_answer_is_named(slurm_env, tmp_path):
    """sbatch's 'Unable to contact slurm controller' was met with advice on partitions, cores, memory and walltime."""
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=nowhere\nSlurmctldHost=localhost\nSlurmctldPort=1\nMessageTimeout=2\n"
                    "NodeName=localhost CPUs=1 State=UNKNOWN\nPartitionName=debug Nodes=localhost Default=YES\n")
    line, _ = one_error_line({**slurm_env, "SLURM_CONF": str(conf)}, tmp_path, "solvers.jobs=1")
    assert "SLURM's controller does not answer (" in line and "Unable to contact slurm controller" in line, line


def test_a_partition_slurm_does_not_have_is_one_line(slurm_env, tmp_path):
    line, name = one_error_line(slurm_env, tmp_path, "solvers.partition=nonexistent")
    assert "solvers.partition" in line and "nonexistent" in line, line
    assert not jobs_named(slurm_env, name)  # checked with sbatch --test-only: nothing submitted
    assert not list((tmp_path / "data").glob("*.tmp")) and not list((tmp_path / "data").glob("*.h5"))


def test_jobs_that_fail_before_their_workers_start_are_one_line(slurm_env, tmp_path):
    line, name = one_error_line(slurm_env, tmp_path, "solvers.job_script_prologue=['exit 3']")
    assert "ended before a Dask worker joined" in line, line
    assert str(tmp_path / "run" / "solver-jobs") in line  # where to look
    assert set(jobs_named(slurm_env, name).values()) == {"FAILED"}


def test_online_training_streams_from_slurm_jobs(slurm_env, tmp_path):
    name = unique_job_name()
    # fifo serves each sample once, so the 64 samples trained on were all generated (the default reservoir reuses
    # samples when the solvers are slower than training, and a loaded machine made that happen: 60 generated)
    stream = ["data.online=true", "data.stream.buffer=fifo", "data.stream.watermark=8", "data.stream.capacity=16",
              "data.stream.steps_per_epoch=4", "data.stream.normaliser_samples=8", "data.stream.workers=2",
              "data.stream.stall_timeout_s=300"]
    cmd = [sys.executable, "train.py", f"hydra.run.dir={tmp_path / 'run'}", "trainer.enable_progress_bar=false",
           *TINY_DATA, *TINY_FNO, *stream, "trainer.max_epochs=2", "test_after_fit=false", *SMALL_JOBS,
           f"solvers.job_name={name}"]
    result = run_command(cmd, 900, env={**with_this_tree(slurm_env), "PDEOP_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = jobs_named(slurm_env, name)  # two jobs for the validation and test file, two for the stream
    assert len(jobs) == 4 and set(jobs.values()) <= {"CANCELLED", "COMPLETED"}, jobs
    with open(tmp_path / "run" / "csv" / "metrics.csv") as f:
        rows = [row for row in csv.DictReader(f) if row.get("stream/solver_workers")]
    assert rows and {float(row["stream/solver_workers"]) for row in rows} == {2.0}
    assert float(rows[-1]["stream/generated_total"]) >= 2 * 4 * 8  # every sample of 2 epochs of 4 batches of 8


def test_jobs_squeue_no_longer_lists_count_as_ended(slurm_env, monkeypatch):
    """A job squeue listed and has since forgotten (after MinJobAge) ended; it was counted as still alive, so jobs
    that failed at start were reported only after solvers.timeout_s, as 'no Dask worker joined'. One never listed
    (another cluster's, in a federation) is not taken for ended."""
    from pdeop.data.slurm_solvers import UNLISTED, all_ended, slurm_job_states

    for key in ("SLURM_CONF", "PATH"):
        monkeypatch.setenv(key, slurm_env[key])
    forgotten = str(10 ** 8 - 7)  # an id this cluster never gave
    states = slurm_job_states([forgotten])
    assert states is not None and states.get(forgotten, UNLISTED) == UNLISTED
    assert all_ended(states, [forgotten], listed={forgotten}) and not all_ended(states, [forgotten], listed=set())
    assert not all_ended({"12": "PENDING"}, ["12", forgotten], {"12", forgotten})
    assert all_ended({"12": "FAILED"}, ["12", forgotten], {"12", forgotten})
