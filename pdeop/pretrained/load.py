"""``load_pretrained``: a ready model from a Lightning checkpoint, an exported bundle or a registered name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from pdeop.inference import TrainedOperator
from pdeop.io import file_sha256
from pdeop.pretrained.build import is_physics_run, trained_operator
from pdeop.pretrained.bundle import read_bundle, verify_bundle
from pdeop.pretrained.checkpoint import CheckpointError, load_checkpoint
from pdeop.pretrained.foreign import foreign_format
from pdeop.pretrained.registry import fetch, registry
from pdeop.pretrained.trusted import check_stored_config


@dataclass(frozen=True)
class Source:
    """Where a reference led: a checkpoint file or a bundle directory, with its SHA-256 (the bundle digest)."""

    ref: str
    kind: str
    path: Path
    sha256: str


def resolve(ref: str | Path) -> Source:
    """Find what ``ref`` names: an existing file is a checkpoint, a directory a bundle, anything else a registered
    name."""
    path = Path(ref)
    if path.is_file():
        return Source(str(ref), "checkpoint", path, file_sha256(path))
    foreign = foreign_format(path)
    if foreign is not None:
        raise CheckpointError(f"'{ref}' is a {foreign.name} checkpoint (the network's weights, without normalisers or "
                              f"a pdeop config); fine-tune it with model={foreign.choice} model.pretrained={ref}")
    if path.is_dir():
        return Source(str(ref), "bundle", path, verify_bundle(path))
    entries = registry()
    if str(ref) in entries:
        entry = entries[str(ref)]
        return Source(str(ref), "bundle", fetch(entry), entry.sha256)
    raise CheckpointError(f"pretrained model '{ref}' is neither a checkpoint file, a bundle directory nor a registered "
                          f"name (registered: {', '.join(sorted(entries)) or 'none'})")


def load_source(source: Source) -> TrainedOperator:
    if source.kind == "checkpoint":
        checkpoint = load_checkpoint(source.path)
        return trained_operator(checkpoint["pdeop_config"], checkpoint["state_dict"], str(source.path))
    return read_bundle(source.path, source.sha256)


def pretrained_weights(ref: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """The stored run config and the network's weights (keys without ``model.``) of what ``ref`` names, for
    fine-tuning: ``load_pretrained``'s sources, and also the checkpoint of a physics-informed run, whose network is
    one solution (PIG's rotated Gaussians start from a diagonal run's). Every stored config passes the gate of
    ``trusted.check_stored_config``."""
    source = resolve(ref)
    if source.kind == "checkpoint":
        checkpoint = load_checkpoint(source.path)
        config, state = checkpoint["pdeop_config"], checkpoint["state_dict"]
        if is_physics_run(config):
            check_stored_config(config, str(source.path))
            if not isinstance(config.get("model"), dict) or "_target_" not in config["model"]:
                raise CheckpointError(f"'{source.path}': its config has no model node naming its model (_target_)")
            return config, {key[len("model."):]: value for key, value in state.items() if key.startswith("model.")}
        operator = trained_operator(config, state, str(source.path))
    else:
        operator = read_bundle(source.path, source.sha256)
    return operator.config, {k: v for k, v in operator.model.state_dict().items() if isinstance(v, torch.Tensor)}


def load_pretrained(ref: str | Path) -> TrainedOperator:
    """The trained operator ``ref`` names, in eval mode on the CPU, mapping physical inputs to physical outputs.

    A ``pdeop.inference.TrainedOperator``, a plain ``nn.Module`` (no Lightning is imported): the network
    (``.model``), its normalisers, a rollout task's ``.rollout`` and the run config (``.config``);
    call it, or ``.predict(x)`` for the task's whole prediction (a rollout's horizon).
    ``ref`` is a pdeop checkpoint (``.ckpt``), a bundle directory (``python -m pdeop.export``) or
    a name in the registry (``pdeop.pretrained.registry``), fetched once into the cache.
    """
    return load_source(resolve(ref))
