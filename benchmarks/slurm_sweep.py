"""Wall time of a two-point sweep on SLURM (Hydra's submitit launcher) against the same two runs one after the other.

Needs a running cluster (``slurm/local-cluster.sh start`` and ``SLURM_CONF`` set). Both sides run
train.py with the same overrides; the SLURM side submits one job array with ``cpus_per_task``
CPUs per job and waits for it, as a user's sweep would.

    python benchmarks/slurm_sweep.py --epochs 10 --cpus-per-task 1 [overrides...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--cpus-per-task", type=int, default=1)
    parser.add_argument("--lrs", nargs=2, default=["1e-3", "5e-4"])
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    if "SLURM_CONF" not in os.environ:
        raise SystemExit("set SLURM_CONF (slurm/local-cluster.sh start prints it)")
    common = [f"trainer.max_epochs={args.epochs}", "trainer.enable_progress_bar=false", *args.overrides]
    with tempfile.TemporaryDirectory() as tmp:
        sequential = sum(timed([sys.executable, "train.py", f"optim.lr={lr}", f"hydra.run.dir={tmp}/seq{i}", *common])
                         for i, lr in enumerate(args.lrs))
        sweep = timed([sys.executable, "train.py", "--multirun", "hydra/launcher=slurm", f"hydra.sweep.dir={tmp}/sweep",
                       f"hydra.launcher.cpus_per_task={args.cpus_per_task}", f"optim.lr={','.join(args.lrs)}", *common])
    print(f"two runs one after the other: {sequential:.1f} s; two-job SLURM sweep: {sweep:.1f} s; "
          f"ratio {sequential / sweep:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"epochs": args.epochs, "cpus_per_task": args.cpus_per_task,
                                               "overrides": args.overrides, "cpu_count": os.cpu_count(),
                                               "sequential_s": sequential, "sweep_s": sweep}, indent=2))


if __name__ == "__main__":
    main()
