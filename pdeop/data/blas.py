"""Solver worker processes: one BLAS thread each.

Solver workers already fill the cores; BLAS threads inside each would oversubscribe the machine,
which slows the small dense products of Krylov solvers several times over. The thread-count
variables are read when a process imports NumPy, so they are set while workers start.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def single_blas_thread() -> Iterator[None]:
    """Within the block, processes started (spawned) get one BLAS thread; the parent's settings come back after."""
    saved = {name: os.environ.get(name) for name in BLAS_THREAD_VARIABLES}
    os.environ.update({name: "1" for name in BLAS_THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value
