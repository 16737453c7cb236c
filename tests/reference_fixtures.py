"""Reading the reference-output fixtures (tests/fixtures/reference*/): a JSON description and its tensors."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file


def metadata(folder: Path, name: str) -> dict:
    return json.loads((folder / f"{name}.json").read_text())


def tensors(folder: Path, name: str) -> dict[str, torch.Tensor]:
    """The fixture's tensors; 8-bit entries times their ``scale/<key>`` (exact) in float64."""
    raw = load_file(folder / f"{name}.safetensors")
    values = {}
    for key, value in raw.items():
        if key.startswith("scale/"):
            continue
        scale = raw.get(f"scale/{key}")
        values[key] = value.double() * scale.double() if scale is not None else value
    return values
