"""File-system checks shared by every entry point: a place pdeop must write to is writable, or one clear error."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from pdeop.errors import PdeopError


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
        reason = {errno.EROFS: "is on a read-only file system", errno.EACCES: "is not writable (permission denied)",
                  errno.EPERM: "is not writable (operation not permitted)",
                  errno.ENOSPC: "is on a full disk"}.get(exc.errno, f"cannot be written ({exc.strerror or exc})")
        where = path if path.exists() else f"{path} (or a parent directory)"
        raise UnwritablePathError(f"'{where}' {reason}; set {moved_by} to write elsewhere") from exc
    return path


def free_bytes(path: str | Path) -> int:
    """Bytes free to this user on the file system holding ``path`` (the nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize
