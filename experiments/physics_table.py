"""The table of experiments/physics_informed.sh: relative L2 error per problem and method, from the run directories.

    python experiments/physics_table.py OUT
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

PROBLEMS = {"poisson1d_hf": "1D Poisson sin(100x)", "poisson1d_sincos": "1D Poisson sin(6x) cos(100x)",
            "poisson1d_xsin": "1D Poisson x sin(200x)", "allen_cahn1d": "1D Allen-Cahn sin(100x)",
            "poisson2d_hf": "2D Poisson sin(100x) sin(100y)", "helmholtz2d": "2D Helmholtz (a1 = 4, a2 = 1)"}
METHODS = {"pinn": "PINN", "pig": "PIG", "gp_hm": "GP-HM", "pig_narrow": "PIG, sigma 0.005"}


def summary(run: Path) -> str:
    """``best (last) [steps, s]`` of one run, or ``-`` if it has not finished."""
    if not (run / "test_metrics.json").is_file():
        return "-"
    best = json.loads((run / "test_metrics.json").read_text())["test/rel_l2"]
    rows = list(csv.DictReader((run / "csv" / "metrics.csv").open()))
    validations = [r for r in rows if r.get("val/rel_l2")]
    last = float(validations[-1]["val/rel_l2"]) if validations else float("nan")
    steps = max(int(r["step"]) for r in rows if r.get("step")) + 1
    seconds = sum(float(r["time/epoch_s"]) for r in rows if r.get("time/epoch_s"))
    return f"{best:.2e} ({last:.2e}) [{steps} steps, {seconds:.0f} s]"


def main(out: Path) -> None:
    print("| problem | " + " | ".join(METHODS.values()) + " |")
    print("|---" * (len(METHODS) + 1) + "|")
    for key, problem in PROBLEMS.items():
        print(f"| {problem} | " + " | ".join(summary(out / f"{key}-{m}") for m in METHODS) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
