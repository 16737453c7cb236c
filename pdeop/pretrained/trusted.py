"""The one gate every stored config passes before anything is built from it.

A checkpoint's ``pdeop_config`` and a bundle's ``config.yaml`` are data from a file, yet pdeop
instantiates their ``model``, ``loss``, ``optim`` and ``data`` nodes with Hydra. Hydra imports
whatever a ``_target_`` names and follows attribute chains (``pdeop.models.torch.load`` is
``torch.load``), so a prefix check is no check. Here a ``_target_`` must be spelled as one of the
entries below, for its node, and must resolve to the very class that entry says it is defined
as (``obj.__module__ + "." + obj.__qualname__``). Nothing is imported before the spelling is
found on the list. Beside the targets the gate refuses what could reach a loader or change what
Hydra does: Hydra directives other than the optimiser's ``_partial_: true``, keys named like
files or loader options, interpolations, and any value that is not plain YAML data.
"""

from __future__ import annotations

import functools
import importlib
import sys
from pathlib import Path
from typing import Any

import torch
import yaml
from hydra.utils import get_object

from pdeop.config import FINETUNE_KEYS
from pdeop.pretrained.checkpoint import CheckpointError

# How configs spell a target -> where that class is defined. Every `_target_` that pdeop/conf/ puts in the loss,
# optim and data nodes is listed (tests/test_pretrained.py checks it): a new loss or problem goes here too. Models
# are not listed: `shipped_models` reads them from the package's own model configs, so that a new model is its
# module and its yaml file (docs/models.md).
LOSSES = {
    "neuralop.losses.H1Loss": "neuralop.losses.data_losses.H1Loss",
    "neuralop.losses.LpLoss": "neuralop.losses.data_losses.LpLoss",
    "pdeop.training.losses.FourierSobolevLoss": "pdeop.training.losses.FourierSobolevLoss",
    "pdeop.training.losses.GaussianLikelihoodLoss": "pdeop.training.losses.GaussianLikelihoodLoss",
    "pdeop.training.losses.PhysicsLoss": "pdeop.training.losses.PhysicsLoss",
    "pdeop.training.losses.TransformedRelativeL2": "pdeop.training.losses.TransformedRelativeL2",
}
OPTIMISERS = {
    "torch.optim.Adam": "torch.optim.adam.Adam",
    "torch.optim.AdamW": "torch.optim.adamw.AdamW",
    "torch.optim.LBFGS": "torch.optim.lbfgs.LBFGS",
}
DATA_MODULES = {  # with the online stream's settings, a node of the data module
    "pdeop.data.CollocationDataModule": "pdeop.data.collocation.CollocationDataModule",
    "pdeop.data.FileDataModule": "pdeop.data.from_file.FileDataModule",
    "pdeop.data.OperatorDataModule": "pdeop.data.datamodule.OperatorDataModule",
    "pdeop.data.stream.StreamSettings": "pdeop.data.stream.generator.StreamSettings",
}
PROBLEMS = {
    "pdeop.problems.Advection1D": "pdeop.problems.manufactured.Advection1D",
    "pdeop.problems.AllenCahn1D": "pdeop.problems.manufactured.AllenCahn1D",
    "pdeop.problems.Burgers1D": "pdeop.problems.burgers.Burgers1D",
    "pdeop.problems.Darcy": "pdeop.problems.darcy.Darcy",
    "pdeop.problems.DarcyInstance": "pdeop.problems.darcy_instance.DarcyInstance",
    "pdeop.problems.Helmholtz2D": "pdeop.problems.manufactured.Helmholtz2D",
    "pdeop.problems.NavierStokes2D": "pdeop.problems.navier_stokes.NavierStokes2D",
    "pdeop.problems.Poisson1D": "pdeop.problems.manufactured.Poisson1D",
    "pdeop.problems.Poisson2D": "pdeop.problems.manufactured.Poisson2D",
}
LINEAR_SOLVERS = {"pdeop.linalg.LinearSolver": "pdeop.linalg.solver.LinearSolver"}
TASKS = {
    "pdeop.data.tasks.AllToAll": "pdeop.data.tasks.AllToAll",
    "pdeop.data.tasks.FinalState": "pdeop.data.tasks.FinalState",
    "pdeop.data.tasks.Window": "pdeop.data.tasks.Window",
}

