"""Poseidon's published checkpoints into pdeop's ScOT (Herde et al., NeurIPS 2024; camlab-ethz/poseidon).

A Poseidon checkpoint is a Hugging Face directory: ``config.json`` (a ``ScOTConfig``,
``model_type`` "swinv2") and ``model.safetensors`` whose keys are the module paths of
``scOT/model.py`` without a prefix, which ``pdeop.models.scot.ScOT`` reproduces. It holds the
network only: no normalisers and no pdeop config, so it is a starting point for fine-tuning
(``model=scot model.pretrained=<dir>``), not a ready model: its loader hook is ``load_poseidon``, listed in
``pdeop.pretrained.foreign``.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from pdeop.models.scot import ScOT
from pdeop.pretrained.bundle import MANIFEST
from pdeop.pretrained.checkpoint import CheckpointError, load_weights

# config.json field -> ScOT constructor argument: what the weights' shapes or their computation depend on
# (channel counts are left to the key-by-key shape check, since fine-tuning may replace those layers).
ARCHITECTURE = {
    "patch_size": "patch_size",
    "embed_dim": "embed_dim", "depths": "depths", "num_heads": "num_heads", "skip_connections": "skip_connections",
    "window_size": "window_size", "mlp_ratio": "mlp_ratio", "qkv_bias": "qkv_bias",
    "use_conditioning": "use_conditioning", "learn_residual": "learn_residual", "layer_norm_eps": "layer_norm_eps",
}
# What the reference's ScOTConfig assumes when config.json leaves a field out (only non-defaults are written).
REFERENCE_DEFAULTS = {"num_channels": 3, "num_out_channels": 1, "patch_size": 4, "embed_dim": 96,
                      "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24], "skip_connections": [True, True, True],
                      "window_size": 7, "mlp_ratio": 4.0, "qkv_bias": True, "use_conditioning": False,
                      "learn_residual": False, "layer_norm_eps": 1e-5, "residual_model": "convnext",
                      "use_absolute_embeddings": False, "image_size": 224}


def is_poseidon_checkpoint(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file() and not (path / MANIFEST).exists()


def read_config_json(directory: Path) -> dict:
    """``config.json`` as a JSON object, refused in one line naming the file where it is not one."""
    path = directory / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CheckpointError(f"Poseidon checkpoint '{directory}': config.json is unreadable ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"Poseidon checkpoint '{directory}': config.json is not UTF-8 text (byte {exc.start}); "
                              f"expected a JSON object") from exc
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"Poseidon checkpoint '{directory}': config.json is not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise CheckpointError(f"Poseidon checkpoint '{directory}': config.json is nested too deeply to read; "
                              f"expected a JSON object") from exc
    if not isinstance(config, dict):
        raise CheckpointError(f"Poseidon checkpoint '{directory}': config.json holds a JSON {type(config).__name__}, "
                              f"expected an object of ScOTConfig fields")
    return config


def check_field_types(directory: Path, config: dict) -> None:
    """The fields ``poseidon_config`` computes with must have their ScOTConfig types; a wrong one is named."""
    expected = {"residual_model": (str, "a string"), "use_absolute_embeddings": (bool, "true or false"),
                "use_conditioning": (bool, "true or false"), "learn_residual": (bool, "true or false")}
    for key, (kind, spelled) in expected.items():
        if not isinstance(config[key], kind):
            raise CheckpointError(f"Poseidon checkpoint '{directory}': config.json key {key} is {config[key]!r}, "
                                  f"expected {spelled}")
    skips = config["skip_connections"]
    if not isinstance(skips, list) or not all(isinstance(v, int) and v >= 0 for v in skips):
        raise CheckpointError(f"Poseidon checkpoint '{directory}': config.json key skip_connections is {skips!r}, "
                              f"expected a list of block counts (integers >= 0), one per skip level")


def poseidon_config(directory: Path) -> dict:
    """``config.json`` with the reference's defaults filled in; refuses what pdeop's ScOT does not build."""
    config = {**REFERENCE_DEFAULTS, **read_config_json(directory)}
    check_field_types(directory, config)
    if config["residual_model"] != "convnext":
        raise CheckpointError(f"Poseidon checkpoint '{directory}': residual_model {config['residual_model']!r}; "
                              f"pdeop's ScOT builds the ConvNeXt skip blocks only")
    if config["use_absolute_embeddings"]:
        raise CheckpointError(f"Poseidon checkpoint '{directory}': use_absolute_embeddings is true; pdeop's ScOT "
                              f"has no absolute position embeddings (Poseidon's models do not use them)")
    config["skip_connections"] = [int(v) for v in config["skip_connections"]]
    config["learn_residual"] = bool(config["learn_residual"] and config["use_conditioning"])
    return config


def check_architecture(directory: Path, config: dict, model_config: dict) -> None:
    """The run's model config must describe the checkpoint's architecture; differences are named."""
    defaults = {name: p.default for name, p in inspect.signature(ScOT).parameters.items()}
    differences = []
    for field, argument in ARCHITECTURE.items():
        have, want = model_config.get(argument, defaults.get(argument)), config[field]
        if isinstance(have, tuple):
            have = list(have)
        if have != want:
            differences.append(f"model.{argument}={have!r} (checkpoint {field}: {want!r})")
    if differences:
        raise CheckpointError(f"Poseidon checkpoint '{directory}' is another architecture than the run's model: "
                              f"{'; '.join(differences[:8])}; set these in the model config (e.g. "
                              f"model.{differences[0].split('=')[0].split('.', 1)[1]}=...)")


def poseidon_weights(directory: Path) -> dict[str, torch.Tensor]:
    path = directory / "model.safetensors"
    if not path.is_file():
        raise CheckpointError(f"Poseidon checkpoint '{directory}' has no model.safetensors (a pytorch_model.bin "
                              f"would need unpickling; convert it to safetensors where it was made)")
    try:
        return load_file(path)
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"Poseidon checkpoint '{path}' is unreadable ({exc})") from exc


def load_poseidon(model: ScOT, model_config: dict, directory: Path, exclude: tuple[str, ...] = ()) -> None:
    """The Poseidon checkpoint ``directory`` into ``model`` (all but ``exclude``), after comparing its
    architecture with the run's ``model_config``; every other key must match by name and shape."""
    check_architecture(directory, poseidon_config(directory), model_config)
    load_weights(model, poseidon_weights(directory), str(directory), exclude)
