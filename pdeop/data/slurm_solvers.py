"""``solvers=slurm``: generation's and the online stream's solvers as SLURM jobs of Dask workers (dask-jobqueue).

The jobs are checked with ``sbatch --test-only`` before any is submitted, the wait for the first worker asks SLURM
whether the jobs still live, and a job lost after its workers joined is replaced (``LostJobReplacer``). The other
settings (this machine, a scheduler by address) and what they share are in ``pdeop.data.solvers``.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import dask
from dask.utils import parse_timedelta
from distributed import Client
from distributed.core import Status
from tornado.ioloop import PeriodicCallback

from pdeop.data.worker_environment import solver_worker_environment
from pdeop.data.solvers import SolverClusterError, check_timeout, has_dashboard, quiet_cancellations
from pdeop.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlurmSolvers:
    """``solvers=slurm``: ``jobs`` SLURM jobs of ``cores`` single-threaded workers each (dask-jobqueue).

    The jobs are submitted when generation starts and cancelled when it ends; generation waits up to
    ``timeout_s`` for the first worker (queueing time) and starts solving as soon as one is up. A job
    that SLURM refuses (a partition, memory or time limit it does not have) is one line before anything
    is submitted (``sbatch --test-only``); jobs that all end before a worker joins (a broken
    ``job_script_prologue`` or ``python``) are one line naming their output. A job lost after its
    workers joined (``scancel``, preemption, the time limit, a failed node) is replaced, so that the
    pool does not shrink for good; Dask solves the lost workers' chunks again.

    The jobs inherit this process's environment (sbatch's default ``--export=ALL``) and run this
    process's Python (``sys.executable``), so they import the same pdeop; ``job_script_prologue`` adds
    shell lines (``module load``, ``source .venv/bin/activate``) where the compute nodes need them.
    """

    jobs: int = 1
    cores: int = 16
    memory: str = "32GB"
    partition: str | None = None
    walltime: str = "01:00:00"
    timeout_s: float = 600.0
    job_name: str = "pdeop-solvers"
    log_directory: str | None = None
    interface: str | None = None
    job_extra_directives: Sequence[str] = ()
    job_script_prologue: Sequence[str] = ()

    def __post_init__(self) -> None:
        check_timeout(self.timeout_s)

    @contextmanager
    def connect(self, default_workers: int, in_process: bool = True) -> Iterator[Client]:
        if importlib.util.find_spec("dask_jobqueue") is None:
            raise ConfigError("solvers=slurm needs dask-jobqueue: pip install 'pdeop[slurm]'")
        if shutil.which("sbatch") is None:
            raise ConfigError("solvers=slurm: SLURM's sbatch is not on PATH; run where jobs can be submitted, or "
                              "use solvers=local or solvers=address")
        SLURMCluster = slurm_cluster_class()  # noqa: N806 -- a class
        for key in ("jobs", "cores"):
            if getattr(self, key) < 1:
                raise ConfigError(f"solvers.{key}: expected a positive number, got {getattr(self, key)}")
        try:
            cluster = SLURMCluster(
                cores=self.cores, processes=self.cores, memory=self.memory, queue=self.partition,
                walltime=self.walltime, job_name=self.job_name, log_directory=self.log_directory,
                interface=self.interface, job_extra_directives=list(self.job_extra_directives),
                job_script_prologue=list(self.job_script_prologue),
                scheduler_options={"dashboard_address": ":8787" if has_dashboard() else ":0"})
        except ValueError as exc:  # dask-jobqueue's check of the job's cores and memory
            raise ConfigError(f"solvers=slurm: {exc} (solvers.cores, solvers.memory)") from exc
        # sbatch exports this process's environment to the jobs, and a nanny keeps an exported thread count
        # over Dask's own one-thread setting: one BLAS thread a worker, whatever launched this process, and
        # no MALLOC_TRIM_THRESHOLD_ (worker_environment.py), through the Dask config the jobs read from it
        with cluster, Client(cluster) as client, solver_worker_environment():
            refused = sbatch_refuses(cluster.job_script())
            if refused and "contact slurm controller" in refused.lower():
                raise SolverClusterError(f"solvers=slurm: SLURM's controller does not answer ({refused}); check "
                                         f"that SLURM runs and this machine may submit jobs (sinfo)")
            if refused:
                raise SolverClusterError(f"solvers=slurm: SLURM refuses the solver jobs ({refused}); check "
                                         f"solvers.partition, solvers.cores, solvers.memory and solvers.walltime")
            replace_lost_jobs(cluster)
            quiet_cancellations(client)
            cluster.scale(jobs=self.jobs)
            wait_for_a_slurm_worker(cluster, client, self.timeout_s, self.log_directory)
            yield client


_import_lock = threading.Lock()


def slurm_cluster_class() -> type:
    """dask-jobqueue's ``SLURMCluster``, imported without its side effect: importing dask_jobqueue (its
    ``runner`` module) sets the process's SIGINT handler to ``sys.exit``, which would turn a Ctrl-C anywhere later
    into SystemExit, and outside the main thread (generation in a thread) the import fails on that call. The
    handler in place is kept; outside the main thread, where a handler cannot be set, the call is skipped."""
    if "dask_jobqueue" in sys.modules:
        from dask_jobqueue import SLURMCluster
        return SLURMCluster
    with _import_lock:
        set_handler = signal.signal
        handler = signal.getsignal(signal.SIGINT)
        if threading.current_thread() is not threading.main_thread():
            signal.signal = lambda signalnum, handler: None  # the import's only signal call, for its own runner
        try:
            from dask_jobqueue import SLURMCluster
        finally:
            signal.signal = set_handler
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, handler)
    return SLURMCluster


# A job in one of these states runs no worker and never will (squeue's long state names).
SLURM_ENDED = frozenset({"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
                         "PREEMPTED", "TIMEOUT"})
SLURM_POLL_S = 5.0  # how often the wait for the first worker asks SLURM whether the jobs still live
REPLACE_CHECK_MS = 1000  # how often lost jobs are looked for (in memory: the scheduler's view of the workers)


def sbatch_refuses(script: str) -> str | None:
    """What SLURM says against ``script`` (``sbatch --test-only``: checked, nothing submitted), or None."""
    with tempfile.NamedTemporaryFile("w", suffix=".sh", prefix="pdeop-solvers-") as file:
        file.write(script)
        file.flush()
        try:
            checked = subprocess.run(["sbatch", "--test-only", file.name], capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            return "sbatch --test-only did not answer within 60 s"
    if checked.returncode == 0:
        return None
    lines = [line.strip() for line in checked.stderr.splitlines() if line.strip()]
    return "; ".join(lines) or f"sbatch --test-only exited with status {checked.returncode}"


UNLISTED = "ended, no longer listed"  # the state of a job squeue has forgotten (after MinJobAge)


def slurm_job_states(job_ids: list[str]) -> dict[str, str] | None:
    """``{job id: state}`` of the jobs SLURM still knows (ended ones for a few minutes, ``MinJobAge``), or None
    where squeue does not answer. A job missing from the answer has ended long ago."""
    try:
        listed = subprocess.run(["squeue", "-h", "-t", "all", "-j", ",".join(job_ids), "-o", "%i %T"],
                                capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return None
    if listed.returncode != 0:
        return {} if "Invalid job id" in listed.stderr else None  # every one of them long gone, or no answer
    return dict(line.split(maxsplit=1) for line in listed.stdout.splitlines() if line.strip())


def all_ended(states: dict[str, str], job_ids: list[str], listed: set[str]) -> bool:
    """Whether every job of ``job_ids`` has ended: in an end state, or no longer listed by squeue although it was
    (``listed``: a job never listed may be one squeue does not show, on another cluster of a federation)."""
    return all(states.get(job, UNLISTED) in SLURM_ENDED or job not in states and job in listed for job in job_ids)


def submitted_job_ids(cluster) -> list[str]:
    """The SLURM job ids of the cluster's jobs that sbatch has accepted."""
    return [job.job_id for job in list(cluster.workers.values()) if getattr(job, "job_id", None)]


