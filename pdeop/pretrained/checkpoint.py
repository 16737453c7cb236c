"""Read pdeop checkpoints without unpickling code, and load weights with one readable error.

Checkpoints are read with ``torch.load(weights_only=True)``: a file that needs arbitrary
unpickling (code inside) is refused rather than executed, and told apart from a file that is
no checkpoint at all or a truncated one. Each record is checked against its CRC-32 first, which
``torch.load`` skips, so weights altered on disk are refused rather than loaded. A pdeop checkpoint
carries its resolved run config (``pdeop_config``) and the normaliser statistics, which is all a
rebuild needs.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from pdeop.errors import PdeopError, first_line
from pdeop.io import refused_global


class CheckpointError(PdeopError):
    """A checkpoint or bundle that is missing, unsafe, tampered with, not pdeop's, or does not fit the model."""


ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since PyTorch 1.6
PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")  # torch.save's legacy format: a pickle
GZIP_MAGIC = b"\x1f\x8b"
# The types of the entries every reader of a pdeop checkpoint relies on, where the checkpoint has them.
ENTRY_TYPES = {"pdeop_config": dict, "state_dict": dict, "global_step": int, "epoch": int, "loops": dict,
               "optimizer_states": list, "lr_schedulers": list}


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


def check_zip_records(path: Path) -> None:
    """A zip checkpoint's records against the CRC-32 each was saved with, and its layout against ``torch.save``'s.

    ``torch.load`` checks no checksum: a file damaged in place (a disk error, a copy altered) would load with
    other weights than were saved, without a word. A record saved without a checksum (CRC 0) is not checked.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
            if not any(record.filename.endswith("/data.pkl") for record in records):
                raise CheckpointError(f"checkpoint '{path}' is a zip archive but not a PyTorch checkpoint (it has no "
                                      f"data.pkl record: an .npz or another zip file?)")
            for record in records:
                if record.CRC:
                    with archive.open(record) as stream:
                        while stream.read(1 << 24):
                            pass
    except CheckpointError:
        raise
    except OSError as exc:
        raise CheckpointError(f"checkpoint '{path}' cannot be read ({first_line(exc)})") from exc
    except Exception as exc:  # zipfile raises many types on damage (BadZipFile, RuntimeError, NotImplementedError ...)
        raise CheckpointError(f"checkpoint '{path}' is truncated or damaged ({first_line(exc)}); pdeop loads only "
                              f"the weights that were saved") from exc


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
                              f"legacy pickles), and this file starts with neither{gzip_hint(path)}")
    if kind == "zip":
        check_zip_records(path)
    checkpoint = read_weights_only(path, kind)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "pdeop_config" not in checkpoint:
        raise CheckpointError(f"checkpoint '{path}' is not a pdeop checkpoint (it has no state_dict and "
                              f"pdeop_config); train with train.py to make one")
    check_entries(checkpoint, path)
    return checkpoint


def gzip_hint(path: Path) -> str:
    """What to do with a gzip file given as a checkpoint: most likely an exported bundle's archive."""
    with open(path, "rb") as f:
        if f.read(2) != GZIP_MAGIC:
            return ""
    return (" (it is gzip-compressed: an exported bundle's .tar.gz? Unpack it with tar -xzf and pass the bundle's "
            "folder)")


def check_entries(checkpoint: dict, path: Path) -> None:
    """The entries readers rely on are of the types pdeop writes (``ENTRY_TYPES``), the weights all tensors; one
    line naming the entry for a checkpoint that was altered, instead of a traceback wherever it is first used."""
    for key, kind in ENTRY_TYPES.items():
        value = checkpoint.get(key, kind())
        if not isinstance(value, kind) or isinstance(value, bool):
            raise CheckpointError(f"checkpoint '{path}': its {key} is of type {type(value).__name__}, expected "
                                  f"{kind.__name__} as pdeop writes it")
    wrong = next(((key, value) for key, value in checkpoint["state_dict"].items()
                  if not isinstance(key, str) or not isinstance(value, torch.Tensor)), None)
    if wrong is not None:
        raise CheckpointError(f"checkpoint '{path}': its state_dict's {wrong[0]!r} is of type "
                              f"{type(wrong[1]).__name__}, expected a tensor named by a string")


def load_weights(module: nn.Module, state_dict: dict[str, torch.Tensor], source: str,
                 exclude: tuple[str, ...] = ()) -> None:
    """``load_state_dict`` with one message listing every missing, unexpected and mis-shaped key.

    Keys under an ``exclude`` prefix (``name`` or ``name.*``) are left as the module has them
    (fine-tuning with new input or output layers); every other key must match exactly.
    """
    def kept(key: str) -> bool:
        return not any(key == prefix or key.startswith(prefix + ".") for prefix in exclude)

    own_tensors = {k: v for k, v in module.state_dict().items() if isinstance(v, torch.Tensor) and kept(k)}
    given = {k: v for k, v in state_dict.items() if kept(k)}
    check_fit({k: v.shape for k, v in own_tensors.items()}, {k: v.shape for k, v in given.items()}, source)
    check_values(own_tensors, given, {name for name, _ in module.named_parameters()}, source)
    module.load_state_dict(given, strict=not exclude)


def number_kind(tensor: torch.Tensor) -> str:
    """What kind of number a tensor holds, as a message names it: complex, floating-point, boolean or integer."""
    if tensor.is_complex():
        return "complex"
    if tensor.is_floating_point():
        return "floating-point"
    return "boolean" if tensor.dtype == torch.bool else "integer"


def non_finite(state: dict[str, torch.Tensor], keys: set[str]) -> list[str]:
    """The tensors of ``keys`` in ``state`` holding NaN or Inf, in order."""
    return [k for k in sorted(keys & state.keys()) if not torch.isfinite(state[k]).all()]


def check_values(own: dict[str, torch.Tensor], given: dict[str, torch.Tensor], parameters: set[str],
                 source: str) -> None:
    """Stored tensors of the kind of number the model holds (``load_state_dict`` casts integers into weights and
    drops imaginary parts in silence), and trained parameters without NaN or Inf, which would make every
    prediction NaN."""
    kinds = [f"{k} ({given[k].dtype} vs model {own[k].dtype})" for k in sorted(own.keys() & given.keys())
             if number_kind(given[k]) != number_kind(own[k])]
    if kinds:
        raise CheckpointError(f"checkpoint '{source}' does not fit the model; other kinds of number: "
                              f"{', '.join(kinds[:8])}{' ...' if len(kinds) > 8 else ''}")
    broken = non_finite(given, parameters)
    if broken:
        raise CheckpointError(f"checkpoint '{source}': its weights hold NaN or Inf ({', '.join(broken[:8])}"
                              f"{' ...' if len(broken) > 8 else ''}); the run that wrote it diverged, or the file "
                              f"was altered")


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
