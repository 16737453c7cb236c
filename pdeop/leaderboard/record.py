"""A cell's result record: metrics at every resolution, parameters, seconds per epoch, peak memory,
hardware, package versions, git commit and config hash, written as JSON beside the others."""

from __future__ import annotations

import csv
import datetime
import hashlib
import json
import platform
from pathlib import Path

import torch
from omegaconf import OmegaConf

import pdeop
from pdeop.config import RUN_SPECIFIC, without
from pdeop.errors import ConfigError, first_line
from pdeop.io import atomic_path
from pdeop.leaderboard.cells import Cell
from pdeop.pretrained.checkpoint import load_checkpoint
from pdeop.provenance import git_commit, hardware


def read_json(path: Path, what: str) -> dict:
    """The JSON object in ``path`` (``what`` it is, for the message); one line where it cannot be read or is not
    an object."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what} '{path}' cannot be read ({first_line(exc)})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{what} '{path}' holds a JSON {type(value).__name__}, not an object")
    return value


def check_run_of(cell: Cell, run_dir: Path) -> None:
    """Refuse to record ``run_dir`` for ``cell`` unless its resolved config is that cell's experiment (another
    model's folder copied there made a record of one model with another's figures)."""
    try:
        node = OmegaConf.to_container(OmegaConf.load(run_dir / "config_resolved.yaml")).get("leaderboard") or {}
    except Exception as exc:  # noqa: BLE001 -- missing, damaged or not a mapping: one line
        raise ConfigError(f"run '{run_dir}' has no readable config_resolved.yaml ({first_line(exc)}); it is not a "
                          f"run of {cell.experiment}") from None
    made = (node.get("table"), node.get("cell"), node.get("tier"))
    if made != (cell.table, cell.name, cell.tier):
        raise ConfigError(f"run '{run_dir}' is not a run of {cell.experiment}: its config is of leaderboard "
                          f"{'/'.join(str(x) for x in made)}, not {cell.table}/{cell.name}/{cell.tier}")


def config_hash(run_dir: Path) -> str:
    """SHA-256 (first 16 hex digits) of the resolved run config, without what differs between two runs of one
    setting: the run and data folders (loggers and checkpoints name the run folder too)."""
    text = (run_dir / "config_resolved.yaml").read_text().replace(str(Path(run_dir).resolve()), "<run>")
    config = without(OmegaConf.to_container(OmegaConf.create(text)), RUN_SPECIFIC)
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def parameter_count(run_dir: Path) -> int:
    """Parameters of the trained model, counted in its best checkpoint: the ``model.`` tensors that are not
    integer buffers (runs that predate ``parameters`` in ``test_metrics.json``)."""
    checkpoint = sorted((run_dir / "checkpoints").glob("best-*.ckpt"))[-1]
    state = load_checkpoint(checkpoint)["state_dict"]
    return int(sum(v.numel() for k, v in state.items()
                   if k.startswith("model.") and (v.is_floating_point() or v.is_complex())))


def epoch_seconds(run_dir: Path) -> list[float]:
    """``time/epoch_s`` (training loop, validation excluded) of each epoch the run's CSV log holds; none before one."""
    path = run_dir / "csv" / "metrics.csv"
    if not path.is_file():
        return []
    with open(path) as f:
        return [float(row["time/epoch_s"]) for row in csv.DictReader(f) if row.get("time/epoch_s")]


def seconds_per_epoch(run_dir: Path) -> float | None:
    """Mean ``time/epoch_s`` over the run's epochs."""
    values = epoch_seconds(run_dir)
    return sum(values) / len(values) if values else None


def versions() -> dict:
    import neuralop
    import pytorch_lightning

    return {"pdeop": pdeop.__version__, "torch": torch.__version__, "pytorch_lightning": pytorch_lightning.__version__,
            "neuraloperator": neuralop.__version__, "python": platform.python_version()}


