"""One training run at a time in a run directory.

Two processes training into one folder (a command started twice with the same ``hydra.run.dir``, a job submitted
again while the first still runs) would overwrite each other's ``last.ckpt``, interleave their rows in one
``metrics.csv`` and resume from each other's checkpoints, with nothing said. The run holds an exclusive ``flock``
on ``<run dir>/.pdeop-run.lock`` while it trains and tests; a second is refused in one line naming the holder. The
operating system drops the lock when its process ends however it ends (``kill -9`` included), so no stale lock
outlives a run. Only the launching process of global rank 0 takes it: the other ranks of a distributed run share
the folder by design.

The lock is taken as Hydra starts the run (``RunDirectoryLock``), before Hydra writes its ``.hydra/`` files and log
into a folder that already exists, and taken over by ``train``, which releases it as it returns or fails; a
multirun's job folders and a folder Hydra has just made are locked by ``train`` alone.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from pdeop.errors import PdeopError

log = logging.getLogger(__name__)

LOCK_NAME = ".pdeop-run.lock"
HELD: dict[Path, int] = {}  # run directory -> the locked descriptor, in this process
TAKEN_AT_START: set[Path] = set()  # those RunDirectoryLock took, for train to take over


class RunDirectoryInUse(PdeopError):
    """Another process is training in the run directory."""


def close_held_in_child() -> None:
    """A forked child (a DataLoader worker) closes its copies of the locks: a run killed with ``kill -9`` frees its
    folder at once, not when its workers notice."""
    for fd in HELD.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    HELD.clear()
    TAKEN_AT_START.clear()


def release_all() -> None:
    """Release every lock this process holds: on the way out of a run that ended by ``sys.exit`` (a user error,
    SIGTERM's 143), which Hydra's end-of-run callback never sees."""
    for run_dir in list(HELD):
        release(run_dir)
    TAKEN_AT_START.clear()


os.register_at_fork(after_in_child=close_held_in_child)
atexit.register(release_all)


def launches_rank_zero() -> bool:
    """Whether this process is global rank 0 of its run, or will be: ranks started by a launcher (torchrun, srun,
    Lightning's children) and the main processes of nodes other than the first (``NODE_RANK``) are not."""
    return rank_zero_only.rank == 0 and int(os.environ.get("NODE_RANK", "0") or 0) == 0


@contextlib.contextmanager
def run_directory_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock while the block runs, and release it however the block ends; refuse one
    another process holds. A lock this process took already (``RunDirectoryLock``) is taken over; ranks other than
    0 take none."""
    key = Path(os.path.abspath(run_dir))
    if not launches_rank_zero() or (key in HELD and key not in TAKEN_AT_START):  # held by an enclosing block
        yield
        return
    if key in TAKEN_AT_START:
        TAKEN_AT_START.remove(key)
    else:
        lock(key)
    try:
        yield
    finally:
        release(key)


def lock(run_dir: Path) -> None:
    """Take the lock of ``run_dir`` (an absolute path) for this process, or raise ``RunDirectoryInUse``."""
    fd = acquire(run_dir / LOCK_NAME)
    if fd is not None:
        HELD[run_dir] = fd


def release(run_dir: Path) -> None:
    """Give up the lock of ``run_dir`` if this process holds it; the lock file is removed first, so a folder left by
    a run holds none of pdeop's bookkeeping (``acquire`` checks it locked the file still in place)."""
    fd = HELD.pop(run_dir, None)
    if fd is not None:
        with contextlib.suppress(OSError):
            (run_dir / LOCK_NAME).unlink()
        os.close(fd)


def acquire(path: Path) -> int | None:
    """The descriptor of ``path`` locked by this process, with the holder written in it; None where the file
    system takes no locks (a warning says that two runs there would not be told apart)."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except PermissionError:  # another user's lock file, left in a shared folder: a lock needs reading only
            fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = read_holder(fd)
            unused = os.fstat(fd).st_size == 0
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunDirectoryInUse(
                    f"hydra.run.dir: '{path.parent}' is in use by another pdeop run ({holder}); wait for it to "
                    f"end, or give this run another hydra.run.dir") from None
            if unused:
                with contextlib.suppress(OSError):
                    path.unlink()
            log.warning("cannot lock %s (%s): the file system takes no locks, so a second run started in this "
                        "folder would not be refused", path, os.strerror(exc.errno or 0))
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            with contextlib.suppress(OSError):  # who holds it is a courtesy: a full disk is not this file's to report
                os.ftruncate(fd, 0)
                os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since "
                             f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n".encode())
            return fd
        os.close(fd)  # the holder released and removed it between our open and lock: lock the new file


def read_holder(fd: int) -> str:
    """What the holding run wrote in the lock file (its pid, host and start), or a stand-in."""
    with contextlib.suppress(OSError):
        text = os.pread(fd, 512, 0).decode(errors="replace").strip()
        if text:
            return text
    return "a process that has not said which"


class RunDirectoryLock(Callback):
    """Hydra callback: lock an existing run directory before Hydra writes its ``.hydra/`` files and log there, so a
    refused second run leaves the first's untouched (one ``pdeop error:`` line, exit 2); released as the run ends."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        run_dir = Path(os.path.abspath(config.hydra.run.dir))  # as Hydra's run_job spells it
        if config.hydra.job.name != "train":  # generate shares the config: its folder holds a log, no training
            return
        if not run_dir.is_dir() or not launches_rank_zero() or run_dir in HELD:
            return
        try:
            lock(run_dir)
        except RunDirectoryInUse as exc:
            print(f"pdeop error: {exc}", file=sys.stderr)
            sys.exit(2)
        if run_dir in HELD:
            TAKEN_AT_START.add(run_dir)

    def on_run_end(self, config: DictConfig, **kwargs) -> None:
        run_dir = Path(os.path.abspath(config.hydra.run.dir))
        if run_dir in TAKEN_AT_START:  # train never took it over (another entry point, or it failed before)
            TAKEN_AT_START.remove(run_dir)
            release(run_dir)
