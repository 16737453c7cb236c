"""Solver worker processes: one BLAS thread each, and none outliving its parent.

Solver workers already fill the cores; BLAS threads inside each would oversubscribe the machine,
which slows the small dense products of Krylov solvers several times over. The thread-count
variables are read when a process imports NumPy, so they are set while workers start.

A parent killed with SIGKILL runs no cleanup: its workers, blocked on queues they hold both ends
of, would solve on forever. ``exit_with_parent``, run first in every worker, ties them to it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
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


PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent dies


def exit_with_parent(parent: int) -> None:
    """End this worker when process ``parent`` ends: the kernel's parent-death signal on Linux, elsewhere a
    thread that polls the parent; a parent already gone ends the worker at once."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="pdeop-parent-watch").start()
    if os.getppid() != parent:
        os._exit(1)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)
