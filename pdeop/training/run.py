"""Compose a training run from a resolved config: data, model, LightningModule, trainer; fit, then test."""

from __future__ import annotations

import inspect
import json
import logging
import resource
import typing
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from pdeop.config import RUN_SPECIFIC, check_config, describe, flatten, matches, without
from pdeop.data.collocation import CollocationDataModule
from pdeop.data.store import atomic_path
from pdeop.data.tasks import AllToAll, Window
from pdeop.errors import ConfigError
from pdeop.provenance import git_commit, hardware
from pdeop.training.finetune import build_model
from pdeop.training.operator_module import OperatorModule
from pdeop.training.physics_module import (
    PhysicsInformedModule,
    is_physics_model,
    mismatch,
)

log = logging.getLogger(__name__)


@dataclass
class RunSettings:
    """Top-level keys of ``conf/config.yaml`` that are not objects."""

    seed: int
    ckpt_path: str | None
    auto_resume: bool
    test_after_fit: bool


def check_settings(config: dict) -> None:
    for name, expected in typing.get_type_hints(RunSettings).items():
        if name not in config:
            raise ConfigError(f"{name}: missing from the config")
        if not matches(config[name], expected):
            raise ConfigError(f"{name}: expected {describe(expected)}, got {config[name]!r}")
    if config["ckpt_path"] is not None and not Path(config["ckpt_path"]).is_file():
        raise ConfigError(f"ckpt_path: checkpoint file '{config['ckpt_path']}' does not exist")


def write_yaml(config: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(OmegaConf.to_yaml(OmegaConf.create(config)))


# What may change when a run is restarted in its own directory: where it reads and writes, how far it
# trains, what it does after, and the leaderboard's description of the cell. Anything else is another setting.
RESUMABLE_CHANGES = (*RUN_SPECIFIC, "auto_resume", "test_after_fit", "leaderboard", "trainer.max_epochs",
                     "trainer.max_steps", "trainer.enable_progress_bar")


def check_resumable(config: dict, output_dir: Path) -> None:
    """Refuse to auto-resume a directory whose checkpoint was trained with another setting.

    An interrupted run restarted with a larger ``trainer.max_epochs`` continues (unless its schedule's
    length came from the first run's, ``check_schedule_extendable``); one whose model,
    data, optimiser, schedule or seed changed would silently go on from the other setting's
    weights and optimiser state, so it is one clear error instead.
    """
    previous = output_dir / "config_resolved.yaml"
    if not previous.is_file():
        return
    trained = OmegaConf.to_container(OmegaConf.load(previous))
    before, now = (flatten(without(c, RESUMABLE_CHANGES)) for c in (trained, config))
    changed = sorted(key for key in before.keys() | now.keys() if before.get(key) != now.get(key))
    if changed:
        shown = ", ".join(f"{key} ({before.get(key)!r} -> {now.get(key)!r})" for key in changed[:4])
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        raise ConfigError(f"auto_resume: {output_dir} holds a run of another setting ({shown}{more}); "
                          f"use a new hydra.run.dir, or auto_resume=false to start over in this one")
    check_schedule_extendable(trained, config)


def check_schedule_extendable(before: dict, now: dict) -> None:
    """Refuse a longer run when the schedule's length was taken from the run's (OneCycle, cosine).

    The checkpoint restores the schedule with the old step count: OneCycleLR would stop the run
    with an error once past it, a cosine schedule would climb back up, so neither can be extended.
    """
    fn = (now.get("scheduler") or {}).get("fn") or {}
    derived = [key for key in ("total_steps", "T_max") if key in fn and fn[key] is None]
    lengths = [(key, before.get("trainer", {}).get(key), now.get("trainer", {}).get(key))
               for key in ("max_epochs", "max_steps")]
    changed = [(key, old, new) for key, old, new in lengths if old != new]
    if derived and changed:
        key, old, new = changed[0]
        schedule = str(fn.get("_target_", "the schedule")).rsplit(".", 1)[-1]
        raise ConfigError(f"auto_resume: trainer.{key} changed ({old!r} -> {new!r}), but {schedule} spans the "
                          f"first run's length (scheduler.fn.{derived[0]} from the trainer); use a new hydra.run.dir "
                          f"for the longer run")


def resume_path(cfg: DictConfig, config: dict, output_dir: Path) -> str | None:
    """The checkpoint to resume from: ``ckpt_path`` if given, else (``auto_resume``) the run directory's last one.

    A run restarted in its own directory -- a SLURM job requeued after preemption, a crashed
    job started again with the same ``hydra.run.dir`` -- continues from its last checkpoint
    instead of from epoch 0, provided it is the same setting (``check_resumable``).
    """
    if cfg.ckpt_path is not None:
        return cfg.ckpt_path
    last = output_dir / "checkpoints" / "last.ckpt"
    if cfg.auto_resume and last.is_file():
        check_resumable(config, output_dir)
        log.info("resuming from %s (auto_resume)", last)
        return str(last)
    return None


def build_module(cfg: DictConfig, datamodule, config: dict) -> OperatorModule:
    model = build_model(config["model"])
    if isinstance(datamodule.task, AllToAll) and "t" not in inspect.signature(model.forward).parameters:
        raise ConfigError(f"data.task: all-to-all pairs give the model a lead time, which "
                          f"{config['model']['_target_']} does not take; use a time-conditioned model (model=scot) "
                          f"or data/task=final")
    return OperatorModule(
        model=model,
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optim),
        scheduler=instantiate(cfg.scheduler.fn) if cfg.scheduler else None,
        scheduler_interval=cfg.scheduler.interval if cfg.scheduler else "epoch",
        input_normaliser=datamodule.input_normaliser,
        output_normaliser=datamodule.output_normaliser,
        test_resolutions=datamodule.test_resolutions,
        config=config,
        rollout=datamodule.task if isinstance(datamodule.task, Window) else None,
        param_lr=config["model"].get("param_lr"),
    )


