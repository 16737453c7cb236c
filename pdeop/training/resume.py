"""Where a run continues from: the checkpoint to resume (``ckpt_path``, or the run directory's newest readable
one with ``auto_resume``), read by pdeop's loader and checked to be this run's setting before Lightning sees it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from pdeop.config import FINETUNE_KEYS, RUN_SPECIFIC, flatten, without
from pdeop.data.sampling import checkpoint_position, cut_short
from pdeop.errors import ConfigError, first_line
from pdeop.pretrained.checkpoint import (CheckpointError, checkpoint_format, load_checkpoint, load_weights,
                                         non_finite)
from pdeop.problems.base import is_periodic
from pdeop.training.callbacks import NEXT_LOGGING_STEP
from pdeop.training.checkpoint_io import set_aside
from pdeop.training.epoch_mean import saved_ranks
from pdeop.training.losses import PERIODIC_LOSS_KEYS
from pdeop.training.optimisation import parameter_groups

log = logging.getLogger(__name__)


# What may change when a run is restarted in its own directory: where it reads and writes, how far it
# trains, what it does after, how it computes (where training batches are drawn, which gives the same
# batches; compilation and matmul precision; how checkpoints are written, trainer.plugins: a run begun with
# AtomicCheckpointIO continues with BackgroundCheckpointIO; how a SIGTERM stops it; where steps seed torch), and
# the leaderboard's description of the cell.
# Anything else is another setting.
RESUMABLE_CHANGES = (*RUN_SPECIFIC, "auto_resume", "test_after_fit", "leaderboard", "trainer.max_epochs",
                     "trainer.max_steps", "trainer.enable_progress_bar", "trainer.compile", "trainer.compile_options",
                     "trainer.matmul_precision", "trainer.plugins", "data.device_resident", "data.device_memory_share",
                     "callbacks.latest.save_on_sigterm", "callbacks.latest.save_on_train_epoch_end",
                     "callbacks.latest.save_within_epochs",
                     "callbacks.sigterm_agreement", "callbacks.step_seed")
# Keys added to pdeop's configs since runs were made without them, each with the value that does what those runs
# did: a run directory whose config lacks one is the same setting as a config holding that value.
ADDED_KEYS = {"data.problem.scheme": "harmonic", "data.spatial_dims": 2}
# What decides which samples the rest of an epoch holds: a checkpoint written mid-epoch goes on only where they are
# the checkpoint run's (and, for data sharded by rank, with as many processes).
EPOCH_ORDER = ("data.batch_size", "data.shuffle_seed", "data.n_train", "data.train_subset", "data.task",
               "data.time_subsample", "data.steps_per_epoch", "data.stream.steps_per_epoch")
# ... and where the training count is what the file leaves beside them (data=from_file with n_train: null)
HELD_OUT = ("data.n_val", "data.n_test")


def check_resumable(config: dict, output_dir: Path) -> None:
    """Refuse to auto-resume a directory whose checkpoint was trained with another setting.

    An interrupted run restarted with a larger ``trainer.max_epochs`` continues (unless its schedule's
    length came from the first run's, ``check_schedule_extendable``), and so does a run directory
    copied or moved elsewhere (paths inside each run's own output directory compare as
    ``<run>/...``, ``run_relative``); one whose model,
    data, optimiser, schedule or seed changed would silently go on from the other setting's
    weights and optimiser state, so it is one clear error instead.
    """
    previous = output_dir / "config_resolved.yaml"
    if not previous.is_file():
        return
    trained = run_config(previous)
    changed = setting_changes(trained, config)
    if changed:
        keep = ("; loss.periodic_in_x=false loss.periodic_in_y=false keep the run's one-sided H1 differences"
                if "loss.periodic_in_" in changed else "")
        raise ConfigError(f"auto_resume: {output_dir} holds a run of another setting ({changed}); "
                          f"use a new hydra.run.dir, or auto_resume=false to start over in this one{keep}")
    check_schedule_extendable(trained, config)


def run_config(path: Path) -> dict:
    """The config a run directory's earlier run saved; one line where it cannot be read as one."""
    try:
        trained = OmegaConf.to_container(OmegaConf.load(path))
    except Exception as exc:  # noqa: BLE001 -- not UTF-8, not YAML, unreadable: each is the same damage to the user
        trained = " ".join(first_line(exc).split())
    if not isinstance(trained, dict) or not trained:
        found = trained if isinstance(trained, str) else f"{type(trained).__name__} {str(trained)[:40]}"
        raise ConfigError(f"auto_resume: {path} is damaged ({found}), so the setting of the run there cannot be "
                          f"checked; restore it, or use a new hydra.run.dir, or auto_resume=false to start over there")
    return trained


def setting_changes(trained: dict, config: dict) -> str:
    """The settings that differ between a run's config and ``config`` (``key (old -> new)``, the first four), beyond
    those a resume may change and paths inside each run's own folder; empty when none."""
    before, now = (flatten(without(run_relative(c, (c.get("paths") or {}).get("output_dir")), RESUMABLE_CHANGES))
                   for c in (trained, config))
    if "data.spatial_dims" not in before and (before.get("data.out_channels") == 1 or
                                              "data.spatial_dims" in now and now["data.spatial_dims"] is None):
        # loss.d was 2 before data.spatial_dims set it: over one channel of 1-D fields the loss over 1 axis, and on
        # 2-D files what null (the file's) gives
        before |= {key: now.get(key) for key in ("data.spatial_dims", "loss.d")}
    before |= {key: value for key, value in ADDED_KEYS.items() if key not in before and key in now}
    before |= periodic_loss_as_before(before, now)
    changed = sorted(key for key in before.keys() | now.keys() if before.get(key) != now.get(key))
    shown = ", ".join(f"{key} ({before.get(key)!r} -> {now.get(key)!r})" for key in changed[:4])
    return shown + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")


def periodic_loss_as_before(before: dict, now: dict) -> dict:
    """``before`` entries for H1's ``loss.periodic_in_x/y/z`` that ``now`` leaves null (the data's grid): the run's
    value where it differentiated the same way, so that runs made when x and y were false for every grid go on where
    the grid is bounded (Darcy). A missing ``periodic_in_z`` (added later) was neuraloperator's default, periodic,
    which only 3-D losses use; where it differed, its old value is entered, so that the change is named."""
    periodic = configured_periodic(now)
    entries = {}
    for key in (f"loss.{name}" for name in PERIODIC_LOSS_KEYS):
        if key not in now:
            continue
        if key in before:
            was = before[key]
        elif key.endswith("_z"):
            if (before.get("loss.d") or 2) <= 2:
                entries[key] = now[key]  # unused by the run's loss
                continue
            was = True
        else:
            continue
        if now[key] is None and periodic is not None and was == periodic:
            entries[key] = None
        elif key not in before:
            entries[key] = was
    return entries


def configured_periodic(flat: dict) -> bool | None:
    """Whether a flattened config's data grid is periodic, as far as the config tells: the generated problem's
    boundary, or data=from_file's ``data.periodic`` (None: the format's, known once the file is open)."""
    problem = flat.get("data.problem._target_")
    if isinstance(problem, str):
        try:
            return is_periodic(get_object(problem))
        except Exception:  # noqa: BLE001 -- check_config names a target that cannot be imported
            return None
    return flat.get("data.periodic")


def run_relative(value, output_dir: str | None):
    """``value`` with every path inside ``output_dir`` (a string) written as ``<run>/...``, through dicts and lists."""
    if isinstance(value, dict):
        return {key: run_relative(item, output_dir) for key, item in value.items()}
    if isinstance(value, list):
        return [run_relative(item, output_dir) for item in value]
    root = (output_dir or "").rstrip("/")
    if root and isinstance(value, str) and (value == root or value.startswith(root + "/")):
        return "<run>" + value[len(root):]
    return value


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


@dataclass
class Resume:
    """The checkpoint a run continues from: its file, the step its loggers log next, its weights, where its training
    goes on (epoch, batches of it taken) and how many processes wrote it (None: unknown), and the key that chose it."""

    path: str
    step: int
    state_dict: dict
    position: tuple[int, int] = (0, 0)
    ranks: int | None = None
    key: str = "ckpt_path"
    global_step: int = 0
    cut_short: tuple[int, int] | None = None  # (epoch, batches taken) of an epoch trainer.max_steps ended mid-way
    order: dict | None = None  # the checkpoint run's EPOCH_ORDER settings
    optimiser_groups: list[int] | None = None  # parameters in each of its optimiser's groups (None: no state)


def logging_step(checkpoint: dict) -> int:
    """The step the resumed run logs next: Lightning's count of batches that stepped, its loggers' x axis; as
    ``RunCheckpoint`` recorded it (``NEXT_LOGGING_STEP``) where it did (a validation's rows are then kept)."""
    if NEXT_LOGGING_STEP in checkpoint:
        return int(checkpoint[NEXT_LOGGING_STEP])
    loop = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.state_dict", {})
    return int(loop.get("_batches_that_stepped", checkpoint.get("global_step", 0)))


def model_named(model: dict, keys: list[str]) -> str:
    """``FNO(hidden_channels=16)``: a model's class and the settings ``keys`` (flattened, under ``model.``)."""
    target = str(model.get("model._target_", "an unknown model")).rsplit(".", 1)[-1]
    shown = ", ".join(f"{key[len('model.'):]}={model.get(key)!r}" for key in keys[:4] if key != "model._target_")
    return f"{target}({shown})"


def check_same_model(checkpoint: dict, config: dict, path: str, key: str) -> None:
    """Refuse a checkpoint whose stored model node is not this run's (fine-tuning directives aside), naming both."""
    trained, now = (flatten(without({"model": c.get("model") or {}}, tuple(f"model.{k}" for k in FINETUNE_KEYS)))
                    for c in (checkpoint["pdeop_config"], config))
    changed = sorted(k for k in trained.keys() | now.keys() if trained.get(k) != now.get(k))
    if changed:
        raise ConfigError(f"{key}: '{path}' holds another model: it was trained as "
                          f"{model_named(trained, changed)}, this run builds {model_named(now, changed)}; pass a "
                          f"checkpoint of this model, or train with the settings it was made with")


def resume_of(checkpoint: dict, path: str, config: dict, key: str) -> Resume:
    """What a run needs of the checkpoint it continues from, once its model is known to be this run's."""
    try:
        check_same_model(checkpoint, config, path, key)
        return Resume(path, logging_step(checkpoint), checkpoint["state_dict"], checkpoint_position(checkpoint),
                      saved_ranks(checkpoint), key, int(checkpoint.get("global_step", 0)), max_steps_cut(checkpoint),
                      epoch_order(checkpoint["pdeop_config"]), optimiser_group_sizes(checkpoint))
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
        found = f"{type(exc).__name__}: {first_line(exc)}"
        raise CheckpointError(f"{key}: '{path}' holds a training state that this pdeop does not read ({found}): "
                              f"damaged, or not written by pdeop's training") from exc


def optimiser_group_sizes(checkpoint: dict) -> list[int] | None:
    """The number of parameters in each group of the checkpoint's optimiser state (None: it has none)."""
    states = checkpoint.get("optimizer_states") or []
    return [len(group["params"]) for group in states[0]["param_groups"]] if states else None


def continues_here(resume: Resume | None, output_dir: Path) -> bool:
    """Whether the run continues the one in its own directory: resumed from a checkpoint of ``output_dir``'s
    ``checkpoints/`` (auto_resume, or ckpt_path naming one). Otherwise (a fresh start, or ``ckpt_path`` from
    elsewhere) the folder's checkpoints and history are an earlier run's, to be set aside rather than mixed in."""
    if resume is None:
        return False
    return Path(resume.path).resolve().parent == (output_dir / "checkpoints").resolve()


def newest_first(folder: Path) -> list[Path]:
    """The checkpoints in ``folder``, the furthest trained first: by the optimiser steps each records, then
    ``last.ckpt`` among equals (written after the epoch's end hooks), then the most recently written.

    The times alone misorder a run folder copied without them (``cp -r``, most uploads): an early best checkpoint
    copied last would be resumed and the training since lost. One whose step cannot be read comes first, so that
    ``newest_readable`` tries it and sets it aside as damaged rather than passing over it in silence.
    """
    def progress(path: Path) -> tuple:
        step = recorded_step(path)
        try:
            written = path.stat().st_mtime_ns
        except OSError:  # gone meanwhile (another rank set it aside): newest_readable's load says so
            written = 0
        return step is None, step or 0, path.name == "last.ckpt", written

    return sorted(folder.glob("*.ckpt"), key=progress, reverse=True)


def recorded_step(path: Path) -> int | None:
    """The optimiser steps (Lightning's ``global_step``) a checkpoint records, read without its tensors (memory
    mapped; a legacy pickle checkpoint, which cannot be, is read whole); None where it cannot be read."""
    try:
        if checkpoint_format(path) == "pickle":
            return int(load_checkpoint(path)["global_step"])
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"])
    except Exception:  # noqa: BLE001 -- damaged, unreadable, no step: newest_readable's load says which
        return None


def newest_readable(config: dict, folder: Path) -> Resume | None:
    """The newest checkpoint in ``folder`` that reads; unreadable ones are moved aside (``.broken``) with a warning.

    Checkpoints are written atomically, so an unreadable one was damaged from outside (a disk
    error, a copy cut short). The state a requeued job resumes from is then the next newest --
    normally ``best-*.ckpt``, which holds the full training state as ``last.ckpt`` does -- rather
    than a ``last.prev.ckpt`` kept every epoch at the cost of a third copy of the weights on disk.
    """
    for path in newest_first(folder):
        try:
            checkpoint = load_checkpoint(path)
            resume = resume_of(checkpoint, str(path), config, "auto_resume")
            diverged = non_finite(checkpoint["state_dict"], set(checkpoint["state_dict"]))
            if diverged:  # weights or normaliser statistics: the run diverged, or the file was altered
                raise CheckpointError(f"checkpoint '{path}': its state holds NaN or Inf ({', '.join(diverged[:4])})")
        except CheckpointError as exc:
            if rank_zero_only.rank == 0:  # one process moves it and says so; every rank skips it
                aside = set_aside(path, "broken")
                log.warning("auto_resume: %s; moved it to %s and trying the next newest checkpoint",
                            " ".join(str(exc).split()), aside.name)
            continue
        return resume
    return None


def resume_from(cfg: DictConfig, config: dict, output_dir: Path) -> Resume | None:
    """The checkpoint to resume from: ``ckpt_path`` if given, else (``auto_resume``) the run directory's newest.

    A run restarted in its own directory -- a SLURM job requeued after preemption, a crashed
    job started again with the same ``hydra.run.dir`` -- continues from its newest readable
    checkpoint instead of from epoch 0, provided it is the same setting (``check_resumable``).
    Either way the file is read by pdeop's loader before Lightning sees it, so a damaged file or
    another model's checkpoint is one readable message.
    """
    if cfg.ckpt_path is not None:
        try:
            checkpoint = load_checkpoint(cfg.ckpt_path)
        except CheckpointError as exc:
            raise CheckpointError(f"ckpt_path: {exc}") from exc
        changed = setting_changes(checkpoint.get("pdeop_config") or {}, config)
        if changed:  # allowed (continuing a run on new data, say), but said: auto_resume would refuse it
            log.warning("ckpt_path: %s was trained with another setting (%s); its weights, optimiser and schedule "
                        "continue under this run's", cfg.ckpt_path, changed)
        return resume_of(checkpoint, cfg.ckpt_path, config, "ckpt_path")
    folder = output_dir / "checkpoints"
    if not cfg.auto_resume or not any(folder.glob("*.ckpt")):
        return None
    check_resumable(config, output_dir)
    resume = newest_readable(config, folder)
    if resume is None:
        log.warning("auto_resume: no readable checkpoint in %s; starting over", folder)
    else:
        log.info("resuming from %s (auto_resume)", resume.path)
    return resume


def epoch_order(config: dict) -> dict:
    """The settings of ``config`` that decide which samples an epoch's rest holds (``EPOCH_ORDER``, and ``HELD_OUT``
    where ``data.n_train`` is null), flattened."""
    flat = flatten(config)
    names = EPOCH_ORDER + (HELD_OUT if "data.n_train" in flat and flat["data.n_train"] is None else ())
    return {key: value for key, value in flat.items()
            if any(key == name or key.startswith(name + ".") for name in names)}


def check_goes_on_mid_epoch(resume: Resume | None, config: dict, world_size: int | None, sharded: bool) -> None:
    """Refuse to go on mid-epoch where the rest of the epoch would not be what the checkpoint's run left.

    The resumed epoch leaves out the batches already taken from the same order, so another batch size, shuffle
    seed, sample count or task would train some samples twice and others not at all (auto_resume refuses these as
    another setting; ``ckpt_path`` only warned). With data sharded by rank (``sharded``: stored pairs, not the
    physics-informed draws or the online stream, which each rank draws for itself) so would another number of
    processes (``world_size``, None: not known yet). At an epoch's end any of these may change.
    """
    if resume is None or not resume.position[1]:
        return
    epoch, taken = resume.position
    where = f"{resume.key}: {resume.path} was written mid-epoch (epoch {epoch}, after {taken} batches)"
    before, now = resume.order, epoch_order(config)
    changed = sorted(key for key in before.keys() | now.keys() if before.get(key) != now.get(key)) if before else []
    if changed:
        key = changed[0]
        raise ConfigError(f"{where} with {key}={before.get(key)!r} and this run has {now.get(key)!r}: the epoch's "
                          f"rest would hold other samples than the ones it left; keep {key}, or resume from a "
                          f"checkpoint written at an epoch's end")
    if sharded and world_size is not None and resume.ranks not in (None, world_size):
        raise ConfigError(f"{where} by {processes(resume.ranks)} and this run has {world_size}: the epoch's rest is "
                          f"shared out by rank as before; resume with {resume.ranks} (trainer.devices x "
                          f"trainer.num_nodes), or from a checkpoint written at an epoch's end")


def configured_world_size(trainer: dict) -> int | None:
    """The number of processes the trainer config asks for (devices x num_nodes), where it says (not ``auto``)."""
    devices, nodes = trainer.get("devices", 1), trainer.get("num_nodes", 1)
    count = len(devices) if isinstance(devices, (list, tuple)) else devices
    return count * nodes if isinstance(count, int) and count > 0 and isinstance(nodes, int) else None


def max_steps_cut(checkpoint: dict) -> tuple[int, int] | None:
    """(epoch, batches taken) of the epoch ``trainer.max_steps`` ended mid-way in ``checkpoint``'s run; None for other
    stops (``trainer.max_time``, early stopping: the same setting stops again at once)."""
    limit = ((checkpoint.get("pdeop_config") or {}).get("trainer") or {}).get("max_steps")
    if not isinstance(limit, int) or limit < 0 or checkpoint.get("global_step") != limit:
        return None
    return cut_short(checkpoint)


def check_extends(resume: Resume | None, max_steps: int) -> None:
    """Refuse to train on from a checkpoint whose epoch ``trainer.max_steps`` ended mid-way (auto_resume; a warning
    with ``ckpt_path``).

    Lightning counts that epoch as finished (its validation ran, an epoch-wise schedule stepped), so a longer run
    from there starts the next epoch and the rest of the cut one is never trained: not the run a larger
    ``max_steps`` from the start would have been. The same ``max_steps`` again trains nothing, and goes on.
    """
    if resume is None or resume.cut_short is None or 0 <= max_steps <= resume.global_step:
        return
    epoch, taken = resume.cut_short
    message = (f"{resume.key}: {resume.path} was written when the run stopped at step {resume.global_step} "
               f"(trainer.max_steps) after {taken} batches of epoch {epoch}; training on from it would skip the rest "
               f"of that epoch")
    if resume.key == "ckpt_path":
        log.warning("%s", message)
        return
    raise ConfigError(f"{message}; use a new hydra.run.dir for the longer run (runs to be extended are best bounded "
                      f"by trainer.max_epochs)")


def processes(count: int) -> str:
    return f"{count} process" + ("es" if count != 1 else "")


def check_fits(module, resume: Resume | None) -> None:
    """Refuse a checkpoint whose weights do not fit the built module (keys or shapes), naming every key.

    The weights are then let go rather than held through training: Lightning reads the file itself.
    """
    if resume is not None:
        load_weights(module, resume.state_dict, resume.path)
        resume.state_dict = {}
        check_optimiser_fits(module, resume)


def check_optimiser_fits(module, resume: Resume) -> None:
    """Refuse a checkpoint whose optimiser state has other parameter groups than this run's optimiser: trainable
    parameters (``model.freeze``) or learning-rate groups (``model.param_lr``) changed since it was written, and
    Lightning would stop as it restores the state, with an error that names neither."""
    if resume.optimiser_groups is None:
        return
    sizes = [len(group["params"]) for group in parameter_groups(module.model, module.param_lr)]
    if sizes != resume.optimiser_groups:
        raise ConfigError(f"{resume.key}: '{resume.path}' holds optimiser state for parameter groups of "
                          f"{resume.optimiser_groups} parameters, and this run's optimiser has {sizes}: model.freeze "
                          f"or model.param_lr differ from the run that wrote it; keep them as they were, or start a "
                          f"new run from its weights with model.pretrained={resume.path}")
