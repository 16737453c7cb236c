"""Load pdeop checkpoints without unpickling code, and rebuild the trained module from the config inside.

Checkpoints are read with ``torch.load(weights_only=True)``: a file that needs arbitrary
unpickling (code inside) is refused rather than executed. A pdeop checkpoint carries its resolved
run config (``pdeop_config``) and the normaliser statistics, which is all a rebuild needs.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from pdeop.data.normalise import channel_normaliser
from pdeop.errors import PdeopError
from pdeop.training.operator_module import OperatorModule


class CheckpointError(PdeopError):
    """A checkpoint that is missing, unsafe, not pdeop's, or does not fit the model."""


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint's contents, loaded with ``weights_only=True``; one readable error for every failure."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"checkpoint '{path}' needs arbitrary unpickling to load (it contains code or objects, not "
            f"only tensors); pdeop loads weights only and refuses it") from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"checkpoint '{path}' is not a readable PyTorch checkpoint ({exc})") from exc
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "pdeop_config" not in checkpoint:
        raise CheckpointError(f"checkpoint '{path}' is not a pdeop checkpoint (it has no state_dict and "
                              f"pdeop_config); train with train.py to make one")
    return checkpoint


def load_weights(module: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict`` with one message listing every missing, unexpected and mis-shaped key."""
    own = {k: v for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)}  # not neuralop's _metadata
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = [f"{k} {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(state_dict)) if own[k].shape != state_dict[k].shape]
    if missing or unexpected or shapes:
        parts = [f"{label}: {', '.join(items[:8])}{' ...' if len(items) > 8 else ''}"
                 for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes))
                 if items]
        raise CheckpointError(f"checkpoint '{source}' does not fit the model; " + "; ".join(parts))
    module.load_state_dict(state_dict)


def module_from_checkpoint(path: str | Path) -> tuple[OperatorModule, dict]:
    """The trained ``OperatorModule`` (eval mode, CPU) and the run config it was trained with."""
    checkpoint = load_checkpoint(path)
    config = checkpoint["pdeop_config"]
    cfg = OmegaConf.create(config)
    state = checkpoint["state_dict"]
    module = OperatorModule(
        model=instantiate(cfg.model, _convert_="all"),
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optim),
        input_normaliser=channel_normaliser(state["input_normaliser.mean"], state["input_normaliser.std"]),
        output_normaliser=channel_normaliser(state["output_normaliser.mean"], state["output_normaliser.std"]),
        config=config,
    )
    load_weights(module, state, str(path))
    return module.eval(), config
