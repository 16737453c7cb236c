"""Read pdeop checkpoints without unpickling code, and load weights with one readable error.

Checkpoints are read with ``torch.load(weights_only=True)``: a file that needs arbitrary
unpickling (code inside) is refused rather than executed, and told apart from a file that is
no checkpoint at all or a truncated one. A pdeop checkpoint carries its resolved
run config (``pdeop_config``) and the normaliser statistics, which is all a rebuild needs.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from pdeop.errors import PdeopError, first_line
from pdeop.io import refused_global


class CheckpointError(PdeopError):
    """A checkpoint or bundle that is missing, unsafe, tampered with, not pdeop's, or does not fit the model."""


ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since PyTorch 1.6
PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")  # torch.save's legacy format: a pickle


def checkpoint_format(path: Path) -> str | None:
    """``"zip"`` or ``"pickle"`` by the file's first bytes, None for anything else (text, random bytes, empty)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise CheckpointError(f"checkpoint '{path}' cannot be read ({exc.strerror or exc})") from exc
    if head == ZIP_MAGIC:
        return "zip"
    return "pickle" if head[:2] in PICKLE_MAGIC else None


def read_weights_only(path: Path, kind: str) -> object:
    """``torch.load(weights_only=True)`` of a zip or pickle file; one line for code inside, another for damage."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        name = refused_global(exc)
        if name is None:
            raise CheckpointError(f"checkpoint '{path}' is not a PyTorch checkpoint pdeop can read (a {kind} file "
                                  f"that weights-only loading refuses: not written by torch.save, or damaged)") from exc
        raise CheckpointError(
            f"checkpoint '{path}' needs arbitrary unpickling to load (it names the Python global '{name}': code or "
            f"objects, not only tensors); pdeop loads weights only and refuses it") from exc
    except Exception as exc:  # torch.load's parsers raise many types (RuntimeError, EOFError, KeyError ...) on damage
        raise CheckpointError(f"checkpoint '{path}' is truncated or damaged (its {kind} cannot be read: "
                              f"{first_line(exc).split('. ')[0]})") from exc


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint's contents, loaded with ``weights_only=True``; one readable error for every failure.

    A file that is not a PyTorch checkpoint at all (text, random bytes), a truncated or damaged one, and one
    that holds code are told apart, each in one line naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    kind = checkpoint_format(path)
    if kind is None:
        raise CheckpointError(f"checkpoint '{path}' is not a checkpoint: PyTorch checkpoints are zip archives (or "
                              f"legacy pickles), and this file starts with neither")
    checkpoint = read_weights_only(path, kind)
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

    own = {k: v.shape for k, v in module.state_dict().items() if isinstance(v, torch.Tensor) and kept(k)}
    given = {k: v for k, v in state_dict.items() if kept(k)}
    check_fit(own, {k: v.shape for k, v in given.items()}, source)
    module.load_state_dict(given, strict=not exclude)


def check_fit(own: dict[str, torch.Size], given: dict[str, torch.Size], source: str) -> None:
    """One message listing every missing, unexpected and mis-shaped key of ``given`` against the model's ``own``."""
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    shapes = [f"{k} {tuple(given[k])} vs model {tuple(own[k])}" for k in sorted(set(own) & set(given))
              if own[k] != given[k]]
    if missing or unexpected or shapes:
        parts = [f"{label}: {', '.join(items[:8])}{' ...' if len(items) > 8 else ''}"
                 for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes))
                 if items]
        raise CheckpointError(f"checkpoint '{source}' does not fit the model; " + "; ".join(parts))
