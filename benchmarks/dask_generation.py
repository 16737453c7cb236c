"""Generation throughput against solver workers: Dask (a LocalCluster) against the multiprocessing pool it replaced.

    python benchmarks/dask_generation.py [--resolution 65] [--samples 256] [--workers 1 2]

For each worker count, in this one run and on warm workers (process start-up not counted): the same chunks
(``chunk_size``) solved by a spawned pool's ``imap`` and by Dask's ``Client.map``, and ``generate`` on the
LocalCluster (``solvers=address``: drawing the inputs, the solves, progress events and the HDF5 writes).
Printed: samples/s of each, and Dask's overhead per chunk, (Dask's seconds - the pool's) / chunks.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from functools import partial

import dask
import numpy as np
from distributed import Client, LocalCluster

from pdeop.data.blas import single_blas_thread
from pdeop.data.generation import DatasetSpec, chunk_size, generate, solve_with
from pdeop.data.solvers import AddressSolvers
from pdeop.problems import Darcy


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


def dask_seconds(spec: DatasetSpec, workers: int) -> tuple[float, float]:
    """Seconds of the chunks solved by ``Client.map`` and of ``generate``, on one warm LocalCluster."""
    chunks = chunks_of(spec)
    with single_blas_thread():
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, Client(cluster) as client, tempfile.TemporaryDirectory() as data_dir, \
            dask.config.set({"distributed.admin.large-graph-warning-threshold": "1 TiB"}):  # as generate does
        solve = partial(solve_with, spec.problem, None)
        client.gather(client.map(solve, chunks[:workers], pure=False))
        start = time.perf_counter()
        client.gather(client.map(solve, chunks, pure=False))
        solved = time.perf_counter() - start
        start = time.perf_counter()
        generate(spec, data_dir, progress=False, solvers=AddressSolvers(cluster.scheduler_address))
        return solved, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=65)
    parser.add_argument("--samples", type=int, default=256, help="training samples (val and test: an eighth each)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    spec = DatasetSpec(Darcy(resolution=args.resolution), args.samples, args.samples // 8, args.samples // 8,
                       subsample=1, seed=0)
    total = sum(spec.split_sizes().values())
    n_chunks = len(chunks_of(spec))
    print(f"Darcy {args.resolution}x{args.resolution} (direct solver), {total} samples in {n_chunks} chunks")
    print(f"{'workers':>7} {'pool':>9} {'dask map':>9} {'generate':>9}  samples/s; dask overhead ms/chunk")
    for workers in args.workers:
        pool = pool_seconds(spec, workers)
        mapped, generated = dask_seconds(spec, workers)
        print(f"{workers:>7} {total / pool:>9.1f} {total / mapped:>9.1f} {total / generated:>9.1f}  "
              f"{1e3 * (mapped - pool) / n_chunks:.1f}")

if __name__ == "__main__":
    main()
