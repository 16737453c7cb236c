"""Generation throughput against solver workers: Dask (a LocalCluster) against the multiprocessing pool it replaced,
and Dask workers in SLURM jobs.

    python benchmarks/dask_generation.py [--problem darcy|burgers] [--resolution 65] [--samples 256]
                                         [--workers 1 2] [--slurm]

For each worker count, in this one run and on warm workers (process start-up not counted): the same chunks
(``chunk_size``) solved by a spawned pool's ``imap``, by Dask's ``Client.map`` on a LocalCluster started with
Dask's own worker environment (its nannies' ``MALLOC_TRIM_THRESHOLD_=65536``) and on one started as pdeop's
``LocalSolvers`` start theirs (``worker_environment.py``: one BLAS thread, glibc's own trimming), and
``generate`` on the latter (``solvers=address``: drawing the inputs, the solves, progress events and the HDF5
writes). Printed: samples/s of each, and Dask's overhead per chunk, (pdeop's Dask seconds - the pool's) / chunks.
``--problem burgers`` (ETDRK4, 1,000 steps of 1e-4; try ``--resolution 8192 --samples 64``) is where the
trimming shows: a time-stepping solver's temporaries above glibc's fixed 128 KiB mmap threshold at every step.

``--slurm`` adds the same through as many 1-core SLURM jobs (dask-jobqueue; SLURM_CONF must name a running cluster,
e.g. slurm/local-cluster.sh's, and the jobs must import this pdeop: sbatch exports this environment, PYTHONPATH
included): ``Client.map`` and ``generate`` on the warm job workers, the overhead per chunk against the LocalCluster's
``Client.map``, and the whole ``generate`` with ``solvers=slurm`` as a user runs it (job submission, start-up and
cancellation included), in seconds.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from functools import partial
from pathlib import Path

import dask
import numpy as np
from distributed import Client, LocalCluster

from pdeop.data.generation import DatasetSpec, chunk_size, generate, solve_with
from pdeop.data.slurm_solvers import SlurmSolvers, slurm_cluster_class
from pdeop.data.solvers import AddressSolvers, LocalSolvers, kept_environment
from pdeop.data.worker_environment import single_blas_thread
from pdeop.problems import Burgers1D, Darcy

PROBLEMS = {"darcy": lambda resolution: Darcy(resolution=resolution),
            "burgers": lambda resolution: Burgers1D(resolution=resolution, dt=1e-4, final_time=0.1, record_every=0.1)}


def chunks_of(spec: DatasetSpec) -> list[np.ndarray]:
    """The chunks ``generate`` solves, every split's."""
    rng = np.random.default_rng(spec.seed)
    chunks = []
    for n in spec.split_sizes().values():
        inputs = spec.problem.sample_inputs(n, rng)
        size = chunk_size(n)
        chunks += np.array_split(inputs, range(size, n, size))
    return chunks


def pool_seconds(spec: DatasetSpec, workers: int) -> float:
    chunks = chunks_of(spec)
    with single_blas_thread():
        pool = multiprocessing.get_context("spawn").Pool(workers)
    with pool:
        solve = partial(solve_with, spec.problem, None)
        pool.map(solve, chunks[:workers], chunksize=1)  # warm: imports and the first factorisations
        start = time.perf_counter()
        list(pool.imap(solve, chunks))
        return time.perf_counter() - start


def dask_environment_seconds(spec: DatasetSpec, workers: int) -> float:
    """Seconds of the chunks solved by ``Client.map`` on a warm LocalCluster whose workers start in Dask's own
    environment (one BLAS thread, as pdeop's): the setting pdeop's workers no longer use, for comparison. The
    nannies' variables, which they leave in this process, are undone after it, so that they do not reach the next
    cluster's workers."""
    with kept_environment():
        with single_blas_thread():
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        with cluster, Client(cluster) as client:
            return mapped_seconds(spec, client, workers)


def pdeop_seconds(spec: DatasetSpec, workers: int) -> tuple[float, float]:
    """Seconds of the chunks solved by ``Client.map`` and of ``generate`` (by address), on the warm workers of the
    cluster ``solvers=local`` starts."""
    with LocalSolvers(workers=workers).connect(workers, in_process=False) as client:
        return mapped_seconds(spec, client, workers), generate_seconds(spec, client.scheduler.address)


