"""The model card of an exported bundle: what the model is, what data and command made it, how well it does."""

from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path

import torch
import yaml

import pdeop
from pdeop.inference import TrainedOperator
from pdeop.pretrained.build import constructor_config

log = logging.getLogger(__name__)


def run_directory(checkpoint: Path) -> Path | None:
    """The training run a checkpoint belongs to (``<run>/checkpoints/<file>.ckpt``), if it is still there."""
    run = checkpoint.resolve().parent.parent
    return run if (run / "config_resolved.yaml").is_file() else None


def unreadable(path: Path, problem: object) -> None:
    """Say that a run's side file the card reads cannot be read; the card leaves out what it would have told."""
    log.warning("model card: '%s' cannot be read (%s); the card leaves out what it tells", path, problem)


def training_command(run: Path | None) -> str | None:
    overrides = run / ".hydra" / "overrides.yaml" if run else None
    if overrides is None or not overrides.is_file():
        return None
    try:
        written = yaml.safe_load(overrides.read_text()) or []
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return unreadable(overrides, exc)
    if not isinstance(written, list) or not all(isinstance(o, str) for o in written):
        return unreadable(overrides, "expected a list of overrides")
    return " ".join(["python train.py", *(o for o in written if not o.startswith("hydra."))])


def test_errors(run: Path | None, checkpoint: Path) -> dict[str, float] | None:
    """The run's test metrics, if they were measured on this very checkpoint."""
    metrics = run / "test_metrics.json" if run else None
    if metrics is None or not metrics.is_file():
        return None
    try:
        recorded = json.loads(metrics.read_text())
    except (OSError, ValueError) as exc:
        return unreadable(metrics, exc)
    if not isinstance(recorded, dict):
        return unreadable(metrics, "expected a JSON object")
    tested = recorded.pop("checkpoint", "")
    if not isinstance(tested, str) or not tested or Path(tested).resolve() != checkpoint.resolve():
        return None
    errors = {k: v for k, v in recorded.items() if k.startswith("test/")}
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in errors.values()):
        return unreadable(metrics, "expected numbers for the test/ metrics")
    return errors


def data_summary(data: dict) -> str:
    problem = {k: v for k, v in data.get("problem", {}).items() if k not in ("_target_", "linear_solver")}
    settings = ", ".join(f"{k}={v}" for k, v in problem.items())
    size = data.get("grid_size")
    grid = f"grid of {size} points" if data.get("spatial_dims") == 1 else f"{size}x{size} grid"
    return (f"`{data.get('problem', {}).get('_target_', '?')}` ({settings}); {data.get('n_train')} training samples "
            f"on the {grid} (subsample {data.get('subsample')}), seed {data.get('seed')}")


def model_card(module: TrainedOperator, checkpoint: Path, checkpoint_sha256: str, name: str, description: str,
               epoch: int | None, step: int | None) -> str:
    """Markdown describing the bundle; figures come from the run directory when it is still present."""
    config = module.config
    model = {k: v for k, v in constructor_config(config["model"]).items() if k != "_target_"}
    parameters = sum(p.numel() for p in module.model.parameters())
    run = run_directory(checkpoint)
    command = training_command(run)
    errors = test_errors(run, checkpoint)
    at = "{0} points" if config.get("data", {}).get("spatial_dims") == 1 else "{0}x{0}"
    error_text = (", ".join(f"{v:.4f} at {at.format(k.rsplit('_', 1)[-1])}" for k, v in errors.items())
                  if errors else "not recorded for this checkpoint (run `python evaluate.py ckpt=<bundle>`)")
    rows = [
        ("model", f"`{config['model']['_target_']}`, {parameters:,} parameters"),
        ("hyper-parameters", ", ".join(f"{k}={v}" for k, v in model.items())),
        ("data", data_summary(config.get("data", {}))),
        ("loss / optimiser", f"`{config['loss'].get('_target_')}`, `{config['optim'].get('_target_')}` "
                             f"lr {config['optim'].get('lr')}"),
        ("training command", f"`{command}`" if command else "not recorded"),
        ("trained", f"epoch {epoch}, step {step}" if epoch is not None else "not recorded"),
        ("test error (relative L2, mean over samples)", error_text),
        ("source checkpoint", f"`{checkpoint.name}`, sha256 `{checkpoint_sha256}`"),
        ("exported", f"{datetime.date.today().isoformat()}, pdeop {pdeop.__version__}, torch {torch.__version__}"),
    ]
    lines = [f"# {name}", "", description or "A pdeop model.", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in rows]
    lines += ["", "## Use", "", f"`{name}` once registered (a registry file in `PDEOP_REGISTRY` naming the archive and "
              "its digest); before that, the path of this bundle's directory.", "", "```",
              f"python evaluate.py ckpt={name}            # relative L2 and H1 at every stored resolution",
              f"python predict.py ckpt={name}             # predictions as NetCDF and pictures",
              f"python train.py model=<same model> model.pretrained={name}   # fine-tune", "```", "",
              "```python", "import pdeop", "", f'model = pdeop.load_pretrained("{name}")  # physical input -> output',
              "```", ""]
    return "\n".join(lines)
