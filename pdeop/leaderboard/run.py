"""Train a table's cells and write each cell's record: one after another on this machine, or as one
Hydra sweep through the SLURM launcher (``hydra/launcher=slurm``), one job per cell. Cells train through
``python -m pdeop.train`` (the entry of ``pdeop-train``), each in a process of its own. Benchmark cells (no
training) run their script, a file of pdeop's repository, from the current folder (a checkout's root)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from pdeop.errors import ConfigError
from pdeop.leaderboard.cells import Cell
from pdeop.leaderboard.record import (
    deviations,
    epoch_seconds,
    make_benchmark_record,
    make_record,
    read_json,
    write_record,
)


def execute(arguments: list[str]) -> None:
    """``python <arguments>`` in this process's folder, echoed; a failure stops the leaderboard run."""
    command = f"python {' '.join(arguments)}"
    print(f"[leaderboard] {command}", flush=True)
    if subprocess.run([sys.executable, *arguments]).returncode != 0:
        raise SystemExit(f"[leaderboard] failed: {command}")


def train(arguments: list[str]) -> None:
    """``python -m pdeop.train <arguments>``: ``pdeop-train`` in a process of its own (its own peak memory)."""
    flags = [word for word in arguments if word.startswith("--")]  # Hydra reads its flags before the overrides
    overrides = [word for word in arguments if not word.startswith("--")]
    execute(["-m", "pdeop.train", *flags, "trainer.enable_progress_bar=false", *overrides])


def benchmark(cell: Cell, result: Path, options: list[str] = ()) -> None:
    """``python <script> <options> --json <result>`` (``options``: the script's own, given as ``--name=value``,
    after the cell's so that they win). The script is a file of pdeop's repository, found from the current folder."""
    if not Path(cell.benchmark[0]).is_file():
        raise ConfigError(f"leaderboard table '{cell.table}' is measured by {cell.benchmark[0]}, a script of pdeop's "
                          f"repository that is not in {Path.cwd()}: run it from the root of a pdeop checkout")
    result.parent.mkdir(parents=True, exist_ok=True)
    execute([*cell.benchmark, *options, "--json", str(result)])


def run_local(cells: list[Cell], runs: Path, records: Path, overrides: list[str] = ()) -> list[Path]:
    """Each cell in a process of its own, one after another (so that timings do not share the machine)."""
    written = []
    for cell in cells:
        run_dir = runs / cell.table / f"{cell.name}.{cell.tier}"
        start = time.perf_counter()
        if cell.benchmark:
            benchmark(cell, run_dir / "benchmark.json", overrides)
            record = make_benchmark_record(cell, run_dir / "benchmark.json", round(time.perf_counter() - start, 1),
                                           overrides)
        else:
            done = len(epoch_seconds(run_dir))  # epochs of an earlier run that this one continues
            train([f"+experiment={cell.experiment}", f"hydra.run.dir={run_dir}", *overrides])
            record = make_record(cell, run_dir, wall_s=round(time.perf_counter() - start, 1),
                                 resumed_from_epoch=done or None, options=deviations(overrides))
        written.append(write_record(record, records))
    return written


def run_slurm(cells: list[Cell], runs: Path, records: Path, overrides: list[str] = ()) -> list[Path]:
    """All cells as one sweep of SLURM jobs (``overrides`` may set ``hydra.launcher.*``: partition, GPUs);
    the launcher waits for the jobs, then each job's folder ``<runs>/<table>/<cell>.<tier>`` is recorded."""
    table = cells[0].table
    if any(cell.benchmark for cell in cells):
        raise ConfigError(f"leaderboard table '{table}' is measured by a benchmark script, not by training: run it "
                          f"with --launcher local (one process, so that its timings are not shared)")
    train(["--multirun", "hydra/launcher=slurm", f"+experiment={','.join(c.experiment for c in cells)}",
           f"hydra.sweep.dir={runs / table}", "hydra.sweep.subdir=${leaderboard.cell}.${leaderboard.tier}",
           *overrides])
    return record_runs(cells, runs, records, deviations(overrides))


def record_runs(cells: list[Cell], runs: Path, records: Path, options: list[str] | None = None) -> list[Path]:
    """Records of the cells whose runs exist under ``runs`` (keeping what an earlier record of a run knew);
    ``options``: the overrides the runs were given beyond their cells' commands, None where not known here."""
    written = []
    for cell in cells:
        run_dir = runs / cell.table / f"{cell.name}.{cell.tier}"
        finished = run_dir / ("benchmark.json" if cell.benchmark else "test_metrics.json")
        if not finished.is_file():
            print(f"[leaderboard] {cell.experiment}: no finished run in {run_dir}", flush=True)
            continue
        old = records / cell.table / f"{cell.name}.{cell.tier}.json"
        previous = read_json(old, "record") if old.is_file() else {}
        record = (make_benchmark_record(cell, finished, previous.get("wall_s"), previous.get("options", ()))
                  if cell.benchmark
                  else make_record(cell, run_dir, previous=previous, options=options))
        written.append(write_record(record, records))
    return written
