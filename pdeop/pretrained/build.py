"""Rebuild a ``TrainedOperator`` from its run config and its state (weights and normaliser statistics).

Checkpoints and bundles both come down to these two things, so both load through here, and every stored
config passes ``trusted.check_stored_config`` before anything is built from it.
"""

from __future__ import annotations

import torch
from hydra.utils import instantiate
from torch import nn

from pdeop.config import FINETUNE_KEYS, check_config
from pdeop.data.normalise import channel_normaliser
from pdeop.data.tasks import Window
from pdeop.errors import ConfigError, first_line, user_error_of
from pdeop.inference import TrainedOperator
from pdeop.pretrained.checkpoint import CheckpointError, check_fit, load_weights
from pdeop.pretrained.trusted import check_stored_config


def constructor_config(model_config: dict) -> dict:
    """The model node without its fine-tuning directives: what the network's constructor takes."""
    return {k: v for k, v in model_config.items() if k not in FINETUNE_KEYS}


def model_from_config(model_config: dict) -> nn.Module:
    """The bare, freshly initialised network that a run config's ``model`` node describes; a constructor's refusal
    of its values (a width of 0, say, that the signature allows) is one ConfigError naming the model."""
    try:
        return instantiate(constructor_config(model_config), _convert_="all")
    except Exception as exc:
        user_error = user_error_of(exc)
        if user_error is not None:  # the constructor's own message (from None: its cause is already exc's)
            raise user_error from None
        cause = exc.__cause__ or exc
        name = str(model_config.get("_target_", "?")).rsplit(".", 1)[-1]
        raise ConfigError(f"model: {name} cannot be built from these settings ({type(cause).__name__}: "
                          f"{first_line(cause)})") from exc


def normaliser_state(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """The input and output normaliser statistics in a module state dict (``input_normaliser.mean``, ...)."""
    names = [f"{side}_normaliser.{stat}" for side in ("input", "output") for stat in ("mean", "std")]
    missing = [name for name in names if name not in state]
    if missing:
        raise CheckpointError(f"'{source}' has no normaliser statistics ({', '.join(missing)} missing)")
    odd = [f"{name} {tuple(state[name].shape)}" for name in names
           if not per_channel(state[name].shape) or state[name].shape != state[name.rpartition(".")[0] + ".mean"].shape]
    if odd:
        raise CheckpointError(f"'{source}': its normaliser statistics are not per channel ({', '.join(odd)}; "
                              f"expected mean and std of one shape [1, channels, 1, ...])")
    broken = [name for name in names if not torch.isfinite(state[name]).all()]
    if broken:
        raise CheckpointError(f"'{source}': its normaliser statistics hold NaN or Inf ({', '.join(broken)}); every "
                              f"prediction would be NaN")
    return {name: state[name] for name in names}


def per_channel(shape: torch.Size) -> bool:
    """Whether ``shape`` is that of per-channel statistics, ``[1, channels, 1, ...]``."""
    return len(shape) >= 2 and shape[0] == 1 and all(size == 1 for size in shape[2:])


def stored_rollout(config: dict) -> Window | None:
    """The rollout task of a model trained on trajectories (``data.task`` a ``Window``), else None.

    ``config`` has passed ``check_stored_config``, which checked ``data.task`` with the whole data node.
    """
    data = config.get("data") or {}
    if not isinstance(data.get("task"), dict):
        return None
    built = instantiate(data["task"])
    return built if isinstance(built, Window) else None


def built(model_config: dict, source: str) -> nn.Module:
    """``model_from_config``, its refusal of the stored values naming the file."""
    try:
        return model_from_config(model_config)
    except ConfigError as exc:
        raise CheckpointError(f"'{source}': its config does not fit this pdeop ({exc})") from exc


def check_shapes_before_building(model_config: dict, state: dict[str, torch.Tensor], source: str) -> None:
    """The network's parameter shapes, from a build on the meta device (no memory), against the stored weights.

    A config whose sizes do not fit its weights (a re-signed bundle asking for a model of petabytes, say) is
    refused before anything is allocated, with ``load_weights``'s message. Models that cannot be built on the
    meta device are checked by ``load_weights`` after the real build.
    """
    try:
        with torch.device("meta"):
            network = model_from_config(model_config)
    except Exception:  # noqa: BLE001 -- not buildable on meta (an .item() in a constructor): the real build decides
        return
    own = {f"model.{k}": v.shape for k, v in network.state_dict().items() if isinstance(v, torch.Tensor)}
    check_fit(own, {k: v.shape for k, v in state.items() if k.startswith("model.")}, source)


def check_signatures(config: dict, source: str) -> None:
    """The stored model, loss and optimiser nodes against their constructors' signatures, naming the file."""
    try:
        for key in ("model", "loss", "optim"):
            check_config(constructor_config(config[key]) if key == "model" else config[key], key)
    except ConfigError as exc:
        raise CheckpointError(f"'{source}': its config does not fit this pdeop ({exc})") from exc


def is_physics_run(config: dict) -> bool:
    """Whether a stored run config is a physics-informed run's: one solution of one problem, not an operator."""
    data = config.get("data")
    return isinstance(data, dict) and str(data.get("_target_", "")).endswith("CollocationDataModule")


def trained_operator(config: dict, state: dict[str, torch.Tensor], source: str) -> TrainedOperator:
    """The ``TrainedOperator`` of run ``config`` with ``state`` loaded (eval mode, CPU).

    ``state`` is the training module's state dict: the network's weights under ``model.`` and the
    normaliser statistics, every key of the operator present and no other (loaded strictly);
    ``source`` names the file in error messages. The stored loss and optimiser are checked against
    their signatures, so a config this pdeop could not train again is refused, but not built.
    """
    check_stored_config(config, source)
    missing = [key for key in ("model", "loss", "optim") if not isinstance(config.get(key), dict)]
    if missing:
        raise CheckpointError(f"'{source}': its config has no {', '.join(missing)} node")
    if is_physics_run(config):
        raise CheckpointError(f"'{source}' is a physics-informed run: it holds one solution, not an operator to "
                              f"load or evaluate on data; its error is in the run's test_metrics.json, and "
                              f"train.py ckpt_path=<it> resumes it")
    check_signatures(config, source)
    stats = normaliser_state(state, source)
    check_shapes_before_building(config["model"], state, source)
    operator = TrainedOperator(
        model=built(config["model"], source),
        input_normaliser=channel_normaliser(stats["input_normaliser.mean"], stats["input_normaliser.std"]),
        output_normaliser=channel_normaliser(stats["output_normaliser.mean"], stats["output_normaliser.std"]),
        rollout=stored_rollout(config),
        config=config,
    )
    load_weights(operator, state, source)
    return operator.eval()
