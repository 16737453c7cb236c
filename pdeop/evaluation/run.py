"""Evaluate a checkpoint on a dataset's stored split at every resolution, or write its predictions and pictures."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from pdeop.config import check_config, check_settings, settings_of
from pdeop.data.store import FieldSet
from pdeop.errors import ConfigError
from pdeop.evaluation.metrics import evaluate_fields
from pdeop.evaluation.plots import grid_name, plot_error_by_resolution, plot_sample
from pdeop.evaluation.predict import is_predictions, write_predictions
from pdeop.inference import TrainedOperator, check_takes, grid_dims
from pdeop.io import atomic_path, writable_file
from pdeop.pretrained.load import load_source, resolve


@dataclass
class EvaluateSettings:
    """The plain keys of ``pdeop/conf/evaluate.yaml``."""

    ckpt: str
    split: str
    out: str
    seed: int


@dataclass
class PredictSettings(EvaluateSettings):
    """The plain keys of ``pdeop/conf/predict.yaml``."""

    resolution: int | None
    plot_samples: list[int]
    chunk: int


def checked_settings(cfg: DictConfig, settings: type) -> None:
    """The entry point's own keys, typed, before a model is loaded; ``split`` test or val, ``chunk`` positive."""
    check_settings(settings_of(cfg, settings), settings)
    if cfg.split not in ("test", "val"):
        raise ConfigError(f"split: expected 'test' or 'val', got {cfg.split!r}")
    if "chunk" in cfg and cfg.chunk < 1:
        raise ConfigError(f"chunk: expected a positive number of samples predicted at a time, got {cfg.chunk}")


def is_evaluation(path: Path) -> bool:
    """Whether ``path`` is an evaluation ``evaluate`` wrote (JSON with its keys)."""
    try:
        if path.stat().st_size > 2**26:
            return False
        written = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(written, dict) and {"checkpoint", "data", "split", "results"} <= written.keys()


def is_png(path: Path) -> bool:
    """Whether ``path`` is a PNG picture (one pdeop drew beside its output, by its name)."""
    try:
        with open(path, "rb") as f:
            return f.read(8) == b"\x89PNG\r\n\x1a\n"
    except OSError:
        return False


def worst(stats: dict) -> str:
    """The worst error and where it is: the sample, or an all-to-all pair's trajectory and lead."""
    where = (f"traj {stats['worst_trajectory']}, lead {stats['worst_lead']}" if "worst_trajectory" in stats
             else stats["worst_sample"])
    return f"{stats['worst']:.4f} ({where})"


def table(results: dict) -> str:
    """The results as a Markdown table; a rollout's relative L2 is its per-step mean, with the whole
    trajectory's error in a column of its own (FNO's ``test_l2_step`` and ``test_l2_full``)."""
    rollout = any("rel_l2_full" in r for r in results.values())
    l2_name, full = ("rel. L2 per-step mean", " rel. L2 whole trajectory |") if rollout else ("rel. L2 mean", "")
    head = (f"| resolution | samples | {l2_name} | median | worst (sample) |{full} rel. H1 mean | worst (sample) "
            f"| rel. L1 median |")
    lines = [head, "|---" * (8 + rollout) + "|"]
    for resolution, r in results.items():
        l2, h1 = r["rel_l2"], r["rel_h1"]
        whole = f" {r['rel_l2_full']['mean']:.4f} |" if rollout else ""
        lines.append(f"| {resolution} | {r['samples']} | {l2['mean']:.4f} | {l2['median']:.4f} | "
                     f"{worst(l2)} |{whole} {h1['mean']:.4f} | {worst(h1)} | {r['rel_l1']['median']:.4f} |")
    return "\n".join(lines)


def picture_beside(out: Path, what: str) -> Path:
    """A picture written with ``out``: ``<out's stem>_<what>.png`` beside it."""
    return out.with_name(f"{out.stem}_{what}.png")


def checked_fields(module: TrainedOperator, datamodule, stored, split: str, resolution: int) -> FieldSet:
    """``task_fields``, after a pass of ``module`` on the first sample: data of another dimension or channel
    count than the model's is one error naming both, before any work."""
    fields = task_fields(datamodule, stored, split, resolution)
    lead_times = None if fields.lead_times is None else torch.from_numpy(fields.lead_times)
    check_takes(module, torch.from_numpy(fields.inputs), lead_times, f"'{stored.path}' ({split}, {resolution})")
    return fields


