"""Callbacks: checkpoints following a moved run, throughput, stream statistics, a non-finite loss guard, pictures."""

from __future__ import annotations

import math
import os
import re
import time
import warnings
from pathlib import Path

import matplotlib.image
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from pytorch_lightning.utilities.exceptions import SIGTERMException

from pdeop.data.sampling import batches_taken
from pdeop.errors import ConfigError, NonFiniteLossError
from pdeop.evaluation.plots import (
    grid_name,
    plot_error_by_lead,
    plot_error_by_resolution,
    plot_sample,
    plot_solution,
)


NEXT_LOGGING_STEP = "pdeop_next_logging_step"  # the checkpoint's entry for the step its run's loggers log next


def validating_within_epoch(trainer: pl.Trainer) -> bool:
    """Whether a fit is validating after a batch that is not its epoch's last (``trainer.val_check_interval``)."""
    return (trainer.state.fn == "fit" and trainer.validating and not trainer.sanity_checking
            and not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint``, whose record of the checkpoints follows its run directory when that moves.

    The state saved in a checkpoint names its files by absolute path. When a run directory is
    copied or moved and resumed there, Lightning sees another ``dirpath`` and drops the record of
    the best checkpoints (``best_k_models``), so the best one would be chosen afresh from the
    resumed epochs. Here the recorded paths are re-rooted to the new ``dirpath`` when every one of
    them is there; otherwise (a checkpoint from another run, ``ckpt_path=``) Lightning's behaviour stays.
    """

    PATH_KEYS = ("best_model_path", "kth_best_model_path", "last_model_path")

    def __init__(self, *args, save_on_sigterm: bool = False, save_within_epochs: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.save_on_sigterm = save_on_sigterm
        self.save_within_epochs = save_within_epochs

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        """Record the step the loggers log next if a run goes on from here (``resume.logging_step``): within a
        validation within an epoch (a checkpoint written at its end) the batch it follows is not yet counted, and
        a resumed run would drop that validation's rows, which nothing logs again. (After a validation at an
        epoch's last batch the resumed run logs the epoch's end again, at that step: its rows are dropped.)"""
        steps = trainer.fit_loop.epoch_loop._batches_that_stepped
        checkpoint[NEXT_LOGGING_STEP] = steps + 1 if validating_within_epoch(trainer) else steps

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """With ``save_within_epochs``, also written at the end of a validation within an epoch
        (``trainer.val_check_interval``), where a run that saves at epochs' ends would not be, so that a crash late
        in a long epoch resumes from its last validation."""
        super().on_validation_end(trainer, pl_module)
        if (self.save_within_epochs and validating_within_epoch(trainer)
                and self._should_save_on_train_epoch_end(trainer) and not self._should_skip_saving_checkpoint(trainer)):
            self._save_checkpoint(trainer, self.format_checkpoint_name(self._monitor_candidates(trainer)))

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """With ``save_on_sigterm``, a fit stopped by SIGTERM (preemption, ``scancel``) writes this checkpoint on
        its way out, so that a requeued job resumes there rather than at the last epoch's end.

        Only where the data module goes on mid-epoch with the batches the uninterrupted run would have had
        (``resumes_mid_epoch``: pdeop's data modules leave out the epoch's batches already taken), and only between
        training steps: not between the batches of one accumulated step (``trainer.accumulate_grad_batches``),
        whose gradients no checkpoint holds, nor inside a validation, which the resumed run would skip. Such a run
        resumes from the checkpoint before. Other exceptions write nothing: their state may be what went wrong (a
        non-finite loss).
        """
        # the batches the resumed epoch leaves out must end a step (batches_taken is 0 once the epoch's last batch,
        # which steps whatever its count, is taken)
        stepped = batches_taken(trainer) % trainer.accumulate_grad_batches == 0
        if (self.save_on_sigterm and isinstance(exception, SIGTERMException) and trainer.state.fn == "fit"
                and getattr(trainer.datamodule, "resumes_mid_epoch", False) and trainer.training and stepped
                and self._last_global_step_saved != trainer.global_step):
            self._save_checkpoint(trainer, self.format_checkpoint_name(self._monitor_candidates(trainer)))

    def load_state_dict(self, state_dict: dict) -> None:
        old = state_dict.get("dirpath")
        if old and self.dirpath and old != self.dirpath:
            state_dict = rerooted(state_dict, old, self.dirpath, self.PATH_KEYS)
        if self.dirpath:
            state_dict = confined(state_dict, self.dirpath, self.PATH_KEYS)
        super().load_state_dict(state_dict)


def confined(state: dict, dirpath: str, keys: tuple[str, ...]) -> dict:
    """``state`` without the checkpoint paths Lightning would delete but that are not files in ``dirpath``.

    Lightning deletes a superseded checkpoint by the path its state recorded, recursively, when that path's text
    lies under its folder or names another file system (``s3://...``): a checkpoint from elsewhere (``ckpt_path=``,
    a file dropped into a run) could name ``<dirpath>/../..``, a link out of the folder or a bucket. Such entries
    are dropped, with a warning: never deleted. Paths of another run's folder, which Lightning leaves alone, stay
    (its best checkpoint remains the best until this run saves one).
    """
    root = Path(dirpath).absolute()
    real_root = os.path.realpath(root)

    def deletable_outside(path: str) -> bool:
        if "://" in path and not path.startswith("file://"):
            return True
        if root not in Path(path).absolute().parents:
            return False
        real = os.path.realpath(path)
        return real == real_root or os.path.commonpath([real_root, real]) != real_root or os.path.isdir(real)

    paths = [state.get(key) or "" for key in keys] + list(state.get("best_k_models", {}))
    outside = sorted({path for path in paths if path and deletable_outside(path)})
    if not outside:
        return state
    warnings.warn(f"checkpoint state names files that resolve outside '{dirpath}' (not tracked, never deleted): "
                  f"{', '.join(map(repr, outside))}", stacklevel=2)
    return {**state, **{key: "" for key in keys if state.get(key) in outside},
            "best_k_models": {path: score for path, score in state.get("best_k_models", {}).items()
                              if path not in outside}}


def rerooted(state: dict, old: str, new: str, keys: tuple[str, ...]) -> dict:
    """``state`` with its checkpoint paths under ``old`` moved under ``new`` if all of those files exist there."""
    def moved(path: str) -> str:
        return new + path[len(old):] if path.startswith(old + os.sep) else path

    paths = [state.get(key) or "" for key in keys] + list(state.get("best_k_models", {}))
    if not all(os.path.isfile(moved(path)) for path in paths if path):
        return state
    return {**state, "dirpath": new, **{key: moved(state[key]) for key in keys if state.get(key)},
            "best_k_models": {moved(path): score for path, score in state.get("best_k_models", {}).items()}}


class Throughput(pl.Callback):
    """Logs ``time/epoch_s`` (training loop wall time, validation excluded) and ``time/samples_per_s``.

    The epoch's figures so far travel in checkpoints: a run stopped mid-epoch (SIGTERM) and resumed gets no
    ``on_train_epoch_start``, and its epoch counts on from the time and samples before the stop (the time between
    the stop and the resume left out).
    """

    def __init__(self) -> None:
        self._restored: dict | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.on_train_epoch_start(trainer, pl_module)
        if self._restored:
            self._samples = self._restored["samples"]
            self._start -= self._restored["seconds"]
        self._restored = None

    def state_dict(self) -> dict:
        if not hasattr(self, "_start"):
            return {}
        return {"samples": self._samples, "seconds": time.perf_counter() - self._start}

    def load_state_dict(self, state_dict: dict) -> None:
        self._restored = dict(state_dict)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._samples = 0
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._samples += pl_module.batch_samples(batch)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        seconds = time.perf_counter() - self._start
        # over all ranks: the slowest rank's epoch time, the summed throughput
        pl_module.log("time/epoch_s", seconds, sync_dist=True, reduce_fx="max")
        pl_module.log("time/samples_per_s", self._samples / seconds if seconds > 0 else math.inf, sync_dist=True,
                      reduce_fx="sum")


class StreamMonitor(pl.Callback):
    """Logs the online generator's figures every epoch-equivalent (nothing for stored data).

    ``stream/generated_per_s`` and ``stream/consumed_per_s`` (samples, since the last epoch),
    ``stream/buffer_fill`` (fraction of capacity), ``stream/uses_per_sample`` (times a served
    sample was served, on average) and ``stream/generated_total``. Counts and rates are summed
    over ranks, fill and reuse averaged.
    """

    SUMMED = ("stream/generated_per_s", "stream/consumed_per_s", "stream/generated_total")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        stream = getattr(trainer.datamodule, "stream", None)
        if stream is not None:
            for name, value in stream.stats().items():
                pl_module.log(name, value, sync_dist=True, reduce_fx="sum" if name in self.SUMMED else "mean")


class RankConsistency(pl.Callback):
    """In a distributed run, checks after the first optimiser step that every rank holds the same weights.

    Gathers per-tensor checksums (sum and sum of squares, in float64) from all ranks, logs the
    largest difference to rank 0 as ``ddp/weight_mismatch`` and stops with an error if it is
    not zero: ranks that drift apart train different models while reporting one. No-op on one process.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.world_size < 2 or trainer.global_step != 1 or batch_idx != 0:
            return
        gathered = trainer.strategy.all_gather(weight_checksums(pl_module))
        mismatch = (gathered - gathered[0]).abs().max()
        pl_module.log("ddp/weight_mismatch", mismatch, on_step=False, on_epoch=True, rank_zero_only=True)
        if mismatch > 0:
            raise RuntimeError(f"ranks hold different weights after the first step (largest checksum difference "
                               f"{mismatch.item():.3e}); the distributed setup is broken")