# The nodes a stored config is built from but the model, and what each may build at any depth.
TRUSTED: dict[str, dict[str, str]] = {
    "loss": LOSSES,
    "optim": OPTIMISERS,
    "data": DATA_MODULES | PROBLEMS | LINEAR_SOLVERS | TASKS,
}

# The only Hydra directive a stored config may carry besides `_target_`: the optimiser is a partial constructor.
DIRECTIVES = {"optim": {"_partial_": True}}
# Words that make a key a file or a loader option (`weights_only`, `ckpt_path`, `pretrained`, `data_dir`, ...).
LOADER_WORDS = {"path", "paths", "file", "files", "filename", "dir", "directory", "checkpoint", "ckpt", "url", "uri",
                "pretrained", "weights", "pickle", "load", "loader", "mmap"}
# ... allowed only here: the model's fine-tuning directives, dropped before the network is built, and the data
# modules' files, which their readers open without unpickling (HDF5, .mat, .npz without pickles, .pt weights only).
FILE_KEYS = {"model": set(FINETUNE_KEYS), "data": {"data_dir", "path", "val_path", "test_path"}}

PLAIN_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map")}
PLAIN_TYPES = (str, int, float, bool, type(None))
PLAIN = "a stored config holds plain values only (strings, numbers, booleans, null, lists and mappings)"


def tag_name(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag


def check_tags(node: yaml.Node, path: Path, seen: set[int]) -> None:
    """Refuse any YAML node whose tag is not a plain scalar, list or mapping (``!!binary``, ``!!python/...``)."""
    if id(node) in seen:  # an alias: checked already (walking it again could take exponential time)
        return
    seen.add(id(node))
    if node.tag not in PLAIN_TAGS:
        raise CheckpointError(f"'{path}' refused: line {node.start_mark.line + 1} has the YAML tag "
                              f"'{tag_name(node.tag)}'; {PLAIN}")
    children = node.value if isinstance(node, yaml.SequenceNode) else (
        [part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode) else [])
    for child in children:
        check_tags(child, path, seen)


def plain_yaml(path: Path) -> Any:
    """The YAML file at ``path`` as plain data, refusing any tag that would construct something else."""
    try:
        loader = yaml.SafeLoader(path.read_text())
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            check_tags(node, path, set())
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except (yaml.YAMLError, OSError, UnicodeDecodeError, RecursionError) as exc:
        raise CheckpointError(f"'{path}' is unreadable ({' '.join(str(exc).split())})") from exc


def check_plain(value: Any, where: str, source: str, seen: set[int]) -> None:
    """Refuse anything but plain data at ``where`` (bytes from ``!!binary``, tensors or tuples in a checkpoint).

    A list or mapping met twice (a YAML alias, a shared pickled object) is refused too: a tree of shared
    lists would take exponential time to walk, and a cycle forever.
    """
    if isinstance(value, (dict, list)):
        if id(value) in seen:
            raise CheckpointError(f"'{source}' refused: {where or '<root>'} is the same list or mapping as another "
                                  f"key (a YAML alias or a shared object); {PLAIN}, each written out")
        seen.add(id(value))
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, PLAIN_TYPES):
                raise CheckpointError(f"'{source}' refused: {where or '<root>'} has a {type(key).__name__} key; "
                                      f"{PLAIN}")
            check_plain(item, f"{where}.{key}" if where else str(key), source, seen)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]", source, seen)
    elif not isinstance(value, PLAIN_TYPES):
        raise CheckpointError(f"'{source}' refused: {where} holds a {type(value).__name__} value; {PLAIN}")


@functools.cache
def shipped_models() -> dict[str, str]:
    """How pdeop's own model configs (``pdeop/conf/model/*.yaml``) spell each model class -> where it is defined.

    Those files ship inside the package, so they are code rather than data, and the classes they name are the
    models a stored config may build. A user's config folder (``hydra.searchpath``) is not read: what a stored
    config may build is what pdeop ships. A shipped target that is not an ``nn.Module`` class is a packaging
    fault, raised as such.
    """
    from pdeop.conf import options, target

    models = {}
    for name in options("model"):
        spelling = target("model", name)
        try:
            cls = get_object(spelling)
        except Exception:
            cls = None
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            raise TypeError(f"pdeop/conf/model/{name}.yaml: _target_ {spelling!r} is not an nn.Module class")
        models[spelling] = defined_as(cls)
    return models