def open_run(cfg: DictConfig):
    """The trained operator, where it came from, the dataset's data module and its stored splits (generated if missing).

    ``cfg.ckpt`` is a checkpoint, bundle directory or registered name; ``cfg.data`` chooses the
    dataset, and without it the model's own data config is used.
    """
    source = resolve(cfg.ckpt)
    module = load_source(source)
    if cfg.get("data") is not None:
        data_config = OmegaConf.to_container(cfg.data, resolve=True)
    else:  # checked with the whole stored config by check_stored_config when the module was loaded
        data_config = copy.deepcopy(module.config["data"])
        if "data_dir" in data_config:  # generated data may live elsewhere than where it was trained
            data_config["data_dir"] = cfg.paths.data_dir
    check_config(data_config, "data")
    dims, declared = grid_dims(module.model), data_config.get("spatial_dims")  # absent (older runs): not known
    if dims is not None and declared is not None and dims != declared:  # before a dataset is generated for nothing
        raise ConfigError(f"data: {type(module.model).__name__} takes {dims}-D fields and this data's are "
                          f"{declared}-D (data.spatial_dims); choose data of {dims}-D fields")
    datamodule = instantiate(data_config)
    if not hasattr(datamodule, "open_store"):
        raise ConfigError(f"data: {type(datamodule).__name__} is one problem instance for a physics-informed "
                          f"solver, not stored samples to evaluate an operator on; choose operator data (darcy, "
                          f"navier_stokes, burgers, from_file, ...)")
    datamodule.prepare_data()
    return module, source, datamodule, datamodule.open_store()


def task_fields(datamodule, stored, split: str, resolution: int) -> FieldSet:
    """A stored split at one resolution as the model sees it: trajectories turned into the task's pairs."""
    fields = stored.read(split, resolution)
    return datamodule.task.pairs(fields) if datamodule.task is not None else fields


def evaluate(cfg: DictConfig) -> dict:
    """Evaluate ``cfg.ckpt`` at every stored resolution; returns the per-resolution results.

    Writes ``cfg.out`` (JSON) and, beside it, ``<out's stem>_error_by_resolution.png``.
    """
    checked_settings(cfg, EvaluateSettings)
    out = writable_file(cfg.out, "out", is_evaluation, "evaluation (JSON)")
    picture = writable_file(picture_beside(out, "error_by_resolution"), "out", is_png, "picture (PNG)")
    module, _, datamodule, stored = open_run(cfg)
    results = {}
    for res in stored.resolutions(cfg.split):
        fields = checked_fields(module, datamodule, stored, cfg.split, res)
        results[res] = evaluate_fields(module, fields, datamodule.periodic)
    print(f"{cfg.ckpt} on {datamodule.path} ({cfg.split})\n{table(results)}")
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps({"checkpoint": str(cfg.ckpt), "data": str(datamodule.path), "split": cfg.split,
                                   "results": {str(k): v for k, v in results.items()}}, indent=2))
    plot_error_by_resolution({res: r["rel_l2"]["mean"] for res, r in results.items()}, picture)
    print(f"wrote {out} and {picture}")
    return results


def predict(cfg: DictConfig) -> Path:
    """Write the predictions of ``cfg.ckpt`` on one stored grid to ``cfg.out`` (NetCDF) and plot chosen samples."""
    checked_settings(cfg, PredictSettings)
    out = writable_file(cfg.out, "out", is_predictions, "predictions file (NetCDF)")
    for i in cfg.plot_samples:  # the pictures' longer names
        writable_file(picture_beside(out, f"sample_{i}"), "out", is_png, "picture (PNG)")
    module, source, datamodule, stored = open_run(cfg)
    resolutions = stored.resolutions(cfg.split)
    resolution = cfg.resolution if cfg.resolution is not None else resolutions[-1]
    if resolution not in resolutions:
        raise ConfigError(f"resolution: the {cfg.split} split of '{stored.path}' is stored at {resolutions}, "
                          f"not {resolution}")
    fields = checked_fields(module, datamodule, stored, cfg.split, resolution)
    bad = [i for i in cfg.plot_samples if not 0 <= i < len(fields.inputs)]
    if bad:
        raise ConfigError(f"plot_samples: {bad} outside the {len(fields.inputs)} samples of the {cfg.split} split")
    attrs = {"model": module.config["model"]["_target_"], "checkpoint": str(cfg.ckpt),
             "checkpoint_sha256": source.sha256, "dataset": str(stored.path),
             "dataset_params": stored.provenance, "split": cfg.split, "resolution": int(resolution)}
    input_names, output_names = stored.input_names, stored.output_names
    if datamodule.task is not None:
        input_names, output_names = datamodule.task.channel_names(input_names, output_names)
    out = write_predictions(module, fields, cfg.out, input_names, output_names, attrs, chunk=cfg.chunk)
    with torch.no_grad():
        chosen = list(cfg.plot_samples)
        t = None if fields.lead_times is None else torch.from_numpy(fields.lead_times[chosen])
        predictions = module.predict(torch.from_numpy(fields.inputs[chosen]), t).numpy() if chosen else []
    grid = grid_name(fields.outputs.shape[2:])
    for i, prediction in zip(chosen if fields.inputs.ndim in (3, 4) else [], predictions):  # 1-D and 2-D fields
        plot_sample(fields.inputs[i, 0], fields.outputs[i, 0], prediction[0], picture_beside(out, f"sample_{i}"),
                    title=f"{cfg.split} sample {i} at {grid}")
    print(f"predictions of {len(fields.inputs)} samples at {grid}: {out}")
    return out