def wait_for_a_slurm_worker(cluster, client: Client, timeout_s: float, log_directory: str | None) -> None:
    """Wait up to ``timeout_s`` for the first worker, asking SLURM every ``SLURM_POLL_S`` whether the jobs still
    live: jobs that all ended before a worker joined are one line at once, not after the whole timeout."""
    deadline = time.monotonic() + timeout_s
    listed: set[str] = set()
    while True:
        try:
            client.wait_for_workers(1, timeout=max(0.1, min(SLURM_POLL_S, deadline - time.monotonic())))
            ids = sorted(submitted_job_ids(cluster), key=lambda job: (len(job), job))
            log.info("solvers=slurm: Dask workers joining from SLURM jobs %s", ", ".join(ids))
            return
        except TimeoutError:
            pass
        ids = submitted_job_ids(cluster)
        states = slurm_job_states(ids) if ids else None
        listed |= set(states or ())
        if states is not None and all_ended(states, ids, listed):
            ended = ", ".join(f"{job} {states.get(job, UNLISTED)}" for job in ids)
            output = f"{log_directory}/" if log_directory else "slurm-<job id>.out in this directory"
            raise SolverClusterError(f"solvers=slurm: the solver jobs ended before a Dask worker joined ({ended}); "
                                     f"their output is in {output}")
        if time.monotonic() >= deadline:
            pending = ", ".join(f"{job} {(states or {}).get(job, '?')}" for job in ids) or "none submitted"
            raise SolverClusterError(f"solvers=slurm: no Dask worker joined within {timeout_s:g} s (jobs: {pending}); "
                                     f"raise solvers.timeout_s for a long queue, or pick another solvers.partition")