def allow_lists() -> dict[str, dict[str, str]]:
    """Each node a stored config is built from -> how its classes may be spelled -> where each is defined."""
    return {"model": shipped_models(), **TRUSTED}


def defined_as(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', '?')}"


def resolved_as(target: str) -> str:
    """Where the class ``target`` names is defined (``module.qualname``).

    A name that a pdeop package exports lazily (``pdeop.data``'s ``LAZY_EXPORTS``: its data modules, which
    import Lightning) and that is not imported yet resolves through that table, without importing it: a
    stored config's data module is checked on loading an operator but built only by evaluation.
    """
    module, _, name = target.rpartition(".")
    package = importlib.import_module(module)
    lazy = getattr(package, "LAZY_EXPORTS", None) if module.startswith("pdeop.") or module == "pdeop" else None
    if isinstance(lazy, dict) and name in lazy and name not in vars(package) and lazy[name] not in sys.modules:
        return f"{lazy[name]}.{name}"
    return defined_as(getattr(package, name, None))


def check_target(target: Any, kind: str, where: str, source: str) -> None:
    """``target`` must be spelled as a listed ``kind`` and resolve to the class it is listed as."""
    allowed = allow_lists()[kind]
    definitions = {**allowed, **{definition: definition for definition in allowed.values()}}
    if not isinstance(target, str) or target not in definitions:
        raise CheckpointError(f"'{source}' refused: {where} is {target!r}, not one of the {kind} classes a stored "
                              f"config may build (pdeop's model configs and the allow-list in "
                              f"pdeop/pretrained/trusted.py)")
    found = resolved_as(target)
    if found != definitions[target]:
        raise CheckpointError(f"'{source}' refused: {where} '{target}' resolves to '{found}', not to "
                              f"'{definitions[target]}' as the allow-list expects")


def loader_key(key: Any) -> bool:
    return isinstance(key, str) and bool(LOADER_WORDS & set(key.lower().split("_")))


def check_node(node: Any, kind: str, where: str, source: str) -> None:
    """Check every target, directive, key and string of a node that will be instantiated, at any depth."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            check_node(item, kind, f"{where}[{i}]", source)
    elif isinstance(node, str) and "${" in node:
        raise CheckpointError(f"'{source}' refused: {where} is an interpolation ({node!r}); a stored config is "
                              f"resolved and holds none")
    elif isinstance(node, dict):
        for key, value in node.items():
            inner = f"{where}.{key}"
            if key == "_target_":
                check_target(value, kind, inner, source)
            elif isinstance(key, str) and len(key) > 2 and key.startswith("_") and key.endswith("_"):
                if DIRECTIVES.get(where, {}).get(key, ...) != value:
                    raise CheckpointError(f"'{source}' refused: {inner}: a stored config carries no Hydra directive "
                                          f"but the optimiser's _partial_: true (it changes what Hydra calls)")
            elif loader_key(key) and key not in FILE_KEYS.get(where, ()):
                raise CheckpointError(f"'{source}' refused: {inner}: a stored {kind} config may not name files or "
                                      f"loader options (weights_only, paths, checkpoints, pretrained weights)")
            check_node(value, kind, inner, source)


def check_stored_config(config: Any, source: str) -> None:
    """Refuse a stored run config (``source`` names its file) unless building it can run only pdeop's listed code.

    Every path that builds from a stored config passes here first: ``load_pretrained`` (checkpoints,
    bundles, registered names), ``evaluate.py``, ``predict.py``, ``model.pretrained=`` and export.
    """
    if not isinstance(config, dict):
        raise CheckpointError(f"'{source}' refused: its config is a {type(config).__name__}, not a mapping")
    check_plain(config, "", source, set())
    for kind in allow_lists():
        if config.get(kind) is not None and not isinstance(config[kind], dict):
            raise CheckpointError(f"'{source}' refused: its {kind} node is a {type(config[kind]).__name__}, "
                                  f"not a mapping")
        check_node(config.get(kind), kind, kind, source)
