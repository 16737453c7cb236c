"""Side-by-side comparison of models on the same data at equal budget (epochs, batch size, data).

Each model trains through train.py in its own process (so peak memory is its own), under one recipe
(the defaults, or what the trailing overrides say) and everything else equal; an entry such as
"mgno +recipe=mgno" trains under its paper's recipe instead. Prints a
markdown table: parameters, median seconds per epoch, peak resident memory, and the best
checkpoint's test relative L2 at every stored resolution.

    python benchmarks/compare_models.py --models fno t1 mgno "lsm model.patch_size=[3,3]" --epochs 20 [overrides...]
    python benchmarks/compare_models.py --models fno "t1 +recipe=t1" "mgno +recipe=mgno" --epochs 20

A model entry may carry overrides of its own after its name (quoted, space-separated), which
win over ``--epochs`` and the trailing overrides that apply to every model. Offline against online
training at equal steps:

    python benchmarks/compare_models.py --models fno "fno data.online=true" --epochs 40
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def run_model(entry: str, epochs: int, overrides: list[str], run_dir: Path) -> dict:
    model, *own = entry.split()
    # the entry's own overrides come last, so they win over --epochs and the shared overrides
    cmd = [sys.executable, "train.py", f"model={model}", f"trainer.max_epochs={epochs}",
           "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}", *overrides, *own]
    start = time.perf_counter()
    with open(run_dir.with_suffix(".log"), "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:  # the log goes with the temporary folder: its error is said here
        lines = [line for line in run_dir.with_suffix(".log").read_text().splitlines() if line.strip()]
        said = next((line for line in reversed(lines) if line.startswith("pdeop error:")), lines[-1] if lines else "")
        raise SystemExit(f"{' '.join(cmd)} failed: {said}")
    with open(run_dir / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    epoch_seconds = [float(r["time/epoch_s"]) for r in rows if r.get("time/epoch_s")]
    generated = [float(r["stream/generated_total"]) for r in rows if r.get("stream/generated_total")]
    uses = [float(r["stream/uses_per_sample"]) for r in rows if r.get("stream/uses_per_sample")]
    tests = json.loads((run_dir / "test_metrics.json").read_text())
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    return {
        "model": entry,
        "parameters": sum(t.numel() for k, t in state.items() if k.startswith("model.")),
        "seconds_per_epoch": statistics.median(epoch_seconds),
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "wall_s": wall,
        "training_samples": int(generated[-1]) if generated else None,
        "uses_per_sample": uses[-1] if uses else None,
        "test_rel_l2": {k.removeprefix("test/rel_l2_"): v for k, v in tests.items() if k.startswith("test/")},
    }


def table(rows: list[dict]) -> str:
    resolutions = list(rows[0]["test_rel_l2"])
    online = any(r["training_samples"] for r in rows)
    head = ["model", "parameters", "s/epoch", "peak RSS (MiB)",
            *(["streamed samples", "uses per sample"] if online else []),
            *[f"test rel. L2 @ {r}" for r in resolutions]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        streamed = ([f"{r['training_samples']:,}", f"{r['uses_per_sample']:.2f}"] if r["training_samples"]
                    else ["stored set", ""]) if online else []
        cells = [r["model"], f"{r['parameters']:,}", f"{r['seconds_per_epoch']:.2f}", f"{r['peak_rss_mib']:.0f}",
                 *streamed, *[f"{r['test_rel_l2'][res]:.4f}" for res in resolutions]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["fno", "t1", "mgno", "lsm model.patch_size=[3,3]"],
                        help="model names, each optionally followed by its own overrides in one quoted argument")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides applied to every model, e.g. data=darcy")
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error(f"--epochs: expected at least one epoch to compare, got {args.epochs}")
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for index, model in enumerate(args.models):
            rows.append(run_model(model, args.epochs, args.overrides, Path(tmp) / f"{index}-{model.split()[0]}"))
            print(f"{model}: done", flush=True)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"epochs": args.epochs, "overrides": args.overrides,
                                         "device": ("cpu" if not torch.cuda.is_available()
                                                    else torch.cuda.get_device_name()),
                                         "threads": torch.get_num_threads(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
