"""Check a composed config against the signatures of the objects it builds, before building any.

Every node with a ``_target_`` is checked against the target's constructor: unknown keys,
missing required keys and values of the wrong type each raise a ``ConfigError`` naming the key
and what was expected, at start-up rather than an hour into training.
"""

from __future__ import annotations

import collections.abc
import inspect
import logging
import types
import typing
from typing import Any, Literal, Union

import torch
from hydra.utils import get_object, instantiate
from omegaconf import OmegaConf

from pdeop.errors import ConfigError

log = logging.getLogger(__name__)

HYDRA_KEYS = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}

# Keys of the `model` node that direct training (start from these weights except these, freeze
# these parameters, give these their own learning rate) rather than configure the network's
# constructor; checked here by type.
FINETUNE_KEYS = {"pretrained": str | None, "freeze": list[str], "pretrained_exclude": list[str],
                 "param_lr": dict | None}

# Keys of the `trainer` node that are pdeop's, not Lightning's Trainer's: how the run computes (torch.compile
# of the network, float32 matmul precision), applied by `training.acceleration`; checked here by type.
TRAINER_KEYS = {"compile": bool, "compile_options": dict, "matmul_precision": Literal["highest", "high", "medium"]}


# Where a run reads, writes and solves: what differs between two runs of one setting (dotted keys). The
# solvers' place is among them: a dataset is the same bit for bit wherever its solvers ran.
RUN_SPECIFIC = ("paths", "hydra", "ckpt_path", "data.data_dir", "data.path", "solvers")


def without(config: dict, keys: tuple[str, ...]) -> dict:
    """``config`` without the dotted ``keys`` (``"data.path"``: the ``path`` entry of the ``data`` node)."""
    kept = {}
    for name, value in config.items():
        if name in keys:
            continue
        inner = tuple(key[len(name) + 1:] for key in keys if key.startswith(f"{name}."))
        kept[name] = without(value, inner) if inner and isinstance(value, dict) else value
    return kept


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        flat.update(flatten(value, f"{name}.") if isinstance(value, dict) else {name: value})
    return flat


def subsampled_size(nodes: int, factor: int) -> int:
    """Nodes a side after taking every ``factor``-th of ``nodes`` (boundaries kept): 421, 5 -> 85."""
    if int(factor) < 1:
        raise ConfigError(f"taken from data.subsample, which is {factor}: expected a positive subsample factor")
    return (int(nodes) - 1) // int(factor) + 1


# lets data configs state their training grid without repeating a number: ${subsampled_size:421,5}
OmegaConf.register_new_resolver("subsampled_size", subsampled_size, replace=True)


def matches(value: Any, annotation: Any) -> bool:
    """Whether a plain config value can be passed where ``annotation`` is expected.

    Only the types a config can hold are checked (numbers, strings, booleans, sequences,
    mappings and unions of them); a tensor never comes from a config, so it matches nothing
    (``lr: float | Tensor`` takes only a number); any other annotation accepts the value.
    """
    if annotation in (inspect.Parameter.empty, Any) or isinstance(annotation, (str, typing.TypeVar)):
        return True
    if isinstance(value, dict) and "_target_" in value:
        return True
    if annotation is torch.Tensor:
        return False
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        return any(matches(value, arg) for arg in args)
    if origin is Literal:
        return value in args
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    sequence_types = (list, tuple, collections.abc.Sequence)
    if annotation in sequence_types or origin in sequence_types:
        if not isinstance(value, (list, tuple)):
            return False
        element_types = [a for a in args if a is not Ellipsis]
        if len(element_types) == 1:
            return all(matches(v, element_types[0]) for v in value)
        if element_types and len(element_types) == len(value) and Ellipsis not in args:
            return all(matches(v, a) for v, a in zip(value, element_types))
        return True
    if annotation in (dict, collections.abc.Mapping) or origin in (dict, collections.abc.Mapping):
        return isinstance(value, dict)
    return True


def check_settings(config: dict, settings: type) -> None:
    """The plain top-level keys of an entry point's config against the annotations of the dataclass ``settings``:
    each present and of its type, one error naming the first that is not (``overwrite=no`` is a string, not
    false)."""
    for name, expected in typing.get_type_hints(settings).items():
        if name not in config:
            raise ConfigError(f"{name}: missing from the config")
        if not matches(config[name], expected):
            raise ConfigError(f"{name}: expected {describe(expected)}, got {config[name]!r}")


def settings_of(cfg: Any, settings: type) -> dict:
    """The keys of ``settings`` (a dataclass) that the composed config ``cfg`` holds, as plain values."""
    held = set(cfg.keys())  # `in` leaves out a key whose value is ??? (required): reading it says so, in one line
    return {name: OmegaConf.to_object(cfg[name]) if OmegaConf.is_config(cfg[name]) else cfg[name]
            for name in settings.__dataclass_fields__ if name in held}


