"""Train a table's cells and write each cell's record: one after another on this machine, or as one
Hydra sweep through the SLURM launcher (``hydra/launcher=slurm``), one job per cell."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from pdeop.leaderboard.cells import Cell
from pdeop.leaderboard.record import make_record, write_record

ROOT = Path(__file__).resolve().parents[2]


def train(arguments: list[str]) -> None:
    """``python train.py <arguments>`` from the project root; a failure stops the leaderboard run."""
    flags = [word for word in arguments if word.startswith("--")]  # Hydra reads its flags before the overrides
    overrides = [word for word in arguments if not word.startswith("--")]
    command = [sys.executable, "train.py", *flags, "trainer.enable_progress_bar=false", *overrides]
    print(f"[leaderboard] {' '.join(command[1:])}", flush=True)
    if subprocess.run(command, cwd=ROOT).returncode != 0:
        raise SystemExit(f"[leaderboard] failed: {' '.join(command[1:])}")


def run_local(cells: list[Cell], runs: Path, records: Path, overrides: list[str] = ()) -> list[Path]:
    """Each cell in a process of its own, one after another (so that timings do not share the machine)."""
    written = []
    for cell in cells:
        run_dir = runs / cell.table / f"{cell.name}.{cell.tier}"
        start = time.perf_counter()
        train([f"+experiment={cell.experiment}", f"hydra.run.dir={run_dir}", *overrides])
        written.append(write_record(make_record(cell, run_dir, wall_s=round(time.perf_counter() - start, 1)),
                                    records))
    return written


def run_slurm(cells: list[Cell], runs: Path, records: Path, overrides: list[str] = ()) -> list[Path]:
    """All cells as one sweep of SLURM jobs (``overrides`` may set ``hydra.launcher.*``: partition, GPUs);
    the launcher waits for the jobs, then each job's folder ``<runs>/<table>/<cell>.<tier>`` is recorded."""
    table = cells[0].table
    train(["--multirun", "hydra/launcher=slurm", f"+experiment={','.join(c.experiment for c in cells)}",
           f"hydra.sweep.dir={runs / table}", "hydra.sweep.subdir=${leaderboard.cell}.${leaderboard.tier}",
           *overrides])
    return record_runs(cells, runs, records)


def record_runs(cells: list[Cell], runs: Path, records: Path) -> list[Path]:
    """Records of the cells whose runs exist under ``runs`` (keeping what an earlier record of a run knew)."""
    written = []
    for cell in cells:
        run_dir = runs / cell.table / f"{cell.name}.{cell.tier}"
        if not (run_dir / "test_metrics.json").is_file():
            print(f"[leaderboard] {cell.experiment}: no finished run in {run_dir}", flush=True)
            continue
        old = records / cell.table / f"{cell.name}.{cell.tier}.json"
        previous = json.loads(old.read_text()) if old.is_file() else None
        written.append(write_record(make_record(cell, run_dir, previous=previous), records))
    return written
