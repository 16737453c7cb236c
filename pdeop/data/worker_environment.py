"""The environment solver worker processes start in: one BLAS thread each, and glibc's own memory trimming.

Solver workers already fill the cores; BLAS threads inside each would oversubscribe the machine,
which slows the small dense products of Krylov solvers several times over. The thread-count
variables are read when a process imports NumPy, so they are set while workers start.

Dask's nannies start their workers with ``MALLOC_TRIM_THRESHOLD_=65536``
(``distributed.nanny.pre-spawn-environ``), to hand freed memory back to the system at once. Setting it at
all also fixes glibc's mmap threshold at 128 KiB, so every large temporary of a time-stepping solver is
a fresh mapping whose pages fault in again at each step: the Burgers solver stepped 3x slower under
it, with more system time than user time (benchmarks/dask_generation.py --problem burgers). Solver
workers keep glibc's adaptive defaults instead.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import dask

BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
NANNY_ENVIRON = "distributed.nanny.pre-spawn-environ"
# Dask's config as an environment variable, read by the Dask of every process started with this environment
# (SLURM jobs: sbatch exports it); a variable set to None is one the nannies do not set.
NANNY_ENVIRON_VARIABLE = "DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON"
UNTRIMMED = {"MALLOC_TRIM_THRESHOLD_": None}


@contextmanager
def single_blas_thread() -> Iterator[None]:
    """Within the block, processes started (spawned) get one BLAS thread; the parent's settings come back after."""
    with kept_variables({name: "1" for name in BLAS_THREAD_VARIABLES}):
        yield


@contextmanager
def solver_worker_environment() -> Iterator[None]:
    """Within the block, solver workers started by a nanny here (a ``LocalCluster``) or in a SLURM job submitted
    here get one BLAS thread and no ``MALLOC_TRIM_THRESHOLD_``."""
    with single_blas_thread(), kept_variables({NANNY_ENVIRON_VARIABLE: repr(UNTRIMMED)}), \
            dask.config.set({f"{NANNY_ENVIRON}.{name}": value for name, value in UNTRIMMED.items()}):
        yield


@contextmanager
def kept_variables(values: dict[str, str]) -> Iterator[None]:
    """``values`` in ``os.environ`` within the block; the variables' former values (or absence) after it."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
