"""Exported bundles: a directory that holds a trained model without any pickled Python.

Layout (docs/pretrained.md)::

    config.yaml              the run config (model, data, loss, optimiser, ...)
    model.safetensors        the network's weights (its state dict)
    normaliser.safetensors   input and output normaliser statistics
    README.md                the model card: data, command, test error
    SHA256SUMS               the SHA-256 of each file above, in `sha256sum` format

A bundle's digest is the SHA-256 of its ``SHA256SUMS``, so it covers every file: the registry
records it, and a bundle whose files or digest differ from what was recorded is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from pdeop.inference import TrainedOperator
from pdeop.io import UMASK, file_sha256
from pdeop.pretrained.build import constructor_config, normaliser_state, trained_operator
from pdeop.pretrained.checkpoint import CheckpointError
from pdeop.pretrained.trusted import plain_yaml

FILES = ("config.yaml", "model.safetensors", "normaliser.safetensors", "README.md")
MANIFEST = "SHA256SUMS"
FORMAT = {"format": "pt", "pdeop_bundle": "1"}


def manifest_text(directory: Path) -> str:
    return "".join(f"{file_sha256(directory / name)}  {name}\n" for name in FILES)


def bundle_digest(directory: str | Path) -> str:
    """The bundle's digest: SHA-256 of its ``SHA256SUMS`` file."""
    return hashlib.sha256((Path(directory) / MANIFEST).read_bytes()).hexdigest()


SUMS_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")


def manifest_of(directory: Path) -> str:
    """The text of the bundle's ``SHA256SUMS``, refused in one line where it is not UTF-8."""
    try:
        return (directory / MANIFEST).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"bundle '{directory}' refused: {MANIFEST} is not UTF-8 text (byte {exc.start}); "
                              f"expected lines '<sha256>  <name>', as sha256sum writes") from exc


def listed_sums(directory: Path, recorded: str) -> dict[str, str]:
    """File name -> SHA-256 as ``SHA256SUMS`` lists them; a line not in ``sha256sum``'s format is refused."""
    listed = {}
    for number, line in enumerate(recorded.splitlines(), 1):
        if not line.strip():
            continue
        match = SUMS_LINE.fullmatch(line)
        if match is None:
            raise CheckpointError(f"bundle '{directory}' refused: {MANIFEST} line {number} is {line[:80]!r}, "
                                  f"expected '<sha256>  <name>' (64 hex digits, two spaces, a file name)")
        listed[match.group(2)] = match.group(1).lower()
    return listed


def verify_bundle(directory: str | Path, expected_digest: str | None = None) -> str:
    """Check every file against ``SHA256SUMS`` (and the digest against ``expected_digest``); returns the digest."""
    directory = Path(directory)
    absent = [name for name in (*FILES, MANIFEST) if not (directory / name).is_file()]
    if absent:
        raise CheckpointError(f"'{directory}' is not a pdeop bundle: {', '.join(absent)} missing "
                              f"(a bundle holds {', '.join((*FILES, MANIFEST))}; "
                              "write one with python -m pdeop.export)")
    recorded = manifest_of(directory)
    if recorded != manifest_text(directory):
        listed = listed_sums(directory, recorded)
        changed = [name for name in FILES if listed.get(name) != file_sha256(directory / name)]
        raise CheckpointError(f"bundle '{directory}' refused: {', '.join(changed) or MANIFEST} "
                              f"{'does' if len(changed) == 1 else 'do'} not match {MANIFEST} (changed after export)")
    digest = bundle_digest(directory)
    if expected_digest is not None and digest != expected_digest:
        raise CheckpointError(f"bundle '{directory}' refused: its digest is {digest}, the registry expects "
                              f"{expected_digest}")
    return digest


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] = FORMAT) -> None:
    """``safetensors.torch.save_file``, but the same bytes for the same tensors on every call: safetensors writes
    the header's ``__metadata__`` in the order of a Rust ``HashMap``, which changes from call to call (safetensors
    issue #584), so the header is written again with the metadata's keys sorted (the tensors as safetensors
    ordered them, the padding to 8 bytes as it pads)."""
    data = save(tensors, metadata=metadata)
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + size:])


def model_tensors(module: TrainedOperator) -> dict[str, torch.Tensor]:
    """The network's weights, each its own contiguous tensor (safetensors refuses shared storage)."""
    return {name: value.detach().cpu().contiguous().clone() for name, value in module.model.state_dict().items()
            if isinstance(value, torch.Tensor)}  # not neuraloperator's `_metadata` entry


