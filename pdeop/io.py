"""File helpers every layer shares (atomic writes, hashes, the umask), and the entry points' file-system
checks: a place pdeop must write to is writable, or one clear error."""

from __future__ import annotations

import errno
import hashlib
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from pdeop.errors import PdeopError

UMASK = os.umask(0o022)  # read once (os.umask only reports it by setting it), then restored
os.umask(UMASK)


class UnwritablePathError(PdeopError):
    """A directory pdeop must write to cannot be created or written (read-only, no permission, full)."""


def writable_directory(path: str | Path, moved_by: str) -> Path:
    """Create ``path`` if needed and prove it writable by creating a file in it; returns it.

    ``moved_by`` names the key or environment variable that puts the directory elsewhere
    (``"hydra.run.dir=<dir>"``, ``"PDEOP_DATA_DIR"``); a read-only file system, a missing
    permission or a full disk is one ``UnwritablePathError`` naming the path and that key.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise unwritable(path, exc, moved_by) from exc
    return path


def check_writable_place(path: str | Path, moved_by: str) -> None:
    """Prove that ``path`` could be written, creating nothing: a file is tried in it, or in its nearest existing
    parent."""
    path = Path(path).absolute()
    existing = path
    while not existing.exists():
        existing = existing.parent
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise unwritable(path, exc, moved_by) from exc


def unwritable(path: Path, exc: OSError, moved_by: str) -> UnwritablePathError:
    reason = {errno.EROFS: "is on a read-only file system", errno.EACCES: "is not writable (permission denied)",
              errno.EPERM: "is not writable (operation not permitted)",
              errno.ENOSPC: "is on a full disk"}.get(exc.errno, f"cannot be written ({exc.strerror or exc})")
    where = path if path.exists() else f"{path} (or a parent directory)"
    return UnwritablePathError(f"'{where}' {reason}; set {moved_by} to write elsewhere")


class WritableRunDirectory(Callback):
    """Hydra callback: a run directory that cannot be written is one ``pdeop error:`` line (exit 2).

    Hydra creates the run directory and writes ``.hydra/`` and the log file there before pdeop's
    code runs, so without this check a read-only place ends in Hydra's own traceback.
    """

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        try:
            check_writable_place(config.hydra.run.dir, "hydra.run.dir=<dir>")
        except UnwritablePathError as exc:
            print(f"pdeop error: {exc}", file=sys.stderr)
            sys.exit(2)


def free_bytes(path: str | Path) -> int:
    """Bytes free to this user on the file system holding ``path`` (the nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o666 & ~UMASK)  # mkstemp's 0600 would hide shared datasets from a cluster group
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (an OSError, or h5py's RuntimeError carrying the system's message) reports a full disk."""
    return getattr(exc, "errno", None) == errno.ENOSPC or os.strerror(errno.ENOSPC) in str(exc)
