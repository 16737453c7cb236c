"""What leaving the training split on disk costs: ``data.in_memory=false`` against ``true``.

Writes a Well file (``--samples`` trajectories of ``--states`` states on a ``--grid`` square, a
scalar and a vector field), then for each setting builds the file data module (setup: reading
the splits or fitting the normalisers on disk) and draws one epoch of training batches of the
window task (``--history`` -> ``--horizon``), as a training run would, without a model. The file
was just written, so reads come from the page cache: this measures the reader, not the disk. Prints seconds and peak
NumPy memory (tracemalloc, main process) of each, and the ratios against the in-memory setting.

    python benchmarks/disk_training.py [--samples 200] [--states 20] [--grid 128] [--history 4] [--horizon 4]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from format_files import write_the_well  # noqa: E402 (the tests' writer of the Well's layout)

from pdeop.data import FileDataModule  # noqa: E402
from pdeop.data.tasks import Window  # noqa: E402


def epoch(path: Path, window: Window, in_memory: bool, workers: int) -> dict:
    tracemalloc.start()
    start = time.perf_counter()
    dm = FileDataModule(str(path), task=window, in_channels=3 * window.history, out_channels=3, batch_size=20,
                        in_memory=in_memory, num_workers=workers)
    dm.setup("fit")
    setup = time.perf_counter() - start
    batches = sum(1 for _ in dm.train_dataloader())
    total = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {"in_memory": in_memory, "workers": workers, "setup_s": round(setup, 2), "epoch_s": round(total - setup, 2),
            "total_s": round(total, 2), "peak_MiB": round(peak, 1), "batches": batches}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--states", type=int, default=20)
    parser.add_argument("--grid", type=int, default=128)
    parser.add_argument("--history", type=int, default=4)
    parser.add_argument("--horizon", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "well.hdf5"
        write_the_well(path, args.samples, args.states, (args.grid, args.grid))
        size = path.stat().st_size / 2**20
        window = Window(history=args.history, horizon=args.horizon)
        rows = [epoch(path, window, True, 0), epoch(path, window, False, 0), epoch(path, window, False, 2)]
    base = rows[0]
    print(f"Well file {size:.0f} MiB: {args.samples} trajectories x {args.states} states x {args.grid}^2 x 3 channels;"
          f" window {args.history} -> {args.horizon}, batches of 20")
    print("| training split | loader workers | setup s | epoch s | total s | peak MiB | total / in memory |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        where = "in memory" if row["in_memory"] else "on disk"
        print(f"| {where} | {row['workers']} | {row['setup_s']} | {row['epoch_s']} | {row['total_s']} | "
              f"{row['peak_MiB']} | {row['total_s'] / base['total_s']:.2f} |")
    if args.out:
        args.out.write_text(json.dumps({"file_MiB": round(size), **vars(args), "out": None, "rows": rows,
                                        "machine": platform.machine()}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
