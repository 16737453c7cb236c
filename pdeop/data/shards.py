"""Solved chunks kept beside a dataset being generated, so that a killed generation restarts with them.

Each chunk's solutions, already on the stored grids and in the file's float32, are written to
``.<file name>.chunks/<split>-<start>-<stop>.npz`` (atomically: a temporary renamed into place)
as soon as they are solved. A rerun of the same generation (the same file name, so the same
parameters and seed) reads these instead of solving the chunks again: the inputs are drawn again
from the seed, and the file comes out the same bit for bit as an uninterrupted one. The folder is
removed once the file is in place, or when the generation fails in a way a rerun of the same
setting cannot mend (a diverged solver, a full disk).
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np

from pdeop.io import UMASK, atomic_path


class ChunkShards:
    """The solved chunks of the dataset file ``path``, by split and sample range."""

    def __init__(self, path: Path):
        self.folder = path.parent / f".{path.name}.chunks"

    def shard(self, split: str, start: int, stop: int) -> Path:
        return self.folder / f"{split}-{start:07d}-{stop:07d}.npz"

    def holds(self, split: str, start: int, stop: int, grids: list[int]) -> bool:
        """Whether a readable shard of this chunk with every one of ``grids`` is kept."""
        path = self.shard(split, start, stop)
        if not path.is_file():
            return False
        try:
            with zipfile.ZipFile(path) as archive:
                return {f"{grid}.npy" for grid in grids} <= set(archive.namelist())
        except (zipfile.BadZipFile, OSError):
            return False

    def load(self, split: str, start: int, stop: int) -> dict[int, np.ndarray]:
        """The chunk's solutions by grid size."""
        with np.load(self.shard(split, start, stop)) as stored:
            return {int(grid): stored[grid] for grid in stored.files}

    def save(self, split: str, start: int, stop: int, solutions: dict[int, np.ndarray]) -> None:
        """Keep the chunk's solutions (by grid size); the shard appears whole or not at all."""
        self.folder.mkdir(mode=0o777 & ~UMASK, exist_ok=True)
        # a handle, not the temporary's name: np.savez would add ".npz" to a name that lacks it
        with atomic_path(self.shard(split, start, stop)) as tmp, open(tmp, "wb") as f:
            np.savez(f, **{str(grid): values for grid, values in solutions.items()})

    def count(self) -> int:
        """Shards kept now."""
        return len(list(self.folder.glob("*.npz"))) if self.folder.is_dir() else 0

    def size(self) -> int:
        """Bytes the kept shards take."""
        return sum(p.stat().st_size for p in self.folder.glob("*.npz")) if self.folder.is_dir() else 0

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