def mapped_seconds(spec: DatasetSpec, client: Client, workers: int) -> float:
    """Seconds of the chunks solved by ``Client.map`` once ``workers`` workers have joined and solved a chunk each."""
    chunks = chunks_of(spec)
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1 TiB"}):  # as generate does
        client.wait_for_workers(workers, timeout=600)
        solve = partial(solve_with, spec.problem, None)
        client.gather(client.map(solve, chunks[:workers], pure=False))
        start = time.perf_counter()
        client.gather(client.map(solve, chunks, pure=False))
        return time.perf_counter() - start


def generate_seconds(spec: DatasetSpec, address: str) -> float:
    """Seconds of ``generate`` (drawing the inputs, the solves, progress events and the HDF5 writes) on the
    running workers of the scheduler at ``address``."""
    with tempfile.TemporaryDirectory() as data_dir:
        start = time.perf_counter()
        generate(spec, data_dir, progress=False, solvers=AddressSolvers(address))
        return time.perf_counter() - start


SLURM_JOB = {"cores": 1, "memory": "1GB", "walltime": "00:30:00", "job_name": "pdeop-benchmark"}


def slurm_seconds(spec: DatasetSpec, jobs: int) -> tuple[float, float, float]:
    """Seconds of ``Client.map`` and ``generate`` on the warm workers of ``jobs`` 1-core SLURM jobs, and of the
    whole ``generate`` with ``SlurmSolvers`` (submission, queueing, worker start-up, cancellation)."""
    with tempfile.TemporaryDirectory(prefix="solver-jobs-", dir=Path.cwd()) as logs:  # where compute nodes see it
        cluster = slurm_cluster_class()(processes=1, log_directory=logs, scheduler_options={"dashboard_address": ":0"},
                                        **SLURM_JOB)
        with cluster, Client(cluster) as client:
            cluster.scale(jobs=jobs)
            solved, generated = mapped_seconds(spec, client, jobs), generate_seconds(spec, cluster.scheduler_address)
        with tempfile.TemporaryDirectory() as data_dir:
            start = time.perf_counter()
            generate(spec, data_dir, progress=False,
                     solvers=SlurmSolvers(jobs=jobs, timeout_s=600, log_directory=logs, **SLURM_JOB))
            return solved, generated, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", choices=sorted(PROBLEMS), default="darcy")
    parser.add_argument("--resolution", type=int, default=65)
    parser.add_argument("--samples", type=int, default=256, help="training samples (val and test: an eighth each)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--slurm", action="store_true", help="also through 1-core SLURM jobs (SLURM_CONF's cluster)")
    args = parser.parse_args()
    spec = DatasetSpec(PROBLEMS[args.problem](args.resolution), args.samples, args.samples // 8, args.samples // 8,
                       subsample=1, seed=0)
    total = sum(spec.split_sizes().values())
    n_chunks = len(chunks_of(spec))
    print(f"{type(spec.problem).__name__}, resolution {args.resolution}, {total} samples in {n_chunks} chunks")
    slurm_header = "  | slurm map, generate samples/s; overhead ms/chunk; cold generate s" if args.slurm else ""
    print(f"{'workers':>7} {'pool':>9} {'dask-env':>9} {'dask map':>9} {'generate':>9}  samples/s "
          f"(dask-env: Dask's worker environment); dask overhead ms/chunk{slurm_header}")
    for workers in args.workers:
        pool = pool_seconds(spec, workers)
        dask_environment = dask_environment_seconds(spec, workers)
        mapped, generated = pdeop_seconds(spec, workers)
        row = (f"{workers:>7} {total / pool:>9.2f} {total / dask_environment:>9.2f} {total / mapped:>9.2f} "
               f"{total / generated:>9.2f}  {1e3 * (mapped - pool) / n_chunks:>9.1f}")
        if args.slurm:
            slurm_mapped, slurm_generated, cold = slurm_seconds(spec, workers)
            row += (f"  | {total / slurm_mapped:>9.1f} {total / slurm_generated:>9.1f} "
                    f"{1e3 * (slurm_mapped - mapped) / n_chunks:>9.1f} {cold:>9.1f}")
        print(row, flush=True)


if __name__ == "__main__":
    main()
