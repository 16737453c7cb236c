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
import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Any, Callable

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning_utilities.core.apply_func import apply_to_collection
from pytorch_lightning.plugins.io import AsyncCheckpointIO

from pdeop.data.datamodule import upgrade_checkpoint
from pdeop.io import UnwritablePathError

log = logging.getLogger(__name__)


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
            with contextlib.suppress(OSError):  # its folder may not even be one (a file in the way)
                tmp.unlink(missing_ok=True)

    def load_checkpoint(self, path, map_location: Callable | None = lambda storage, loc: storage,
                        weights_only: bool | None = None) -> dict[str, Any]:
        return upgrade_checkpoint(super().load_checkpoint(path, map_location=map_location, weights_only=True))


class BackgroundCheckpointIO(AsyncCheckpointIO):
    """Checkpoints written by a background thread, so that an epoch's checkpoint does not stall training.

    Serialising, writing and syncing a checkpoint takes tens of milliseconds (36 ms for FNO's 14 MB on a
    2-core VM), which on a GPU is a share of a short epoch that a plain loop does not pay. Lightning's
    ``AsyncCheckpointIO`` does the writing in a thread; this adds what a run that must lose nothing needs:
    the snapshot is a copy in host memory, taken on the training thread before the next step changes the
    weights (no extra GPU memory); removals wait behind the writes queued before them, so a new best
    checkpoint is on disk before the previous one is deleted; at most ``pending`` checkpoints are in flight
    (a slow disk holds training back instead of piling up copies); a read waits for the writes. Each write
    is ``AtomicCheckpointIO``'s. After a failed write the operations queued behind it are dropped (the files
    stay as they were before it), and its error is raised at the next checkpoint operation or when the
    trainer tears down (the end of fit, test, or an interruption), which also waits for every write.
    """

    def __init__(self, checkpoint_io: TorchCheckpointIO | None = None, pending: int = 2) -> None:
        super().__init__(checkpoint_io or AtomicCheckpointIO())
        self._slots = threading.BoundedSemaphore(pending)

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any = None) -> None:
        snapshot = apply_to_collection(checkpoint, torch.Tensor, lambda t: t.detach().to("cpu", copy=True))
        self._submit(self.checkpoint_io.save_checkpoint, snapshot, path, storage_options)

    def remove_checkpoint(self, path) -> None:
        self._submit(self.checkpoint_io.remove_checkpoint, path)

    def load_checkpoint(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.teardown()  # every write done (the executor starts again with the next one)
        return self.checkpoint_io.load_checkpoint(*args, **kwargs)

    def _submit(self, operation: Callable, *args: Any) -> None:
        if self._error:
            raise self._error
        self._ensure_setup()
        self._slots.acquire()

        def job() -> None:
            try:
                if self._error is None:  # after a failed write nothing more: no removal of the best it replaced
                    operation(*args)
            except BaseException as exc:  # kept for the training thread, which raises it
                self._error = exc
            finally:
                self._slots.release()

        self._executor.submit(job)


def sync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable; best effort (some file systems cannot sync a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def set_aside_files(folder: Path, held: str, *patterns: str) -> Path | None:
    """Move the files directly in ``folder`` (those matching any of ``patterns``, default all) into a new
    ``folder/previous-<n>/`` with a warning saying what they were (``held``: "history", "checkpoints"); the new
    folder, or None where there were none. Nothing is deleted: a run starting afresh in a used directory neither
    overwrites nor mixes with the earlier run's files."""
    found = {p for pattern in patterns or ("*",) for p in folder.glob(pattern)} if folder.is_dir() else set()
    files = sorted(p for p in found if p.is_file())
    if not files:
        return None
    n = 1
    while (folder / f"previous-{n}").exists():
        n += 1
    aside = folder / f"previous-{n}"
    aside.mkdir()
    for path in files:
        os.replace(path, aside / path.name)
    log.warning("%s held the %s of an earlier run; this run starts afresh and the old files are in %s",
                folder, held, aside)
    return aside


def set_aside(path: Path, label: str) -> Path:
    """Rename ``path`` to ``<name>.<label>`` (``.<label>-2``, ... if taken) and return the new path; nothing deleted."""
    target, n = path.with_name(f"{path.name}.{label}"), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.{label}-{n}")
    os.replace(path, target)
    return target
