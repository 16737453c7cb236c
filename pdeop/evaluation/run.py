"""Evaluate a checkpoint on a dataset's stored split at every resolution; print a table, write JSON."""

from __future__ import annotations

import json
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from pdeop.config import check_config
from pdeop.data.store import DatasetFile, atomic_path
from pdeop.errors import ConfigError
from pdeop.evaluation.checkpoint import module_from_checkpoint
from pdeop.evaluation.metrics import evaluate_fields


def table(results: dict) -> str:
    head = "| resolution | samples | rel. L2 mean | median | worst (sample) | rel. H1 mean | worst (sample) |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for resolution, r in results.items():
        l2, h1 = r["rel_l2"], r["rel_h1"]
        lines.append(f"| {resolution} | {r['samples']} | {l2['mean']:.4f} | {l2['median']:.4f} | "
                     f"{l2['worst']:.4f} ({l2['worst_sample']}) | {h1['mean']:.4f} | {h1['worst']:.4f} ({h1['worst_sample']}) |")
    return "\n".join(lines)


def evaluate(cfg: DictConfig) -> dict:
    """Evaluate ``cfg.ckpt`` on ``cfg.data`` (or the checkpoint's data config); returns the per-resolution results."""
    if cfg.split not in ("test", "val"):
        raise ConfigError(f"split: expected 'test' or 'val', got {cfg.split!r}")
    module, trained_config = module_from_checkpoint(cfg.ckpt)
    if cfg.get("data") is not None:
        data_config = OmegaConf.to_container(cfg.data, resolve=True)
    else:
        data_config = trained_config["data"]
        data_config["data_dir"] = cfg.paths.data_dir  # the data may live elsewhere than where it was trained
    check_config(data_config, "data")
    datamodule = instantiate(data_config)
    datamodule.prepare_data()
    stored = DatasetFile(datamodule.path)
    periodic = getattr(datamodule.spec.problem, "boundary", "dirichlet") == "periodic"
    results = {res: evaluate_fields(module, stored.read(cfg.split, res), periodic)
               for res in stored.resolutions(cfg.split)}
    print(f"{cfg.ckpt} on {datamodule.path} ({cfg.split})\n{table(results)}")
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps({"checkpoint": str(cfg.ckpt), "data": str(datamodule.path), "split": cfg.split,
                                   "results": {str(k): v for k, v in results.items()}}, indent=2))
    return results