def check_pairing(cfg: DictConfig) -> None:
    """Refuse an operator model on a single-instance problem, or a physics-informed model on operator data.

    Checked on the targets before the config is resolved: the two kinds of model read different
    keys of the data config, so a mismatch would otherwise surface as a missing interpolation key.
    """
    model, data = cfg.model.get("_target_"), cfg.data.get("_target_")
    if not isinstance(model, str) or not isinstance(data, str):
        return
    try:
        model_class, data_class = get_object(model), get_object(data)
    except Exception:
        return  # check_config names the target that cannot be imported
    physics_model = isinstance(model_class, type) and is_physics_model(model_class)
    residual_data = isinstance(data_class, type) and issubclass(data_class, CollocationDataModule)
    if physics_model != residual_data:
        raise ConfigError(mismatch(model.rsplit(".", 1)[-1], physics_model))


def build_physics_module(cfg: DictConfig, datamodule: CollocationDataModule, config: dict) -> PhysicsInformedModule:
    """The module fitting a physics-informed model to the data's residual problem."""
    return PhysicsInformedModule(
        model=build_model(config["model"]),
        problem=datamodule.problem,
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optim),
        scheduler=instantiate(cfg.scheduler.fn) if cfg.scheduler else None,
        scheduler_interval=cfg.scheduler.interval if cfg.scheduler else "step",
        config=config,
        param_lr=config["model"].get("param_lr"),
    )


def peak_memory() -> dict[str, float]:
    """Peak memory of this process so far: host resident set, and GPU allocations where there is a GPU (MiB)."""
    usage = {"peak_host_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available():
        usage["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return usage


def preflight(module: OperatorModule, datamodule) -> None:
    """Run the model once on one sample of every stored grid before training starts.

    A model that cannot handle a grid (too small for its modes or levels, say) then fails with
    its message now, not at the test step after the whole training run.
    """
    module.eval()
    with torch.no_grad():
        for inputs in datamodule.preflight_inputs:
            module(torch.from_numpy(inputs))
    module.train()


def build_trainer(cfg: DictConfig) -> pl.Trainer:
    """The Lightning trainer with the config's callbacks and loggers."""
    return instantiate(
        cfg.trainer,
        callbacks=list(instantiate(cfg.callbacks).values()),
        logger=list(instantiate(cfg.logger).values()),
    )


def train(cfg: DictConfig) -> dict[str, float]:
    """Train as ``cfg`` says and return the test metrics of the best checkpoint (empty if not tested).

    Writes the resolved config, the metrics and the checkpoints under ``cfg.paths.output_dir``.
    """
    check_pairing(cfg)
    config = OmegaConf.to_container(cfg, resolve=True)
    check_settings(config)
    check_config(config)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    resume = resume_path(cfg, config, output_dir)  # before this run's config replaces the last one's
    write_yaml(config, output_dir / "config_resolved.yaml")

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    if isinstance(datamodule, CollocationDataModule):
        module = build_physics_module(cfg, datamodule, config)
    else:
        module = build_module(cfg, datamodule, config)
        preflight(module, datamodule)
    trainer = build_trainer(cfg)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    if not cfg.test_after_fit:
        return {}
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    results = trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=True)
    metrics = {k: float(v) for result in results for k, v in result.items()}
    if trainer.is_global_zero:
        with atomic_path(output_dir / "test_metrics.json") as tmp:
            record = {"checkpoint": best, **metrics, "resources": peak_memory(),
                      "parameters": sum(p.numel() for p in module.model.parameters()), "git_commit": git_commit(),
                      "hardware": hardware()}
            tmp.write_text(json.dumps(record, indent=2))
    return metrics