class LostJobReplacer:
    """Submits a new job in place of one whose workers all left the scheduler after joining it.

    dask-jobqueue does not by itself: after ``cluster.scale`` a lost job's place stays empty, and
    ``cluster.adapt`` refills it only for jobs of one worker process (Dask's SpecCluster looks a lost
    worker up by its job's name, which a job of several processes does not share with its workers). A job
    counts as lost once none of its workers has been back for Dask's ``distributed.deploy.lost-worker-timeout``
    (a worker its nanny restarts comes back sooner); it is cancelled (a no-op where SLURM ended it) and its
    place submitted again. A job that never had a worker (pending, or failing at start) is left alone.
    Runs on the cluster's event loop, where the cluster keeps its own books.
    """

    def __init__(self, cluster):
        self.cluster = cluster
        self.job_ids: dict[str, str] = {}  # job name -> the id of its latest submitted job
        self.joined: set[tuple[str, str]] = set()  # (name, job id) of jobs whose workers joined
        self.missing_since: dict[tuple[str, str], float] = {}
        self.replaced: list[str] = []  # ids of the jobs replaced, in order

    async def check(self) -> None:
        cluster = self.cluster
        if cluster.status != Status.running:
            return
        grace = parse_timedelta(dask.config.get("distributed.deploy.lost-worker-timeout"))
        alive = {str(info.get("name")) for info in cluster.scheduler_info.get("workers", {}).values()}
        now = time.monotonic()
        for name, job in list(cluster.workers.items()):
            spec = cluster.worker_spec.get(name)
            if spec is None or not getattr(job, "job_id", None):
                continue
            self.job_ids[name] = job.job_id
            key = (name, job.job_id)
            if {f"{name}{suffix}" for suffix in spec.get("group", [""])} & alive:
                self.joined.add(key)
                self.missing_since.pop(key, None)
                continue
            if key not in self.joined or now - self.missing_since.setdefault(key, now) < grace:
                continue
            self.joined.discard(key)
            self.missing_since.pop(key, None)
            if cluster.workers.get(name) is job:
                del cluster.workers[name]
                await job.close()  # scancel: a no-op where SLURM ended the job
        # places without a job: those emptied above, and single-process jobs that Dask's SpecCluster dropped itself
        # after the same timeout (and would leave empty)
        empty = [name for name in cluster.worker_spec if name not in cluster.workers]
        for name in empty:
            lost = self.job_ids.pop(name, None)
            if lost is not None:
                self.replaced.append(lost)
                log.warning("solvers=slurm: SLURM job %s lost its workers (cancelled, preempted, out of time or a "
                            "failed node); submitting a job in its place", lost)
        if empty:
            cluster.scale(jobs=len(cluster.worker_spec))


def replace_lost_jobs(cluster) -> LostJobReplacer:
    """Check for lost jobs every ``REPLACE_CHECK_MS`` on the cluster's event loop until the cluster closes
    (the cluster stops its periodic callbacks then)."""
    replacer = LostJobReplacer(cluster)

    def install() -> None:
        callback = PeriodicCallback(replacer.check, REPLACE_CHECK_MS)
        cluster.periodic_callbacks["pdeop-replace-lost-jobs"] = callback
        callback.start()

    cluster.loop.add_callback(install)
    return replacer
