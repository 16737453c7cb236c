"""One training run at a time in a run directory.

Two processes training into one folder (a command started twice with the same ``hydra.run.dir``, a job submitted
again while the first still runs) would overwrite each other's ``last.ckpt``, interleave their rows in one
``metrics.csv`` and resume from each other's checkpoints, with nothing said. The run holds an exclusive ``flock``
on ``<run dir>/.pdeop-run.lock`` while it trains and tests; a second is refused in one line naming the holder. The
operating system drops the lock when its process ends however it ends (``kill -9`` included), so no stale lock
outlives a run. Only global rank 0 takes it: the other ranks of a distributed run share the folder by design.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import time
from pathlib import Path
from typing import Iterator

from pytorch_lightning.utilities.rank_zero import rank_zero_only

from pdeop.errors import PdeopError

log = logging.getLogger(__name__)

LOCK_NAME = ".pdeop-run.lock"


class RunDirectoryInUse(PdeopError):
    """Another process is training in the run directory."""


@contextlib.contextmanager
def training_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock while the block runs (global rank 0 only); refuse one another process holds.

    The lock file is removed on release, so a folder left by a run holds none of pdeop's bookkeeping; a process
    that locked a file removed meanwhile by the holder's release tries again on the new one.
    """
    if rank_zero_only.rank != 0:
        yield
        return
    path = run_dir / LOCK_NAME
    fd = acquire(path)
    try:
        yield
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                path.unlink()
            os.close(fd)


def acquire(path: Path) -> int | None:
    """The descriptor of ``path`` locked by this process, with the holder written in it; None where the file
    system has no locks (a warning says that two runs there would not be told apart)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = read_holder(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunDirectoryInUse(
                    f"hydra.run.dir: '{path.parent}' is in use by another training run ({holder}); wait for it to "
                    f"end, or give this run another hydra.run.dir") from None
            log.warning("cannot lock %s (%s): the file system takes no locks, so a second run started in this "
                        "folder would not be refused", path, os.strerror(exc.errno or 0))
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
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
