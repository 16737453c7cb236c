"""Run a table's cells one after another on this machine and write each cell's record."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from pdeop.leaderboard.cells import Cell
from pdeop.leaderboard.record import make_record, write_record

ROOT = Path(__file__).resolve().parents[2]


def run_cell(cell: Cell, runs: Path, records: Path, overrides: list[str] = ()) -> Path:
    """Train ``cell`` with ``train.py`` in a process of its own (its peak memory measured alone), then record it."""
    run_dir = runs / cell.table / f"{cell.name}.{cell.tier}"
    command = [sys.executable, "train.py", f"+experiment={cell.experiment}", f"hydra.run.dir={run_dir}",
               "trainer.enable_progress_bar=false", *overrides]
    print(f"[leaderboard] {cell.table}/{cell.name} ({cell.tier}): {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"[leaderboard] {cell.experiment} failed (exit {process.returncode}); see {run_dir}")
    peak = usage.ru_maxrss / 1024  # kilobytes on Linux
    return write_record(make_record(cell, run_dir, peak_rss_mib=round(peak, 1),
                                    wall_s=round(time.perf_counter() - start, 1)), records)