def today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def deviations(overrides: list[str]) -> list[str]:
    """The overrides that change what a cell measures: all but Hydra's own (``hydra.launcher.partition=...``)."""
    return [o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/"))]


def cell_fields(cell: Cell) -> dict:
    """What a record repeats of its cell: where it sits, how to rerun it, and the paper's figure."""
    return {"table": cell.table, "cell": cell.name, "model": cell.model, "tier": cell.tier,
            "experiment": cell.experiment, "command": cell.command, "scaled": cell.scaled, "metric": cell.metric,
            "also": list(cell.also), "paper": cell.paper_value, "paper_source": cell.paper_source,
            "paper_metric": cell.paper_metric, "departs": cell.departs}


def make_benchmark_record(cell: Cell, result: Path, wall_s: float | None = None, options: list[str] = ()) -> dict:
    """The record of a benchmark cell from the JSON its script wrote (``metrics`` holds the cell's metric); the
    script ran here, so hardware and commit are this process's. The config hash covers the command and the
    ``options`` given after it."""
    metrics = read_json(Path(result), "benchmark result").get("metrics", {})
    if cell.metric not in metrics:
        raise ConfigError(f"{result}: the benchmark wrote no metric '{cell.metric}' (leaderboard.metric of "
                          f"pdeop/conf/experiment/{cell.experiment}.yaml); it wrote {sorted(metrics)}")
    return {
        **cell_fields(cell), "options": list(options), "measured": metrics[cell.metric], "metrics": metrics,
        "parameters": None, "seconds_per_epoch": None, "wall_s": wall_s,
        "hardware": hardware(), "versions": versions(), "git_commit": git_commit(),
        "config_hash": hashlib.sha256(json.dumps([*cell.benchmark, *options]).encode()).hexdigest()[:16],
        "date": today(),
    }


def make_record(cell: Cell, run_dir: Path, wall_s: float | None = None, previous: dict | None = None,
                resumed_from_epoch: int | None = None, options: list[str] | None = None) -> dict:
    """The record of ``cell`` trained in ``run_dir``: parameters, peak memory, commit and hardware as the training
    process wrote them (a SLURM job's, not the submitting machine's); for older runs counted here, or kept from
    the ``previous`` record of the same run. ``resumed_from_epoch``: the epochs the folder held before this run
    continued it (its wall time and peak memory cover the later epochs only; the report flags it). ``options``:
    overrides given beyond the cell's command (a shortened run, say; the report flags them too); None (a run
    recorded again, its overrides unknown here) keeps the ``previous`` record's."""
    check_run_of(cell, run_dir)
    metrics = read_json(run_dir / "test_metrics.json", "test metrics")
    if not isinstance(metrics.get(cell.metric), (int, float)):
        raise ConfigError(f"run '{run_dir}': its test_metrics.json has no {cell.metric} (leaderboard.metric of "
                          f"pdeop/conf/experiment/{cell.experiment}.yaml); it has {sorted(metrics)}")
    previous = previous or {}
    resumed = resumed_from_epoch or previous.get("resumed_from_epoch")
    options = list(options) if options is not None else previous.get("options", [])
    return {
        **cell_fields(cell), "measured": metrics.get(cell.metric),
        "metrics": {k: v for k, v in metrics.items() if k.startswith("test/")},
        "parameters": metrics.get("parameters") or parameter_count(run_dir),
        "seconds_per_epoch": seconds_per_epoch(run_dir), "wall_s": wall_s or previous.get("wall_s"),
        **metrics.get("resources", {}),
        "hardware": metrics.get("hardware") or previous.get("hardware") or hardware(),  # where it trained
        "versions": versions(),
        "git_commit": metrics.get("git_commit") or previous.get("git_commit") or git_commit(),
        "config_hash": config_hash(run_dir),
        "date": today(),
        **({"resumed_from_epoch": resumed} if resumed else {}),
        **({"options": options} if options else {}),
    }


def write_record(record: dict, folder: Path) -> Path:
    """``<folder>/<table>/<cell>.<tier>.json``, written atomically."""
    path = Path(folder) / record["table"] / f"{record['cell']}.{record['tier']}.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    return path
