"""Where the solvers run (``pdeop/conf/solvers/``), for generation and the online stream alike: this machine, an
existing Dask scheduler, or SLURM jobs (``SlurmSolvers``, in ``pdeop.data.slurm_solvers``).

Each setting opens a Dask ``distributed.Client`` for the length of one generation or one training run,
or none where a generation's solvers run in the generating process itself (one local worker). The
solver workers are single-threaded processes: one per core, so that BLAS threads do not oversubscribe
the cores (Dask's nanny starts every worker with one OpenMP/MKL/OpenBLAS thread).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import math
import os
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Union

from distributed import Client, LocalCluster, WorkerPlugin

from pdeop.data.worker_environment import solver_worker_environment
from pdeop.errors import ConfigError, PdeopError, first_line

if TYPE_CHECKING:
    from pdeop.data.slurm_solvers import SlurmSolvers

WORKERS_KEY = "solvers.workers (or data.generate_workers)"


class SolverClusterError(PdeopError):
    """The solvers' Dask cluster cannot be reached, has no workers, or lost them for good."""


def check_timeout(timeout_s: float, key: str = "solvers.timeout_s") -> None:
    """A wait in seconds: positive and finite."""
    if not 0 < timeout_s < math.inf:
        raise ConfigError(f"{key}: expected a positive number of seconds, got {timeout_s}")


@dataclass(frozen=True)
class LocalSolvers:
    """``solvers=local``: a ``LocalCluster`` of ``workers`` single-threaded processes on this machine.

    ``workers=None`` takes ``data.generate_workers`` (generation) or ``data.stream.workers`` (online);
    a generation with one worker runs its solvers in the generating process (no cluster to start,
    and the solvers' per-sample progress hook), unless ``in_process=False`` asks for a cluster.
    The workers start with one BLAS thread and without Dask's ``MALLOC_TRIM_THRESHOLD_``
    (``worker_environment.py``); what the nannies set in this process to start them is undone when the cluster
    closes. A generation whose cluster has no
    worker for ``timeout_s`` seconds stops with one line.
    """

    workers: int | None = None
    timeout_s: float = 600.0

    def __post_init__(self) -> None:
        check_timeout(self.timeout_s)

    @contextmanager
    def connect(self, default_workers: int, in_process: bool = True) -> Iterator[Client | None]:
        workers = default_workers if self.workers is None else self.workers
        if workers < 1:
            raise ConfigError(f"{WORKERS_KEY}: expected a positive number of solver processes, got {workers}")
        if workers == 1 and in_process:
            yield None
            return
        with kept_environment():
            with solver_worker_environment(), warnings.catch_warnings():
                # another cluster has Dask's usual port: a free one is taken, and dashboard_link prints it
                warnings.filterwarnings("ignore", message=r"Port 8787 is already in use")
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=":8787" if has_dashboard() else None)
            with cluster, Client(cluster) as client:
                yield quiet_cancellations(client)


class CancelledTaskLines(logging.Filter):
    """Drops a worker's warning that a task it was running ended with ``CancelledError``: pdeop cancels the tasks in
    flight when a stream or a generation stops, and every worker then warns of it, in lines that read as errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "ended with CancelledError" not in record.getMessage()


class QuietCancellations(WorkerPlugin):
    """Installs ``CancelledTaskLines`` on the workers of pdeop's own clusters (this machine's, SLURM jobs'), those
    started later too; a cluster of the user's (``solvers=address``) keeps its logging."""

    name = "pdeop-quiet-cancellations"

    def setup(self, worker) -> None:
        logging.getLogger("distributed.worker.state_machine").addFilter(CancelledTaskLines())


def quiet_cancellations(client: Client) -> Client:
    """``client`` with ``QuietCancellations`` registered on its cluster; the client."""
    client.register_plugin(QuietCancellations())
    return client


@dataclass(frozen=True)
class AddressSolvers:
    """``solvers=address``: the workers of a running Dask scheduler (``dask scheduler``, ``dask worker <address>``).

    Refused in one line when the scheduler does not answer, or has no worker, within ``timeout_s``.
    """

    address: str | None = None
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        check_timeout(self.timeout_s)

    @contextmanager
    def connect(self, default_workers: int, in_process: bool = True) -> Iterator[Client]:
        if not self.address:
            raise ConfigError("solvers.address: expected the Dask scheduler's address, e.g. "
                              "solvers.address=tcp://host:8786")
        client = connect_within(self.address, self.timeout_s)
        with client:
            wait_for_a_worker(client, self.timeout_s, f"solvers.address={self.address}")
            yield client


Solvers = Union[LocalSolvers, AddressSolvers, "SlurmSolvers"]

# The SLURM setting's names, moved to pdeop.data.slurm_solvers, still found here on first use (PEP 562): a config
# or run written before names pdeop.data.solvers.SlurmSolvers. Imported late, as that module imports this one.
MOVED_TO_SLURM_SOLVERS = ("SlurmSolvers", "LostJobReplacer", "replace_lost_jobs", "sbatch_refuses",
                          "slurm_cluster_class", "slurm_job_states", "submitted_job_ids", "wait_for_a_slurm_worker",
                          "SLURM_ENDED", "SLURM_POLL_S", "REPLACE_CHECK_MS")


def __getattr__(name: str):
    if name in MOVED_TO_SLURM_SOLVERS:
        return getattr(importlib.import_module("pdeop.data.slurm_solvers"), name)
    raise AttributeError(f"module 'pdeop.data.solvers' has no attribute {name!r}")


@contextmanager
def kept_environment() -> Iterator[None]:
    """``os.environ`` as it was before the block: Dask's nannies set their workers' pre-spawn variables
    (``distributed.nanny.pre-spawn-environ``) in the process that runs them, which is this one for a
    ``LocalCluster``, and leave them there."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def quiet_dask() -> Iterator[None]:
    """Within the block, Dask's scheduler, nannies and client log warnings and errors only: their routine
    start and stop lines (info, which Hydra's logging shows) would bury the progress bar."""
    logger = logging.getLogger("distributed")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def connect_within(address: str, timeout_s: float) -> Client:
    """A client of the scheduler at ``address``, or one line after ``timeout_s``. Dask's own timeout does not
    cover a peer that accepts the connection and stays silent, so the client is made in a daemon thread that
    is left behind when it does not answer in time."""
    made: dict[str, Client | BaseException] = {}

    def attempt() -> None:
        try:
            made["client"] = Client(address, timeout=f"{timeout_s}s")
        except Exception as exc:  # noqa: BLE001 -- its type is quoted in the one-line error below
            made["error"] = exc

    thread = threading.Thread(target=attempt, daemon=True, name="pdeop-dask-connect")
    thread.start()
    thread.join(timeout_s + 1)
    if "client" in made:
        return made["client"]
    error = made.get("error")
    if isinstance(error, ValueError):
        raise SolverClusterError(f"solvers.address={address}: not an address Dask can reach ({first_line(error)}); "
                                 f"expected the scheduler's address, e.g. tcp://host:8786")
    if isinstance(error, MemoryError):  # Dask read the answer's first bytes as the length of a message
        raise SolverClusterError(f"solvers.address={address}: something answered there that is not a Dask "
                                 f"scheduler; fix the address (the scheduler prints it as it starts)")
    reason = type(error).__name__ if error is not None else "no answer"
    raise SolverClusterError(f"solvers.address={address}: no Dask scheduler answered within {timeout_s:g} s "
                             f"({reason}); start one with `dask scheduler` (and workers with `dask worker "
                             f"<address>`), or fix the address")


def wait_for_a_worker(client: Client, timeout_s: float, key: str) -> None:
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except TimeoutError as exc:
        raise SolverClusterError(f"{key}: no Dask worker joined the scheduler within {timeout_s:g} s") from exc


def has_dashboard() -> bool:
    """Whether Dask can serve its dashboard here (it needs bokeh)."""
    return importlib.util.find_spec("bokeh") is not None


def workers_alive(client: Client) -> int:
    """Workers the scheduler has now (a summary without the per-worker details)."""
    return int(client.scheduler_info(n_workers=0)["n_workers"])


def dashboard_link(client: Client) -> str | None:
    """The Dask dashboard's address, where the scheduler serves one and bokeh, which draws it, is installed."""
    services = client.scheduler_info(n_workers=0).get("services", {})
    return client.dashboard_link if has_dashboard() and "dashboard" in services else None
