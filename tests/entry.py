"""Run an entry point (``train.py``, ``evaluate.py``, ``-m pdeop.generate`` ...) inside the test process.

A subprocess pays about 5 s of imports (torch, Lightning, Hydra) before it does anything; most end-to-end tests
only need what the command writes and prints. :func:`run_in_process` calls the very function the console script
calls -- the entry point's ``@hydra.main`` ``main()`` -- with ``sys.argv`` set to the command's arguments, so Hydra
parses them, composes ``pkg://pdeop.conf``, runs its callbacks (``pdeop.io.WritableRunDirectory``), writes
``.hydra/`` and the job's log file, sets ``HydraConfig`` and reports errors exactly as on the command line.
Around the call, the state a fresh process would have and a run may change is set and put back: the
environment, ``sys.argv``, the working directory, logging's handlers and levels, warnings (printed to the
captured stderr, as a process would print them, not collected by pytest), signal handlers, and torch's global
settings and random generators; a wandb run is finished as the process's exit would finish it. stdout and stderr
are captured (``sys.stdout``/``sys.stderr``, not the file descriptors); a ``SystemExit`` becomes the return code.

What still needs its own process -- a kill or a signal, the interpreter's real exit status, DDP, SLURM, killed
Dask workers, an installed wheel -- runs with ``conftest.run_entry(..., own_process=True)``; command lines that
:func:`needs_own_process` recognises (DDP, several devices) get one without asking.
``PDEOP_TEST_SUBPROCESS=1`` runs every entry point in its own process again (to compare, or to bisect a difference).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import random
import signal
import subprocess
import sys
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

# The module whose ``main`` each command line runs (what ``python train.py`` and ``pdeop-train`` call).
SCRIPTS = {"train.py": "pdeop.train", "evaluate.py": "pdeop.evaluate", "predict.py": "pdeop.predict"}
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGHUP")
                if hasattr(signal, name))


def entry_module(script: list[str]) -> str:
    """``["train.py"]`` -> ``pdeop.train``; ``["-m", "pdeop.export"]`` -> ``pdeop.export``."""
    if len(script) == 2 and script[0] == "-m":
        return script[1]
    if len(script) == 1 and script[0] in SCRIPTS:
        return SCRIPTS[script[0]]
    raise ValueError(f"no in-process entry point for {script}")


def needs_own_process(args: list[str]) -> str | None:
    """Why a command line cannot run in the test process, or None: DDP starts its other ranks by running
    ``sys.argv`` again (here: pytest)."""
    for arg in args:
        key, _, value = arg.lstrip("+~").partition("=")
        if key == "trainer" and value.startswith("ddp") or key == "trainer.strategy" and "ddp" in value:
            return "DDP starts its ranks as new processes of sys.argv"
        if key in ("trainer.devices", "trainer.num_nodes") and value.strip() not in ("1", "[0]", "null"):
            return "more than one device or node"
    return None


def in_process_enabled() -> bool:
    return os.environ.get("PDEOP_TEST_SUBPROCESS", "") in ("", "0")


@contextlib.contextmanager
def logging_kept() -> Iterator[None]:
    """Put logging back as it was: Hydra's job logging (``dictConfig``) replaces the root logger's handlers
    (pytest's capture among them) with a console and a file handler; those are closed after the run."""
    root = logging.getLogger()
    saved_root = (root.level, root.handlers[:], root.filters[:], root.disabled)
    loggers = {name: lg for name, lg in logging.Logger.manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    saved = {name: (lg.level, lg.handlers[:], lg.filters[:], lg.propagate, lg.disabled) for name, lg in loggers.items()}
    try:
        yield
    finally:
        kept = {id(h) for h in saved_root[1]} | {id(h) for state in saved.values() for h in state[1]}
        for lg in [root, *(lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger))]:
            for handler in lg.handlers:
                if id(handler) not in kept:
                    handler.close()  # the run's log file, complete now as at a process's exit
            if lg is not root and lg.name not in saved:
                lg.handlers.clear()  # a logger the run created: what it logs reaches the restored root only
        root.level, root.handlers[:], root.filters[:], root.disabled = saved_root
        for name, (level, handlers, filters, propagate, disabled) in saved.items():
            lg = loggers[name]
            lg.level, lg.handlers[:], lg.filters[:], lg.propagate, lg.disabled = (
                level, handlers, filters, propagate, disabled)
        logging.Logger.manager._clear_cache()


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    (file or sys.stderr).write(warnings.formatwarning(message, category, filename, lineno, line))


@contextlib.contextmanager
def warnings_printed() -> Iterator[None]:
    """Warnings go to (the captured) stderr as a process prints them, under Python's default filters plus those
    the imported libraries added, instead of into pytest's record; filters come back after."""
    with warnings.catch_warnings():
        warnings.filters[:] = [f for f in warnings.filters if not _pytest_filter(f)]
        warnings.showwarning = _print_warning
        yield


def _pytest_filter(entry) -> bool:
    """pytest's own additions while a test runs ("always" for DeprecationWarning and PendingDeprecationWarning)."""
    action, message, category, module, _ = entry
    return action == "always" and message is None and module is None and category in (
        DeprecationWarning, PendingDeprecationWarning)


@contextlib.contextmanager
def torch_kept() -> Iterator[None]:
    """torch's process-wide settings and random generators as they were; compiled graphs dropped (a new process
    compiles afresh)."""
    rng = torch.get_rng_state(), np.random.get_state(), random.getstate()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    settings = (torch.get_num_threads(), torch.get_default_dtype(), torch.get_default_device(),
                torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled(), torch.get_float32_matmul_precision(),
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark,
                torch.backends.cudnn.deterministic)
    try:
        yield
    finally:
        torch.set_rng_state(rng[0])
        np.random.set_state(rng[1])
        random.setstate(rng[2])
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        threads, dtype, device, deterministic, warn_only, matmul, tf32, cudnn_tf32, benchmark, cudnn_det = settings
        torch.set_num_threads(threads)
        torch.set_default_dtype(dtype)
        if torch.get_default_device() != device:  # setting it at all would install a device mode
            torch.set_default_device(None if device.type == "cpu" else device)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.set_float32_matmul_precision(matmul)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32, cudnn_tf32
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = benchmark, cudnn_det
        if "torch._dynamo" in sys.modules:
            torch._dynamo.reset()


@contextlib.contextmanager
def process_state(env: dict[str, str], cwd: Path) -> Iterator[None]:
    """The environment and working directory a subprocess would get; afterwards everything a run may change in
    this process's globals is as before."""
    saved_env, saved_argv, saved_cwd = dict(os.environ), sys.argv[:], os.getcwd()
    handlers = {sig: signal.getsignal(sig) for sig in SIGNALS}
    os.environ.update(env)
    os.chdir(cwd)
    try:
        with logging_kept(), warnings_printed(), torch_kept():
            yield
    finally:
        os.chdir(saved_cwd)
        sys.argv[:] = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
        for sig, handler in handlers.items():
            if handler is not None:
                signal.signal(sig, handler)


def finish_wandb() -> None:
    """End the run's wandb run as its process's exit would (wandb's atexit hook): otherwise the next wandb logger
    in this process would continue it instead of starting its own."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def run_in_process(script: list[str], args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """``python <script> <args>`` with ``env`` added to the environment, in this process: a ``CompletedProcess``
    with the exit status (0, or the ``SystemExit`` code: 2 for a ``pdeop error:``, 1 for Hydra's errors and
    uncaught exceptions, whose traceback is on stderr) and the captured stdout and stderr. The exception of a
    failed run is kept as ``result.exception`` to chain a test's failure to."""
    module = importlib.import_module(entry_module(script))
    out, err = io.StringIO(), io.StringIO()
    returncode, exception = 0, None
    with process_state(env, ROOT), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        sys.argv[:] = [module.__file__, *args]
        try:
            module.main()
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                returncode = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
                returncode = 1
            exception = exc if returncode else None
        except Exception as exc:  # noqa: BLE001 -- with HYDRA_FULL_ERROR=1 Hydra raises, not prints and exits 1
            traceback.print_exc()
            returncode, exception = 1, exc
        finally:
            finish_wandb()
    result = subprocess.CompletedProcess([sys.executable, *script, *args], returncode, out.getvalue(), err.getvalue())
    result.exception = exception
    return result
