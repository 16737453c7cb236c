"""Checkpoint files that are whole or absent: written beside their destination, synced, then renamed into place.

Lightning 2.6's ``TorchCheckpointIO.save_checkpoint`` serialises the checkpoint into memory and
writes it through an fsspec transaction (``lightning_fabric.utilities.cloud_io._atomic_save``). For
a local path, fsspec's ``LocalFileOpener`` writes that transaction to ``tempfile.mkstemp()`` -- in
``$TMPDIR``, often another file system than the run directory -- and commits with
``shutil.move``: a rename where both are on one file system, otherwise a copy onto the destination
followed by a delete. Nothing is fsynced. A kill during that copy, or a full disk under the
destination, therefore leaves a truncated ``last.ckpt`` or ``best-*.ckpt`` in place of the previous
good one, and the temporary file behind in ``$TMPDIR``; and after a power loss even a renamed file
may be empty.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import uuid
from pathlib import Path
from typing import Any, Callable

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from pdeop.data.datamodule import upgrade_checkpoint
from pdeop.io import UnwritablePathError


def temporary_beside(path: Path) -> Path:
    """A new hidden file name in ``path``'s directory, unique to this process and call."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def write_error(path: Path, exc: OSError) -> UnwritablePathError:
    """One line naming the checkpoint, its directory and what to change."""
    reason = {errno.ENOSPC: "is on a full disk", errno.EDQUOT: "is over its disk quota",
              errno.EROFS: "is on a read-only file system"}.get(exc.errno, f"cannot be written ({exc.strerror or exc})")
    return UnwritablePathError(f"checkpoint '{path}' not written: '{path.parent}' {reason} (no partial file "
                               f"left, the earlier checkpoints as they were); free space there or set "
                               f"hydra.run.dir=<dir> to write elsewhere")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file in its own directory, fsyncs it and ``os.replace``s it into place.

    The rename is atomic within a directory, so ``last.ckpt`` is at every moment either the
    previous complete checkpoint or the new complete one, whatever kills the process. A failed
    write (a full disk, say) removes its temporary file and raises one ``UnwritablePathError``
    naming the directory. Loading is always ``weights_only=True``: pdeop checkpoints hold only
    tensors and plain values, and nothing a checkpoint file holds is ever unpickled as code. What
    is read is filed as this version files it (``upgrade_checkpoint``).
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        tmp = temporary_beside(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            data = io.BytesIO()  # as Lightning does; written from memory, a full disk is a plain OSError
            torch.save(checkpoint, data)
            with open(tmp, "xb") as f:
                f.write(data.getbuffer())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            sync_directory(path.parent)
        except OSError as exc:
            raise write_error(path, exc) from exc
        finally:
            tmp.unlink(missing_ok=True)

    def load_checkpoint(self, path, map_location: Callable | None = lambda storage, loc: storage,
                        weights_only: bool | None = None) -> dict[str, Any]:
        return upgrade_checkpoint(super().load_checkpoint(path, map_location=map_location, weights_only=True))


def sync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable; best effort (some file systems cannot sync a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def set_aside(path: Path, label: str) -> Path:
    """Rename ``path`` to ``<name>.<label>`` (``.<label>-2``, ... if taken) and return the new path; nothing deleted."""
    target, n = path.with_name(f"{path.name}.{label}"), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.{label}-{n}")
    os.replace(path, target)
    return target
