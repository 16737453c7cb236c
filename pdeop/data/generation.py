"""Turn a problem, sample counts and a seed into a stored dataset, reusing it when it exists.

The file name carries a hash of every parameter that shapes the data, so a changed parameter
writes a new file and an unchanged one is found again. The progress bar counts samples as the
solvers report them (time-stepping solvers every hundredth of their steps, through a shared
counter from the solver processes), not only as whole chunks are written, so its rate and ETA
move from the first seconds.

The solvers run where ``solvers`` says (``pdeop.data.solvers``: this process, a Dask ``LocalCluster``,
an existing scheduler or SLURM jobs). Every split is cut into the same chunks whatever runs them
(``chunk_size``), so the file is the same bit for bit on any cluster with any number of workers:
batched solvers (SKR's sorting and recycling) depend on which samples share a batch, and HDF5 lays
out the file by the order and extent of the writes. This process alone writes the file, chunk after
chunk in order, as they arrive; a chunk of a lost worker is solved again by Dask. Every solved chunk
is also kept as a shard (``pdeop.data.shards``) until the file is in place, so a killed generation,
run again, solves only the chunks it had not finished. Dask workers report
progress as events (``Worker.log_event``), per sample where the solver has a progress hook.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import threading
import time
import uuid
from concurrent.futures import CancelledError
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Callable, Iterator, Sequence

import dask
import numpy as np
from distributed import Client, Future, KilledWorker, get_worker, wait
from distributed.comm.core import CommClosedError
from tqdm.auto import tqdm

import pdeop
from pdeop.config import subsampled_size
from pdeop.data.solvers import (WORKERS_KEY, LocalSolvers, SolverClusterError, Solvers, dashboard_link,
                                 quiet_dask, workers_alive)
from pdeop.data.shards import ChunkShards
from pdeop.data.store import FORMAT_VERSION, DatasetAttrs, DatasetWriter, DiskFullError, mib, remove_stale_temps
from pdeop.errors import ConfigError, first_line
from pdeop.io import UnwritablePathError, free_bytes, writable_directory
from pdeop.problems import Problem
from pdeop.problems.base import Progress, is_periodic

DATA_DIR_KEY = "PDEOP_DATA_DIR (or paths.data_dir=<dir>)"  # what moves the data directory
METADATA_BYTES = 64 * 2**10  # HDF5's superblock, object headers and attributes: a few KiB, rounded up
CHUNK_INDEX_BYTES = 64  # HDF5's chunk index, per stored chunk (one sample of one array)
POLL_SECONDS = 0.2  # how often the bar reads the solver processes' progress while a chunk is pending
CHUNKED_FOR = 2  # every split is cut into chunks as for this many workers, whatever the cluster (chunk_size)


@dataclass(frozen=True)
class DatasetSpec:
    """What to generate: sample counts per split, the training subsampling and extra test resolutions.

    ``subsample`` takes every r-th fine-grid node for train/val/test (FNO: 421 -> 85 with r = 5);
    ``test_subsamples`` adds the test set at further factors (smaller r = finer grid) for
    zero-shot super-resolution. ``store_train=False`` (online training) draws the training
    inputs but neither solves nor stores them, so validation and test are the very samples an
    offline run with the same spec is measured on.
    """

    problem: Problem
    n_train: int
    n_val: int
    n_test: int
    subsample: int
    test_subsamples: tuple[int, ...] = ()
    seed: int = 0
    store_train: bool = True

    def __post_init__(self) -> None:
        for key in ("n_train", "n_val", "n_test"):
            if getattr(self, key) < 1:
                raise ConfigError(f"data.{key}: expected a positive number of samples, got {getattr(self, key)}")
        fine = self.problem.params()["resolution"]
        periodic = is_periodic(self.problem)
        for r in (self.subsample, *self.test_subsamples):
            if periodic and (r < 1 or fine % r):
                raise ConfigError(f"data subsample factor {r}: expected a positive divisor of the periodic "
                                  f"resolution {fine}")
            if not periodic and (r < 1 or (fine - 1) % r):
                raise ConfigError(
                    f"data subsample factor {r}: expected a positive divisor of resolution - 1 = {fine - 1}, "
                    f"so that the subsampled grid keeps both boundaries"
                )

    def split_sizes(self) -> dict[str, int]:
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}

    def stored_splits(self) -> list[str]:
        return [split for split in self.split_sizes() if split != "train" or self.store_train]

    def split_subsamples(self, split: str) -> list[int]:
        """Subsampling factors stored for ``split``, coarsest grid first."""
        if split != "test":
            return [self.subsample]
        return sorted({self.subsample, *self.test_subsamples}, reverse=True)

    def params(self) -> dict:
        return {
            "problem": self.problem.params(),
            "n_train": self.n_train,
            "n_val": self.n_val,
            "n_test": self.n_test,
            "subsample": self.subsample,
            "test_subsamples": sorted(self.test_subsamples),
            "seed": self.seed,
            "format_version": FORMAT_VERSION,
            **({} if self.store_train else {"store_train": False}),
        }

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.params(), sort_keys=True).encode()).hexdigest()[:12]

    def path(self, data_dir: str | Path) -> Path:
        return Path(data_dir) / f"{self.problem.name}_{self.digest()}.h5"


def subsample_grid(fields: np.ndarray, factor: int, spatial_dims: int | None = None) -> np.ndarray:
    """Every ``factor``-th node along the last ``spatial_dims`` axes (default: all after the channels).

    On a grid with boundary nodes both boundaries are kept; a periodic grid of s nodes becomes s / factor.
    Trajectories ``[samples, channels, times, *grid]`` pass ``spatial_dims`` so the time axis is kept whole.
    """
    spatial_dims = fields.ndim - 2 if spatial_dims is None else spatial_dims
    return fields[(Ellipsis,) + (slice(None, None, factor),) * spatial_dims]


def chunk_size(n: int, workers: int = CHUNKED_FOR) -> int:
    """Samples per solver call: a few chunks per worker (load balance; a solver without a progress hook moves the
    bar a chunk at a time), at most 100 (a batch long enough for Krylov recycling to pay off, short enough to keep
    memory low). Generation cuts for ``CHUNKED_FOR`` workers (the committed configs' ``generate_workers``) on
    any cluster, so that the chunks, and with them the file, do not depend on the workers."""
    return int(np.clip(np.ceil(n / (4 * workers)), 1, 100))


class ReportedSamples:
    """Samples' worth solved on the cluster, added to by Dask's event handler thread and read by the bar."""

    def __init__(self):
        self.lock = threading.Lock()
        self.value = 0.0

    def add(self, event: tuple[float, float]) -> None:
        """A ``(time, samples)`` event a worker logged (``report_to_client``)."""
        with self.lock:
            self.value += event[1]


class SampleProgress:
    """The bar's count in samples: those written, or more where the solvers report work on chunks in flight
    (``reported``, samples' worth), in whole samples so that tqdm's rate and ETA are samples per second."""

    def __init__(self, bar: tqdm, counter: ReportedSamples | None = None):
        self.bar, self.counter = bar, counter
        self.written, self.reported = 0, 0.0

    def report(self, done: float) -> None:
        """A solver in this process has done ``done`` samples' worth more (a ``Progress`` hook)."""
        self.reported += done
        self.show()

    def poll(self) -> None:
        """Read what the solver processes reported to ``counter``."""
        self.reported = self.counter.value
        self.show()

    def wrote(self, n: int) -> None:
        self.written += n
        self.show()

    def show(self) -> None:
        count = min(self.bar.total, max(self.written, math.floor(self.reported + 1e-6)))
        if count > self.bar.n:
            self.bar.update(count - self.bar.n)


def takes_progress(problem: Problem) -> bool:
    """Whether ``problem.solve`` reports its progress (an optional ``progress`` keyword)."""
    return "progress" in inspect.signature(problem.solve).parameters


def solve_with(problem: Problem, hook: Progress, chunk: np.ndarray) -> np.ndarray:
    """``problem.solve(chunk)``, reporting to ``hook`` where the solver can."""
    return problem.solve(chunk, progress=hook) if takes_progress(problem) else problem.solve(chunk)


def solve_on_worker(problem: Problem, topic: str, chunk: np.ndarray) -> np.ndarray:
    """A Dask task: solve ``chunk``, logging the samples' worth done under ``topic`` (per chunk where the solver
    has no progress hook)."""
    worker = get_worker()
    solutions = solve_with(problem, partial(worker.log_event, topic), chunk)
    if not takes_progress(problem):
        worker.log_event(topic, float(len(chunk)))
    return solutions


def cluster_results(client: Client, solve: Callable[[np.ndarray], np.ndarray], chunks: Sequence[np.ndarray],
                    poll: Callable[[], None]) -> Iterator[np.ndarray]:
    """``solve`` of each chunk on the cluster, yielded in order; at most two chunks per live worker (and one more)
    are submitted ahead of the one awaited, so that no worker idles and memory holds only a few chunks. The
    inputs ride in the task (not scattered to a worker, where they would die with it), so that Dask can solve a
    lost worker's chunk again; Dask's warning about such large tasks is off."""
    futures: dict[int, Future] = {}
    for index in range(len(chunks)):
        try:
            ahead = min(len(chunks), index + 2 * workers_alive(client) + 1)
            with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1 TiB"}):
                for later in range(index + len(futures), ahead):
                    futures[later] = client.submit(solve, chunks[later], pure=False)
            solutions = await_result(futures.pop(index), poll)
        except (CancelledError, CommClosedError) as exc:  # the scheduler's connection lost: its tasks cancelled
            raise SolverClusterError(f"the connection to the Dask scheduler was lost mid-generation "
                                     f"({type(exc).__name__}: {first_line(exc)}); the chunks solved so far are kept, "
                                     f"and the same command goes on from them") from exc
        yield solutions


def await_result(future: Future, poll: Callable[[], None]) -> np.ndarray:
    """The chunk's solutions, calling ``poll`` every ``POLL_SECONDS`` while it is pending; a chunk whose workers
    kept dying (memory, a crashing solver) is one line."""
    while True:
        try:
            wait(future, timeout=POLL_SECONDS)
            return future.result()
        except TimeoutError:
            poll()
        except KilledWorker as exc:
            raise SolverClusterError(f"solver workers died on every try of a chunk ({exc}); give them more memory "
                                     f"(solvers.memory on SLURM) or fewer workers a machine ({WORKERS_KEY})") from exc


def check_finite(solutions: np.ndarray, problem: Problem, split: str, start: int) -> None:
    """A solver that diverged (an explicit step beyond its stability limit) is stopped at the first bad sample,
    before a NaN reaches the file and, much later, the training loss."""
    finite = np.isfinite(solutions.reshape(len(solutions), -1)).all(axis=1)
    if not finite.all():
        index = start + int(np.argmin(finite))
        hint = " (lower data.problem.dt or raise data.problem.resolution)" if "dt" in problem.params() else ""
        raise ConfigError(f"the {problem.name} solver diverged on {split} sample {index}: its solution holds NaN or "
                          f"Inf{hint}; nothing was written")


def estimate_bytes(spec: DatasetSpec, outputs_only: bool = False) -> int:
    """Size of the file ``spec`` makes: float32 samples per stored split and grid, float64 coordinates and
    times, HDF5's chunk index and metadata, and 2 % more for what HDF5 rounds up. ``outputs_only``: about
    the size of its chunk shards (the solutions alone)."""
    problem = spec.problem
    coords = problem.coordinates()
    times = len(problem.times()) if hasattr(problem, "times") else 1
    fine = next(iter(coords.values())).shape[-1]
    channels = (0 if outputs_only else len(problem.input_names)) + len(problem.output_names) * times
    total = METADATA_BYTES
    for split in spec.stored_splits():
        n = spec.split_sizes()[split]
        for r in spec.split_subsamples(split):
            nodes = subsampled_size(fine, r)
            total += 4 * n * channels * nodes ** len(coords) + 8 * (nodes * len(coords) + times)
            total += 2 * n * CHUNK_INDEX_BYTES
    return int(total * 1.02)


def check_space(path: Path, needed: int) -> None:
    """Refuse to start a file that cannot fit in the free space of its directory."""
    free = free_bytes(path.parent)
    if needed > free:
        raise DiskFullError(f"'{path.parent}' has {mib(free)} free, generating '{path.name}' needs about "
                            f"{mib(needed)}: free space there or set {DATA_DIR_KEY} to write elsewhere")


def generate(spec: DatasetSpec, data_dir: str | Path, workers: int = 1, progress: bool = True,
             solvers: Solvers | None = None) -> Path:
    """Write the dataset described by ``spec`` under ``data_dir``, or return the existing file.

    The solvers run where ``solvers`` says (default: this machine, ``workers`` processes). Before
    anything is solved: the directory must be writable and have room for the file and its chunk
    shards (``estimate_bytes``), and temporaries of this file left by a killed generation are
    removed (those of a live one are locked and kept); its shards are reused.
    """
    path = spec.path(data_dir)
    if path.is_file():
        return path
    writable_directory(path.parent, DATA_DIR_KEY)
    if path.is_dir() or (path.is_symlink() and not path.exists()):  # the finished file could not be renamed there
        raise UnwritablePathError(f"{DATA_DIR_KEY}: '{path}', where this dataset goes, is taken by something that "
                                  f"is not a dataset file (a folder or a broken link); move it away, or give "
                                  f"{DATA_DIR_KEY} another folder")
    remove_stale_temps(path)
    shards = ChunkShards(path)
    needed = estimate_bytes(spec)
    check_space(path, needed + estimate_bytes(spec, outputs_only=True) - shards.size())
    try:
        solve_into(path, spec, workers, progress, solvers or LocalSolvers(), shards, needed)
    except (ConfigError, DiskFullError):
        shards.remove()  # a rerun needs another setting or more space: the shards would only fill the disk
        raise
    shards.remove()
    return path


def solve_into(path: Path, spec: DatasetSpec, workers: int, progress: bool, solvers: Solvers, shards: ChunkShards,
               needed: int) -> None:
    """Solve the chunks that ``shards`` does not hold, where ``solvers`` says, and write the file."""
    problem = spec.problem
    total = sum(n for split, n in spec.split_sizes().items() if split in spec.stored_splits())
    with quiet_dask(), solvers.connect(workers) as client, \
            DatasetWriter(path, dataset_attrs(spec), needed, DATA_DIR_KEY) as writer, \
            tqdm(total=total, desc=f"generating {path.name}", unit="sample", disable=not progress) as bar:
        if shards.count() and progress:
            bar.write(f"reusing the {shards.count()} chunks an interrupted generation of {path.name} solved")
        if client is None:
            tracker = SampleProgress(bar)
            write_splits(spec, writer, tracker, partial(map, partial(solve_with, problem, tracker.report)), shards)
        else:
            with progress_events(client) as (topic, counter):
                tracker = SampleProgress(bar, counter)
                link = dashboard_link(client)
                if link and progress:
                    bar.write(f"Dask dashboard: {link}")
                poll = partial(show_cluster, client, tracker, WorkerWatch(solvers.timeout_s))
                solve = partial(solve_on_worker, problem, topic)
                write_splits(spec, writer, tracker, lambda chunks: cluster_results(client, solve, chunks, poll),
                             shards)


def dataset_attrs(spec: DatasetSpec) -> DatasetAttrs:
    problem = spec.problem
    return DatasetAttrs(
        problem=problem.name,
        params=spec.params(),
        seed=spec.seed,
        pdeop_version=pdeop.__version__,
        created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        input_names=tuple(problem.input_names),
        output_names=tuple(problem.output_names),
    )


@contextmanager
def progress_events(client: Client) -> Iterator[tuple[str, ReportedSamples]]:
    """A topic of this generation's own for the workers' progress events, and the count they add to."""
    topic, counter = f"pdeop-progress-{uuid.uuid4().hex}", ReportedSamples()
    client.subscribe_topic(topic, counter.add)
    try:
        yield topic, counter
    finally:
        client.unsubscribe_topic(topic)


class WorkerWatch:
    """Ends a generation left without a single worker for ``limit_s`` seconds (every job lost and none started
    in its place, a scheduler whose workers went away): one line, and the chunks solved so far stay kept."""

    def __init__(self, limit_s: float):
        self.limit_s = limit_s
        self.alone_since: float | None = None

    def saw(self, workers: int) -> None:
        if workers:
            self.alone_since = None
            return
        now = time.monotonic()
        self.alone_since = self.alone_since or now
        if now - self.alone_since > self.limit_s:
            raise SolverClusterError(f"no solver worker for {self.limit_s:g} s (solvers.timeout_s): the cluster lost "
                                     f"them all and none came back; the chunks solved so far are kept, and the same "
                                     f"command solves only the rest")


def show_cluster(client: Client, tracker: SampleProgress, watch: WorkerWatch) -> None:
    """Move the bar to what the workers reported and show how many are alive (none for too long ends it)."""
    tracker.poll()
    workers = workers_alive(client)
    tracker.bar.set_postfix(workers=workers, refresh=False)
    watch.saw(workers)


def write_splits(spec: DatasetSpec, writer: DatasetWriter, tracker: SampleProgress,
                 solve_all: Callable[[list[np.ndarray]], Iterator[np.ndarray]], shards: ChunkShards) -> None:
    """Draw each split's inputs, cut them into chunks, and write the chunks' solutions in order: those ``shards``
    holds as kept, the others as ``solve_all`` yields them (each kept as a shard before it is written)."""
    problem = spec.problem
    rng = np.random.default_rng(spec.seed)
    coords = problem.coordinates()
    times = problem.times() if hasattr(problem, "times") else None  # time-dependent: trajectories
    for split, n in spec.split_sizes().items():
        inputs = problem.sample_inputs(n, rng)
        if split not in spec.stored_splits():
            continue  # drawn all the same, so the later splits match the stored-train file
        grids = {r: subsampled_size(inputs.shape[-1], r) for r in spec.split_subsamples(split)}
        for r, grid in grids.items():
            writer.create(split, grid, n, inputs.shape[1], len(problem.output_names),
                          {k: v[::r] for k, v in coords.items()}, r, times)
        size = chunk_size(n)
        starts = range(0, n, size)
        chunks = np.array_split(inputs, starts[1:])
        kept = {start for start, chunk in zip(starts, chunks)
                if shards.holds(split, start, start + len(chunk), list(grids.values()))}
        solved = solve_all([chunk for start, chunk in zip(starts, chunks) if start not in kept])
        for start, chunk in zip(starts, chunks):
            stop = start + len(chunk)
            if start in kept:
                solutions = shards.load(split, start, stop)
            else:
                fresh = next(solved)
                check_finite(fresh, problem, split, start)
                solutions = {grid: subsample_grid(fresh, r, len(coords)).astype(np.float32)
                             for r, grid in grids.items()}
                shards.save(split, start, stop, solutions)
            for r, grid in grids.items():
                writer.write(split, grid, start, subsample_grid(chunk, r, len(coords)), solutions[grid])
            tracker.wrote(len(chunk))
