"""File helpers every layer shares (atomic writes, hashes, the umask), and the entry points' file-system
checks: a place pdeop must write to is writable, or one clear error."""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import re
import signal
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from pdeop.errors import PdeopError

T = TypeVar("T")
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


def writable_file(path: str | Path, key: str, earlier: Callable[[Path], bool] | None = None, what: str = "") -> Path:
    """Prove, before the work that produces it, that the file at ``path`` (the value of ``key``) can be written
    through ``atomic_path``: its folder writable, no folder in its place, its temporary's name not too long.

    With ``earlier`` (whether a file is an earlier output of this kind, ``what``), an existing file there is replaced
    only if it is one: a checkpoint, a dataset or any other file named by mistake is refused, not lost.
    """
    path = Path(path)
    if str(path) in ("", "."):
        raise UnwritablePathError(f"{key}: no file given; name the file to write")
    writable_directory(path.parent, f"{key}=")
    if path.is_dir():
        raise UnwritablePathError(f"{key}: '{path}' is a directory; give the file to write")
    if earlier is not None and path.exists() and not earlier(path):
        raise UnwritablePathError(f"{key}: '{path}' exists and is not an earlier {what}, which alone is replaced; "
                                  f"choose another {key}, or move that file away")
    limit = name_limit(path.parent) - TEMPORARY_AFFIX
    if len(os.fsencode(path.name)) > limit:
        raise UnwritablePathError(f"{key}: the file name '{path.name[:40]}...' is {len(os.fsencode(path.name))} "
                                  f"bytes; at most {limit} fit in '{path.parent}' (a temporary beside it is named "
                                  f"{TEMPORARY_AFFIX} bytes longer)")
    return path


def check_writable_place(path: str | Path, moved_by: str) -> None:
    """Prove that ``path`` could be written, creating nothing: a file is tried in it, or in its nearest existing
    parent, and the folders still to be made have names the file system takes."""
    path = Path(path).absolute()
    existing = nearest_existing(path)
    too_long = [part for part in path.relative_to(existing).parts if len(os.fsencode(part)) > name_limit(existing)]
    if too_long:
        raise UnwritablePathError(f"'{path}': the name '{too_long[0][:40]}...' is {len(os.fsencode(too_long[0]))} "
                                  f"bytes, more than the {name_limit(existing)} a name may have there; set {moved_by} "
                                  f"to a shorter path")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise unwritable(path, exc, moved_by) from exc


def nearest_existing(path: Path) -> Path:
    """``path`` or its nearest parent that exists (a name too long to look up counts as absent)."""
    while True:
        try:
            if path.exists():
                return path
        except OSError:
            pass
        path = path.parent


def name_limit(directory: Path) -> int:
    """The longest file name, in bytes, the file system of ``directory`` takes (255 where it cannot say)."""
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def unwritable(path: Path, exc: OSError, moved_by: str) -> UnwritablePathError:
    reason = {errno.EROFS: "is on a read-only file system", errno.EACCES: "is not writable (permission denied)",
              errno.EPERM: "is not writable (operation not permitted)",
              errno.ENOSPC: "is on a full disk"}.get(exc.errno, f"cannot be written ({exc.strerror or exc})")
    where = path if path.exists() else f"{path} (or a parent directory)"
    return UnwritablePathError(f"'{where}' {reason}; set {moved_by} to write elsewhere")


# The run directory and its parents that did not exist before Hydra made them for this run (deepest first), noted
# by WritableRunDirectory: the only folders discard_unused_run_dir may remove.
NEW_RUN_FOLDERS: list[Path] = []
HYDRA_FILES = {"config.yaml", "hydra.yaml", "overrides.yaml"}  # what Hydra writes in hydra.output_subdir


class WritableRunDirectory(Callback):
    """Hydra callback: a run directory that cannot be written is one ``pdeop error:`` line (exit 2).

    Hydra creates the run directory and writes ``.hydra/`` and the log file there before pdeop's
    code runs, so without this check a read-only place ends in Hydra's own traceback. It also notes
    which of the run directory's folders are still to be made (``NEW_RUN_FOLDERS``).
    """

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        run_dir = Path(os.path.abspath(config.hydra.run.dir))  # as Hydra's run_job spells it
        try:
            check_writable_place(run_dir, "hydra.run.dir=<dir>")
        except UnwritablePathError as exc:
            print(f"pdeop error: {exc}", file=sys.stderr)
            sys.exit(2)
        existing = nearest_existing(run_dir)
        NEW_RUN_FOLDERS[:] = [run_dir, *run_dir.parents][:len(run_dir.parts) - len(existing.parts)]


