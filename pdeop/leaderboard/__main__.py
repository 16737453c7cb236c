"""``pdeop-leaderboard run <table> [--tier cpu|paper] [--cells ...] [--launcher local|slurm] [key=value ...]``,
``... record <table> [--tier ...]`` (records of runs already made) and ``... report`` (or ``python -m
pdeop.leaderboard``); key=value words are Hydra overrides for every cell. Runs, records and the report are folders
under the current one by default: run it from a checkout's root to work on the committed records."""

from __future__ import annotations

import argparse
from pathlib import Path

from pdeop.errors import ConfigError, PdeopError
from pdeop.leaderboard.cells import TIERS, current_cells, load_cells, tables
from pdeop.leaderboard.report import write_report
from pdeop.leaderboard.run import record_runs, run_local, run_slurm

RUNS = Path("outputs") / "leaderboard"
RECORDS = Path("experiments") / "leaderboard" / "records"


def main() -> None:
    """Parse the command line and run, record or report."""
    parser = argparse.ArgumentParser(prog="pdeop-leaderboard", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="train a table's cells and write their records")
    run.add_argument("table", choices=tables())
    run.add_argument("--tier", default="cpu", choices=TIERS)
    run.add_argument("--cells", nargs="*", help="only these cells (default: all)")
    run.add_argument("--runs", type=Path, default=RUNS)
    run.add_argument("--records", type=Path, default=RECORDS)
    run.add_argument("--launcher", default="local", choices=["local", "slurm"],
                     help="local: one cell after another here; slurm: one job per cell (hydra/launcher=slurm)")
    again = commands.add_parser("record", help="write the records of runs already made (a finished sweep)")
    again.add_argument("table", choices=tables())
    again.add_argument("--tier", default="cpu", choices=TIERS)
    again.add_argument("--runs", type=Path, default=RUNS)
    again.add_argument("--records", type=Path, default=RECORDS)
    report = commands.add_parser("report", help="write README.md and results.csv from the records")
    report.add_argument("--records", type=Path, default=RECORDS)
    report.add_argument("--out", type=Path, default=None, help="where README.md and results.csv go (default: the "
                        "folder holding --records)")
    args, overrides = parser.parse_known_args()  # key=value words anywhere: Hydra overrides for every cell
    if getattr(args, "cells", None):  # --cells takes the words after it: the key=value ones among them are overrides
        overrides = [*(word for word in args.cells if "=" in word), *overrides]
        args.cells = [word for word in args.cells if "=" not in word]
    if [word for word in overrides if "=" not in word] or (overrides and args.command != "run"):
        parser.error(f"unrecognized arguments: {' '.join(overrides)} (overrides are key=value, for `run`)")
    try:
        if args.command == "run":
            cells = load_cells(args.table, args.tier)
            if args.cells:
                unknown = sorted(set(args.cells) - {c.name for c in cells})
                if unknown:
                    raise SystemExit(f"error: cells {unknown} are not in {args.table} at tier {args.tier}; it has "
                                     f"{[c.name for c in cells]}")
                cells = [c for c in cells if c.name in args.cells]
            launch = run_local if args.launcher == "local" else run_slurm
            for path in launch(cells, args.runs, args.records, overrides):
                print(f"[leaderboard] record: {path}")
        elif args.command == "record":
            for path in record_runs(load_cells(args.table, args.tier), args.runs, args.records):
                print(f"[leaderboard] record: {path}")
        else:
            if not args.records.is_dir():
                raise ConfigError(f"no records folder {args.records}: run from a pdeop checkout's root, or give "
                                  f"--records <folder>")
            for path in write_report(args.records, args.out or args.records.parent, current_cells()):
                print(path)
    except PdeopError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