def weight_checksums(module: torch.nn.Module) -> torch.Tensor:
    """Per parameter, the sum and the sum of squares of its values in float64; a complex parameter (FNO's
    spectral weights) counts its real and imaginary parts both."""
    def real(p: torch.Tensor) -> torch.Tensor:
        p = p.detach()
        return (torch.view_as_real(p) if p.is_complex() else p).double()

    return torch.stack([torch.stack([v.sum(), v.square().sum()]) for v in map(real, module.parameters())])


class NonFiniteLossGuard(pl.Callback):
    """Stops training on a NaN or infinite loss, and never lets a checkpoint be written after one.

    Whether every loss so far was finite is tracked on the device without synchronising;
    the flag is read every ``check_every_n_steps`` steps, before each validation, and before
    any checkpoint is saved. A diverged run therefore stops within a few steps, and
    ``last.ckpt`` stays the last good state.
    """

    def __init__(self, check_every_n_steps: int = 25):
        if check_every_n_steps < 1:
            raise ConfigError(f"callbacks.nonfinite_guard.check_every_n_steps: expected >= 1, "
                              f"got {check_every_n_steps}")
        self.check_every_n_steps = check_every_n_steps
        self._finite: torch.Tensor | None = None
        self._last_checked_step = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        finite = torch.isfinite(loss.detach()).all()
        self._finite = finite if self._finite is None else self._finite & finite
        if trainer.global_step % self.check_every_n_steps == 0:
            self._check(trainer)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._check(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._check(trainer)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self._check(trainer)

    def _check(self, trainer) -> None:
        if self._finite is None or bool(self._finite):
            self._last_checked_step = trainer.global_step
            return
        latest = [c.best_model_path for c in trainer.checkpoint_callbacks if c.monitor is None and c.best_model_path]
        checkpoint = latest[0] if latest else "none written yet"
        raise NonFiniteLossError(
            f"training loss became NaN or infinite at epoch {trainer.current_epoch}, between steps "
            f"{self._last_checked_step} and {trainer.global_step}; training stopped. "
            f"Last good checkpoint: {checkpoint}. Try a lower optim.lr or check the data for NaNs."
        )


def log_image(logger, tag: str, path: Path, step: int) -> None:
    """Send a PNG to a logger that shows images (TensorBoard, wandb); other loggers keep only the file."""
    if isinstance(logger, TensorBoardLogger):
        logger.experiment.add_image(tag, matplotlib.image.imread(path)[..., :3], step, dataformats="HWC")
        logger.experiment.flush()
    elif isinstance(logger, WandbLogger):
        logger.log_image(key=tag, images=[str(path)], step=step)


class PredictionPlots(pl.Callback):
    """After testing, pictures of the first test samples, of the error against resolution and (rollouts) lead time.

    Each sample's input, target, prediction and error (``plot_sample``) and the mean test error
    per stored resolution go to ``<run dir>/plots/`` and to every logger that shows images.
    Only 2D fields are drawn; only rank 0 draws. A physics-informed run instead draws its one
    solution against the reference on the test grid (``plots/solution.png``, 1D or 2D).
    """

    def __init__(self, samples: int = 3):
        if samples < 0:
            raise ConfigError(f"callbacks.prediction_plots.samples: expected a count >= 0, got {samples}")
        self.samples = samples

    def on_test_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        folder = Path(trainer.default_root_dir) / "plots"
        folder.mkdir(parents=True, exist_ok=True)
        solution = getattr(pl_module, "test_solution", None)
        pictures = self.solution_pictures(pl_module, solution, folder) if solution else self.sample_pictures(
            trainer, pl_module, folder)
        for logger in trainer.loggers:
            for tag, path in pictures:
                log_image(logger, tag, path, trainer.global_step)

    @staticmethod
    def solution_pictures(pl_module, solution: dict, folder: Path) -> list[tuple[str, Path]]:
        """A physics-informed run: its solution against the reference on the test grid."""
        problem = pl_module.problem
        path = plot_solution([a.numpy() for a in solution["axes"]], solution["prediction"].numpy(),
                             solution["reference"].numpy(), folder / "solution.png",
                             title=f"{problem.name}: {type(pl_module.model).__name__}", names=problem.axis_names)
        return [("test/solution", path)]

    def sample_pictures(self, trainer, pl_module, folder: Path) -> list[tuple[str, Path]]:
        """An operator run: test samples, the error by resolution and (rollouts) by lead time."""
        pictures = []
        loaders = trainer.test_dataloaders
        x, t, y = pl_module.unpack(next(iter(loaders[0] if isinstance(loaders, (list, tuple)) else loaders)))
        x, y = x[: self.samples], y[: self.samples]
        t = None if t is None else t[: self.samples].to(pl_module.device)
        if x.ndim in (3, 4) and len(x):  # fields on 1-D and 2-D grids
            with torch.no_grad():
                prediction = pl_module.predict(x.to(pl_module.device), t).cpu()
            for i in range(len(x)):
                path = folder / f"test_sample_{i}_{x.shape[-1]}.png"
                plot_sample(x[i, 0].numpy(), y[i, 0].numpy(), prediction[i, 0].numpy(), path,
                            title=f"test sample {i} at {grid_name(tuple(y.shape[2:]))}")
                pictures.append((f"test/sample_{i}", path))
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        # by resolution: the relative L2 error, for a rollout its per-step mean (what val/rel_l2 is)
        errors = {int(m[1]): v for k, v in metrics.items() if (m := re.fullmatch(r"test/rel_l2_(?:step_)?(\d+)", k))}
        if errors:
            pictures.append(("test/error_by_resolution",
                             plot_error_by_resolution(errors, folder / "error_by_resolution.png")))
        for resolution in errors:  # rollouts: the error at each lead time
            leads = {int(m[1]): v for k, v in metrics.items()
                     if (m := re.fullmatch(rf"test/rel_l2_{resolution}_lead(\d+)", k))}
            if leads:
                pictures.append((f"test/error_by_lead_{resolution}", plot_error_by_lead(
                    leads, folder / f"error_by_lead_{resolution}.png", f"{resolution} nodes a side")))
        return pictures