def describe(annotation: Any) -> str:
    """``annotation`` as a message shows it, without the tensor arm a config value cannot take."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        arms = [arm for arm in typing.get_args(annotation) if arm is not torch.Tensor]
        if len(arms) == 1:
            return describe(arms[0])
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _signature(target: Any) -> tuple[inspect.Signature, dict[str, Any]]:
    function = target.__init__ if inspect.isclass(target) else target
    signature = inspect.signature(target)
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # unresolvable forward references: fall back to the raw annotations
        hints = {name: p.annotation for name, p in signature.parameters.items()}
    return signature, hints


def check_node(node: dict, path: str) -> None:
    """Check one ``_target_`` node (a plain dict) against its target's signature."""
    where = path or "<root>"
    try:
        target = get_object(node["_target_"])
    except Exception as exc:
        raise ConfigError(f"{where}._target_: cannot import '{node['_target_']}' ({exc})") from exc
    signature, hints = _signature(target)
    params = signature.parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    directives = {"model": FINETUNE_KEYS, "trainer": TRAINER_KEYS}.get(path, {})
    for key, expected in directives.items():
        if key in node and not matches(node[key], expected):
            raise ConfigError(f"{where}.{key}: expected {describe(expected)}, got {node[key]!r}")
    given = {k: v for k, v in node.items() if k not in HYDRA_KEYS and k not in directives}
    if not takes_any:
        valid = [n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and n != "self"]
        for key in given:
            if key not in params:
                raise ConfigError(
                    f"{where}.{key}: not a parameter of {node['_target_']}; valid keys: {', '.join(valid)}"
                )
    if not node.get("_partial_", False):
        for name, p in params.items():
            required = p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            if required and name != "self" and name not in given:
                raise ConfigError(f"{where}.{name}: required by {node['_target_']} but missing from the config")
    for key, value in given.items():
        expected = hints.get(key, inspect.Parameter.empty)
        if value is None and node.get("_partial_", False):
            continue  # a partial's None is filled in when it is called (a scheduler's step count)
        if value is None and key in params and params[key].default is None:
            continue  # the constructor's own default, whatever its hint says (neuralop's domain_padding)
        if not matches(value, expected):
            raise ConfigError(
                f"{where}.{key}: expected {describe(expected)}, got {value!r} ({type(value).__name__})"
            )


def check_optimiser(optim: dict) -> None:
    """Build the optimiser on one dummy parameter, so a value it refuses (``lr=-1``) is a ConfigError now.

    ``lr=0`` is allowed but warned about: the weights would never change.
    """
    lr = optim.get("lr")
    if isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr < 0:
        raise ConfigError(f"optim.lr: expected a positive learning rate, got {lr}")
    try:
        instantiate(optim)([torch.nn.Parameter(torch.zeros(1))])
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"optim: {optim['_target_']} refuses these settings ({exc})") from exc
    if lr == 0:
        log.warning("optim.lr=0: the weights will not change; is this what you meant?")


def check_training_length(trainer: dict) -> None:
    """Warn where a trainer would never stop by itself (Lightning reads ``max_epochs=-1`` as unlimited)."""
    epochs, steps, budget = trainer.get("max_epochs"), trainer.get("max_steps", -1), trainer.get("max_time")
    if epochs == -1 and steps in (-1, None) and budget is None:
        log.warning("trainer.max_epochs=-1 with no max_steps or max_time: training runs until it is stopped")
    elif isinstance(epochs, int) and epochs < -1:
        raise ConfigError(f"trainer.max_epochs: expected a number of epochs (>= 0, or -1 for no limit), got {epochs}")


def check_accelerator(trainer: dict) -> None:
    """A GPU asked for where torch sees none is one line now, not Lightning's error after the data is made."""
    accelerator = str(trainer.get("accelerator", "auto")).lower()
    mps = accelerator == "gpu" and torch.backends.mps.is_available()  # Lightning's "gpu" is Apple's GPU there
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available() and not mps:
        build = f"a CUDA {torch.version.cuda} build" if torch.version.cuda else "a CPU-only build"
        raise ConfigError(f"trainer.accelerator: '{accelerator}' asked for, but torch ({torch.__version__}, {build}) "
                          f"sees no CUDA GPU here; drop trainer=gpu (the default takes a GPU where there is one) "
                          f"or use trainer=cpu")


def check_batch_size(data: dict) -> None:
    batch = data.get("batch_size")
    if isinstance(batch, int) and not isinstance(batch, bool) and batch < 1:
        raise ConfigError(f"data.batch_size: expected at least 1 sample a batch, got {batch}")


def check_nodes(config, path: str) -> None:
    """Check every ``_target_`` node under ``config`` (a plain container) against its signature, depth first."""
    if isinstance(config, dict):
        if "_target_" in config:
            check_node(config, path)
        for key, value in config.items():
            check_nodes(value, f"{path}.{key}" if path else str(key))
    elif isinstance(config, list):
        for i, value in enumerate(config):
            check_nodes(value, f"{path}[{i}]")


def check_config(config: dict, path: str = "") -> None:
    """Check a resolved config (a plain container): every ``_target_`` node against its signature.

    For a whole run config (``path`` empty), also the values no signature can judge: the optimiser
    is built on a dummy parameter and the training length is looked at.
    """
    check_nodes(config, path)
    if path:
        return
    if isinstance(config.get("optim"), dict) and "_target_" in config["optim"]:
        check_optimiser(config["optim"])
    if isinstance(config.get("trainer"), dict):
        check_training_length(config["trainer"])
        check_accelerator(config["trainer"])
    if isinstance(config.get("data"), dict):
        check_batch_size(config["data"])
