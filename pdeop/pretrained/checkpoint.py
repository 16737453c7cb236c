"""Read pdeop checkpoints without unpickling code, and load weights with one readable error.

Checkpoints are read with ``torch.load(weights_only=True)``: a file that needs arbitrary
unpickling (code inside) is refused rather than executed. A pdeop checkpoint carries its resolved
run config (``pdeop_config``) and the normaliser statistics, which is all a rebuild needs.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from pdeop.errors import PdeopError


class CheckpointError(PdeopError):
    """A checkpoint or bundle that is missing, unsafe, tampered with, not pdeop's, or does not fit the model."""


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


def load_weights(module: nn.Module, state_dict: dict[str, torch.Tensor], source: str,
                 exclude: tuple[str, ...] = ()) -> None:
    """``load_state_dict`` with one message listing every missing, unexpected and mis-shaped key.

    Keys under an ``exclude`` prefix (``name`` or ``name.*``) are left as the module has them
    (fine-tuning with new input or output layers); every other key must match exactly.
    """
    def kept(key: str) -> bool:
        return not any(key == prefix or key.startswith(prefix + ".") for prefix in exclude)

    own = {k: v for k, v in module.state_dict().items() if isinstance(v, torch.Tensor) and kept(k)}  # not _metadata
    given = {k: v for k, v in state_dict.items() if kept(k)}
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    shapes = [f"{k} {tuple(given[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(given)) if own[k].shape != given[k].shape]
    if missing or unexpected or shapes:
        parts = [f"{label}: {', '.join(items[:8])}{' ...' if len(items) > 8 else ''}"
                 for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes))
                 if items]
        raise CheckpointError(f"checkpoint '{source}' does not fit the model; " + "; ".join(parts))
    module.load_state_dict(given, strict=not exclude)