def portable_config(config: dict) -> dict:
    """``config`` without this machine's paths: the ``paths`` node and ``ckpt_path`` dropped, and every value
    inside the run folder or the data folder (checkpoint and logger folders, ``data.data_dir``) written
    relative to ``<run>`` or ``<data>``; evaluation points ``data_dir`` at its own data folder."""
    roots = {name: str(Path(folder)) for name, folder in (config.get("paths") or {}).items()
             if isinstance(folder, str) and Path(folder).is_absolute()}
    placeholders = [(roots[key], mark) for key, mark in (("output_dir", "<run>"), ("data_dir", "<data>"))
                    if key in roots]

    def portable(value):
        if isinstance(value, dict):
            return {k: portable(v) for k, v in value.items()}
        if isinstance(value, list):
            return [portable(v) for v in value]
        if isinstance(value, str):
            for root, mark in placeholders:
                if value == root or value.startswith(root + "/"):
                    return mark + value[len(root):]
        return value

    return portable({k: v for k, v in config.items() if k not in ("paths", "ckpt_path")})


def write_bundle(module: TrainedOperator, out: str | Path, card: str, overwrite: bool = False,
                 assembled: Callable[[Path], object] | None = None) -> str:
    """Write ``module`` (with its ``config``) as a bundle directory at ``out``; returns the digest.

    The directory is assembled beside ``out`` and renamed into place, so an interrupted export
    leaves nothing half-written. ``assembled`` is called with the assembled directory just before
    (the export's archive of it).
    """
    out = Path(out)
    if out.exists() or out.is_symlink():
        replaceable(out, overwrite)
    config = portable_config(module.config)
    config["model"] = constructor_config(config["model"])
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (staging / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        save_tensors(model_tensors(module), staging / "model.safetensors")
        stats = {k: v.detach().cpu().contiguous().clone()
                 for k, v in normaliser_state(module.state_dict(), str(out)).items()}
        save_tensors(stats, staging / "normaliser.safetensors")
        (staging / "README.md").write_text(card)
        (staging / MANIFEST).write_text(manifest_text(staging))
        for path in (staging, *staging.iterdir()):  # mkdtemp's 0700 would hide a shared cache from the group
            path.chmod((0o777 if path.is_dir() else 0o666) & ~UMASK)
        if assembled is not None:
            assembled(staging)
        previous = Path(tempfile.mkdtemp(prefix=f".{out.name}.previous.", dir=out.parent))
        try:
            if out.exists():
                os.replace(out, previous / out.name)  # set aside, so that out is one whole bundle or absent
            try:
                os.replace(staging, out)
            except BaseException:  # an error or a stop between the renames: the old bundle goes back
                if (previous / out.name).exists() and not out.exists():
                    os.replace(previous / out.name, out)
                raise
        finally:
            shutil.rmtree(previous, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return bundle_digest(out)


def replaceable(out: Path, overwrite: bool) -> None:
    """Refuse to replace ``out`` unless it is an empty folder, or ``overwrite`` is set and it is a bundle directory
    (only a bundle's files)."""
    if out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
        return
    if not overwrite:
        raise CheckpointError(f"out: '{out}' already exists; choose another directory or pass overwrite=true")
    if out.is_symlink() or not out.is_dir():
        raise CheckpointError(f"out: '{out}' is not a directory; overwrite=true replaces only a pdeop bundle")
    foreign = sorted(path.name for path in out.iterdir() if path.name not in (*FILES, MANIFEST) or path.is_dir())
    if foreign or not (out / MANIFEST).is_file():
        held = f"it holds {', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}" if foreign else \
            f"it has no {MANIFEST}"
        raise CheckpointError(f"out: '{out}' is not a pdeop bundle ({held}); overwrite=true replaces only a bundle, "
                              f"choose another directory")


def read_bundle(directory: str | Path, expected_digest: str | None = None) -> TrainedOperator:
    """The trained operator stored in a bundle directory, after checking its files (and digest)."""
    directory = Path(directory)
    verify_bundle(directory, expected_digest)
    config = plain_yaml(directory / "config.yaml")
    try:
        weights = load_file(directory / "model.safetensors")
        stats = load_file(directory / "normaliser.safetensors")
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"bundle '{directory}' is unreadable ({exc})") from exc
    if not isinstance(config, dict) or "model" not in config:
        raise CheckpointError(f"bundle '{directory}': config.yaml has no model node")
    state = {f"model.{name}": value for name, value in weights.items()} | stats
    return trained_operator(config, state, str(directory))