def hydra_only_files(run_dir: Path, hydra: DictConfig) -> list[Path] | None:
    """The files in ``run_dir`` if it holds nothing but what Hydra writes there for this run (``<hydra.output_subdir>/``
    with its config, hydra and overrides files, the last naming this run's overrides, and an empty
    ``<job name>.log``), none a link; None otherwise. Another run started in the same second with other overrides
    shares the folder's name: its files are not this run's to remove."""
    files = []
    for entry in os.scandir(run_dir):
        if entry.name == f"{hydra.job.name}.log" and entry.is_file(follow_symlinks=False):
            if entry.stat(follow_symlinks=False).st_size:
                return None
            files.append(Path(entry.path))
        elif entry.name == hydra.output_subdir and entry.is_dir(follow_symlinks=False):
            inner = list(os.scandir(entry.path))
            if any(f.name not in HYDRA_FILES or not f.is_file(follow_symlinks=False) for f in inner):
                return None
            task = OmegaConf.to_container(hydra.overrides.task, resolve=False)  # as written: ${...} unresolved
            if not written_overrides_are(Path(entry.path) / "overrides.yaml", task):
                return None
            files += [Path(f.path) for f in inner]
        else:
            return None
    return files


def written_overrides_are(path: Path, overrides: list[str]) -> bool:
    """Whether Hydra's ``overrides.yaml`` at ``path`` lists exactly ``overrides`` (False if it cannot be read)."""
    try:
        return yaml.safe_load(path.read_text()) == overrides
    except (OSError, ValueError, yaml.YAMLError):
        return False


def discard_unused_run_dir() -> None:
    """Remove the run directory of a run that a user error stopped before it wrote anything: only the folders this
    run made (``NEW_RUN_FOLDERS``), only while the run directory holds nothing but Hydra's own files
    (``hydra_only_files``), and never a multirun's job folder (its number belongs to the sweep) nor the folder of a
    run started as several processes (srun's tasks, torchrun's ranks: another may still be writing there). A folder
    that is not empty by then, or that cannot be removed, stays."""
    folders, NEW_RUN_FOLDERS[:] = NEW_RUN_FOLDERS[:], []
    several = int(os.environ.get("SLURM_NTASKS", "1")) > 1 or "WORLD_SIZE" in os.environ
    if not folders or several or not HydraConfig.initialized():
        return
    hydra = HydraConfig.get()
    run_dir = Path(hydra.runtime.output_dir)
    if hydra.mode != RunMode.RUN or run_dir != folders[0] or run_dir.is_symlink():
        return
    try:
        files = hydra_only_files(run_dir, hydra)
        if files is None:
            return
        for file in files:
            file.unlink()
        if hydra.output_subdir and (run_dir / hydra.output_subdir).is_dir():
            (run_dir / hydra.output_subdir).rmdir()
        for folder in folders:
            folder.rmdir()
    except OSError:
        return


OUT_LEFT_WHOLE = "no partial file was left in place of out="


def stops_cleanly(main: Callable[..., T] | None = None, *, left: str = OUT_LEFT_WHOLE):
    """Decorate an entry point that writes one file at the end so that a stop leaves nothing behind.

    SIGTERM (a scheduler's time limit, ``scancel``, ``kill``) becomes ``SystemExit(143)`` in the main thread, so
    ``atomic_path`` removes its temporary on the way out, as it does for Ctrl-C; each ends in one line (status 143 or
    130) saying what was ``left``, rather than a traceback or nothing. ``@stops_cleanly`` or
    ``@stops_cleanly(left=...)``.
    """
    if main is None:
        return functools.partial(stops_cleanly, left=left)

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        own = threading.current_thread() is threading.main_thread()  # only the main thread may set a handler
        stopped = []

        def stop(signum, frame):
            stopped.append(signum)
            sys.exit(128 + signum)

        previous = signal.signal(signal.SIGTERM, stop) if own else None
        try:
            return main(*args, **kwargs)
        except KeyboardInterrupt:
            print(f"pdeop: interrupted; {left}", file=sys.stderr)
            sys.exit(130)
        except SystemExit:
            if stopped:
                print(f"pdeop: stopped by SIGTERM; {left}", file=sys.stderr)
            raise
        finally:
            if own:
                signal.signal(signal.SIGTERM, previous)

    return wrapped


def free_bytes(path: str | Path) -> int:
    """Bytes free to this user on the file system holding ``path`` (the nearest existing parent)."""
    stats = os.statvfs(nearest_existing(Path(path).absolute()))
    return stats.f_bavail * stats.f_frsize


TEMPORARY_AFFIX = len("." + "." + "12345678" + ".tmp")  # atomic_path's temporary: .<name>.<8 random>.tmp


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


def refused_global(exc: Exception) -> str | None:
    """The Python global (``module.name``) that made ``torch.load(weights_only=True)`` refuse a file, if that was
    why: the file holds code or objects, not only tensors."""
    found = re.search(r"GLOBAL ([\w.]+)", str(exc))
    return found.group(1) if found else None


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
