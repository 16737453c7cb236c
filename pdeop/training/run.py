"""Compose a training run from a resolved config: data, model, LightningModule, trainer; fit, then test."""

from __future__ import annotations

import inspect
import json
import logging
import resource
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from pdeop.config import check_config, check_settings
from pdeop.data.collocation import CollocationDataModule
from pdeop.data.datamodule import OperatorDataModule
from pdeop.data.tasks import AllToAll, Window
from pdeop.errors import ConfigError
from pdeop.io import atomic_path, writable_directory
from pdeop.provenance import git_commit, hardware
from pdeop.training.acceleration import Acceleration, accelerate, lightning_trainer, reported_compile_failures
from pdeop.training.checkpoint_io import set_aside_files
from pdeop.training.finetune import build_model
from pdeop.training.loggers import ContinuesHistory
from pdeop.training.losses import PERIODIC_LOSS_KEYS, is_residual_loss, operator_loss_expected
from pdeop.training.operator_module import OperatorModule
from pdeop.training.physics_module import (
    PhysicsInformedModule,
    is_physics_model,
    mismatch,
    residual_loss_missing,
)
from pdeop.training.preflight import preflight
from pdeop.training.quiet import quiet_frameworks, quiet_mid_epoch_resume, quiet_resumed_folder
from pdeop.training.resume import (
    check_extends,
    check_fits,
    check_goes_on_mid_epoch,
    configured_world_size,
    continues_here,
    resume_from,
)
from pdeop.training.run_lock import run_directory_lock

log = logging.getLogger(__name__)


@dataclass
class RunSettings:
    """Top-level keys of ``pdeop/conf/config.yaml`` that are not objects."""

    seed: int
    ckpt_path: str | None
    auto_resume: bool
    test_after_fit: bool


def check_run_settings(config: dict) -> None:
    check_settings(config, RunSettings)
    if not 0 <= config["seed"] < 2 ** 32:
        raise ConfigError(f"seed: expected an integer from 0 to {2 ** 32 - 1} (NumPy's seeds), got {config['seed']}")
    if config["ckpt_path"] is not None and not Path(config["ckpt_path"]).is_file():
        raise ConfigError(f"ckpt_path: checkpoint file '{config['ckpt_path']}' does not exist")


def write_yaml(config: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(OmegaConf.to_yaml(OmegaConf.create(config)))


def build_module(cfg: DictConfig, datamodule, config: dict) -> OperatorModule:
    model = build_model(config["model"])
    takes_time = "t" in inspect.signature(model.forward).parameters and getattr(model, "takes_time", True)
    if isinstance(datamodule.task, AllToAll) and not takes_time:
        raise ConfigError(f"data.task: all-to-all pairs give the model a lead time, which "
                          f"{config['model']['_target_']} does not take (as configured); use a time-conditioned "
                          f"model (model=scot with model.use_conditioning=true) or data/task=final")
    dims = datamodule.preflight_inputs[0].ndim - 2
    check_loss_dims(config["loss"], dims)
    return OperatorModule(
        model=model,
        loss=instantiate(cfg.loss, **data_given_loss_settings(config["loss"], dims, datamodule.periodic)),
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


def data_given_loss_settings(loss: dict, dims: int, periodic: bool) -> dict:
    """The values of the loss's null settings that follow the data: ``d`` (its spatial axes) and H1's
    ``periodic_in_x/y/z`` (central differences wrapping around a periodic grid, one-sided at a bounded one's
    edge); settings given a value keep it."""
    data = {"d": dims} | dict.fromkeys(PERIODIC_LOSS_KEYS, periodic)
    return {key: value for key, value in data.items() if key in loss and loss[key] is None}


def check_loss_dims(loss: dict, dims: int) -> None:
    """Refuse a loss over another number of spatial axes (neuraloperator's ``d``) than the data's fields have.

    With more, it takes the channel axis for a spatial one: per sample over all channels together rather than per
    channel (what validation measures), or its finite differences run across channels (H1); with fewer, it
    averages over grid rows. ``loss.d`` follows ``data.spatial_dims``; null (``data=from_file``'s default) is the
    data's, filled in as the loss is built.
    """
    if loss.get("d", dims) not in (None, dims):
        name = str(loss.get("_target_", "the loss")).rsplit(".", 1)[-1]
        raise ConfigError(f"loss.d: {name} is taken over {loss['d']!r} spatial axes and the data's fields have "
                          f"{dims}; set data.spatial_dims={dims} (loss.d follows it)")


def is_residual_problem(data_target: object) -> bool | None:
    """Whether a data ``_target_`` is a residual problem (a ``CollocationDataModule``) rather than operator data.

    None where the target is missing or cannot be imported: check_config names it, with a clearer message than a
    pairing check could give.
    """
    if not isinstance(data_target, str):
        return None
    try:
        data_class = get_object(data_target)
    except Exception:
        return None
    return isinstance(data_class, type) and issubclass(data_class, CollocationDataModule)


def check_pairing(cfg: DictConfig) -> None:
    """Refuse an operator model on a single-instance problem, a physics-informed model on operator data, and
    either kind of model with the other kind's loss.

    Checked on the targets before the config is resolved and before any data is generated: the two kinds of
    model read different keys of the data config, so a mismatch would otherwise surface as a missing
    interpolation key. ``model=`` picks the network only, so the loss comes from ``loss=`` or a recipe.
    """
    model, data, loss = (cfg.get(group, {}).get("_target_") for group in ("model", "data", "loss"))
    residual_data = is_residual_problem(data)
    if not isinstance(model, str) or residual_data is None:
        return
    try:
        model_class = get_object(model)
        loss_class = get_object(loss) if isinstance(loss, str) else None
    except Exception:
        return  # check_config names the target that cannot be imported
    physics_model = isinstance(model_class, type) and is_physics_model(model_class)
    name = model.rsplit(".", 1)[-1]
    if physics_model != residual_data:
        raise ConfigError(mismatch(name, physics_model))
    if not isinstance(loss_class, type):
        return
    if physics_model and not is_residual_loss(loss_class):
        raise ConfigError(residual_loss_missing(name, loss_class.__name__))
    if not physics_model and is_residual_loss(loss_class):
        raise ConfigError(operator_loss_expected(name, loss_class.__name__))


def check_grid_size_given(cfg: DictConfig) -> None:
    """Refuse a model sized by the training grid (``${data.grid_size}``: T1's signal_resolution, scOT's image_size)
    on data that leaves the grid's size unset (``data=from_file``): the model's check would only say it got None."""
    data, model = cfg.get("data") or {}, cfg.get("model") or {}
    if not model or "grid_size" not in data or data.grid_size is not None:
        return
    raw = OmegaConf.to_container(model, resolve=False)
    sized = [key for key, value in raw.items() if "data.grid_size" in str(value)]
    if sized:
        raise ConfigError(f"data.grid_size: model.{sized[0]} is the training grid's size (${{data.grid_size}}), "
                          f"which this data config leaves unset; set data.grid_size to the training grid's nodes a "
                          f"side, after data.subsample (python -m pdeop.data.formats <file> shows the stored grid)")


def choose_selection(cfg: DictConfig) -> None:
    """Resolve ``callbacks.checkpoint.monitor: auto`` to the metric that picks the best checkpoint.

    An operator run selects on ``val/rel_l2``, its validation split's error. A physics-informed run selects on
    ``val/loss``, its loss at validation's own collocation points: its ``val/rel_l2`` is scored against the
    reference solution, which a solver must not see. Resolved before the config is written, so a run
    directory records the metric that was used and resumes compare like with like.
    """
    checkpoint = (cfg.get("callbacks") or {}).get("checkpoint")
    if checkpoint is None or checkpoint.get("monitor") != "auto":
        return
    checkpoint.monitor = "val/loss" if is_residual_problem(cfg.get("data", {}).get("_target_")) else "val/rel_l2"


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


def build_trainer(cfg: DictConfig, history_from: int | None = None) -> pl.Trainer:
    """The Lightning trainer with the config's callbacks and loggers, the loggers told where the run's history
    continues (``history_from``: the resumed checkpoint's logging step; None: a new history).

    pdeop's own keys of the ``trainer`` node (``trainer.compile``, ...) are not the Trainer's: ``accelerate`` applies
    them. A checkpoint monitor still ``auto`` (a config composed outside ``train``, as the benchmarks do) is resolved
    here.
    """
    choose_selection(cfg)
    loggers = list(instantiate(cfg.logger).values())
    for logger in loggers:
        if isinstance(logger, ContinuesHistory):
            logger.continue_from(history_from)
    return instantiate(lightning_trainer(cfg.trainer), callbacks=list(instantiate(cfg.callbacks).values()),
                       logger=loggers)


def train(cfg: DictConfig) -> dict[str, float]:
    """Train as ``cfg`` says and return the test metrics of the best checkpoint (empty if not tested).

    Writes the resolved config, the metrics and the checkpoints under ``cfg.paths.output_dir``.
    """
    quiet_frameworks()
    output_dir = writable_directory(cfg.paths.output_dir, "hydra.run.dir=<dir>")
    with run_directory_lock(output_dir):  # one run at a time in the folder; released however the run ends
        return train_in(cfg, checked_config(cfg), output_dir)


def checked_config(cfg: DictConfig) -> dict:
    """The resolved config, once every check that needs no data or model has passed."""
    benchmark = (cfg.get("leaderboard") or {}).get("benchmark")
    if benchmark:
        leaderboard = cfg.leaderboard
        raise ConfigError(f"experiment {leaderboard.table}/{leaderboard.cell}: this leaderboard cell is measured by "
                          f"{benchmark[0]}, not by training; run python -m pdeop.leaderboard run {leaderboard.table}")
    check_pairing(cfg)
    check_grid_size_given(cfg)
    choose_selection(cfg)
    config = OmegaConf.to_container(cfg, resolve=True)
    check_run_settings(config)
    check_config(config)
    return config


def train_in(cfg: DictConfig, config: dict, output_dir: Path) -> dict[str, float]:
    """``train``'s work once the config is checked, in the run directory ``output_dir`` this process holds."""
    resume = resume_from(cfg, config, output_dir)  # before this run's config replaces the last one's
    check_extends(resume, config["trainer"].get("max_steps", -1))
    sharded = not is_residual_problem(config["data"].get("_target_")) and not config["data"].get("online")
    check_goes_on_mid_epoch(resume, config, configured_world_size(config["trainer"]), sharded)
    if resume is not None and cfg.ckpt_path is None:
        quiet_resumed_folder()
    here = continues_here(resume, output_dir)

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    if getattr(datamodule, "resumes_mid_epoch", False):
        quiet_mid_epoch_resume()
    if isinstance(datamodule, OperatorDataModule):  # generation and the online stream solve where `solvers` says
        datamodule.solvers = instantiate(cfg.solvers)
    datamodule.prepare_data()
    datamodule.setup("fit")
    if isinstance(datamodule, CollocationDataModule):
        module = build_physics_module(cfg, datamodule, config)
        inputs = []
    else:
        module = build_module(cfg, datamodule, config)
        inputs = datamodule.preflight_inputs
        preflight(module, inputs, config["model"])
    check_fits(module, resume)
    acceleration = Acceleration.of(cfg.trainer)
    accelerate(module.model, acceleration, cfg.trainer.precision, inputs)
    trainer = build_trainer(cfg, resume.step if here else None)
    check_goes_on_mid_epoch(resume, config, trainer.world_size, sharded)  # devices: auto is known here
    # once nothing is left to refuse: a run a user error stopped leaves the folder as it was (or none, Hydra's own)
    if rank_zero_only.rank == 0:  # one process: another rank's config write could precede the set-aside
        if not here:  # another run's files are kept, neither overwritten, resumed nor mixed in
            set_aside_files(output_dir / "checkpoints", "checkpoints", "*.ckpt")  # damaged ones stay as *.broken
            set_aside_files(output_dir, "config and test results", "config_resolved.yaml", "test_metrics.json")
            set_aside_files(output_dir / "plots", "plots")
        write_yaml(config, output_dir / "config_resolved.yaml")
    log.info("training %s (%s parameters) on %s in %s", type(module.model).__name__,
             f"{sum(p.numel() for p in module.model.parameters()):,}", type(datamodule).__name__, output_dir)
    with reported_compile_failures(acceleration, module.model):
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume.path if resume else None)
    if not cfg.test_after_fit:
        return {}
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    with reported_compile_failures(acceleration, module.model):
        results = trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=True)
    metrics = {k: float(v) for result in results for k, v in result.items()}
    if trainer.is_global_zero:
        with atomic_path(output_dir / "test_metrics.json") as tmp:
            record = {"checkpoint": best, **metrics, "resources": peak_memory(),
                      "parameters": sum(p.numel() for p in module.model.parameters()), "git_commit": git_commit(),
                      "hardware": hardware()}
            tmp.write_text(json.dumps(record, indent=2))
        log.info("tested %s: %s (test_metrics.json)", Path(best).name if best else "the last weights",
                 ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    return metrics
