"""Fine-tuning: start a run's network from a pretrained model's weights, and freeze parts of it.

``model.pretrained=<ref>`` (a checkpoint, bundle or registered name) loads the weights into the
network the run's model config builds, which must be the same model with the same shapes;
``model.pretrained_exclude=[prefix, ...]`` keeps those parameters freshly initialised (new input
or output layers); ``model.freeze=[prefix, ...]`` stops training the parameters under those name
prefixes (for example ``[lifting, fno_blocks.convs]``). Another project's published checkpoint (a
Poseidon directory for ``model=scot``) loads through its format's hook in ``pdeop.pretrained.foreign``,
which compares its architecture with the run's model config. The run's own data module fits the normalisers, so a
model fine-tuned on new data sees that data normalised as its pretraining data was. A pretrained
model loads through ``load_pretrained``, so its stored config passes the gate of
``pdeop.pretrained.trusted`` before anything of it is built.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from pdeop.errors import ConfigError
from pdeop.pretrained import load_weights, pretrained_weights
from pdeop.pretrained.build import model_from_config
from pdeop.pretrained.foreign import foreign_format

log = logging.getLogger(__name__)


def freeze(model: nn.Module, prefixes: list[str]) -> int:
    """Stop gradients for parameters named ``prefix`` or ``prefix.*``; returns how many values were frozen."""
    names = [name for name, _ in model.named_parameters()]
    frozen = 0
    for prefix in prefixes:
        chosen = [p for name, p in model.named_parameters() if name == prefix or name.startswith(prefix + ".")]
        if not chosen:
            top = sorted({name.split(".")[0] for name in names})
            raise ConfigError(f"model.freeze: no parameter is named '{prefix}' or starts with '{prefix}.'; the model's "
                              f"parts are {', '.join(top)} (e.g. {names[0]})")
        for parameter in chosen:
            if parameter.requires_grad:
                parameter.requires_grad_(False)
                frozen += parameter.numel()
    return frozen


def build_model(model_config: dict) -> nn.Module:
    """The network of a run's ``model`` config: fresh, or from ``pretrained`` weights, with ``freeze`` applied."""
    ref = model_config.get("pretrained")
    exclude = tuple(model_config.get("pretrained_exclude") or ())
    foreign = foreign_format(Path(ref)) if ref else None
    if not ref:
        model = model_from_config(model_config)
    elif foreign is not None:
        model = foreign.model(model_config, Path(ref))
        log.info("model weights from the %s checkpoint %s%s", foreign.name, ref,
                 f" except {', '.join(exclude)}" * bool(exclude))
    else:
        trained_config, weights = pretrained_weights(ref)
        trained_target = trained_config["model"]["_target_"]
        if trained_target != model_config["_target_"]:
            raise ConfigError(f"model.pretrained: '{ref}' is a {trained_target}, but this run's model is "
                              f"{model_config['_target_']}; choose the matching model=...")
        model = model_from_config(model_config)
        load_weights(model, weights, str(ref), exclude)
        log.info("model weights from %s", ref)
    frozen = freeze(model, list(model_config.get("freeze") or []))
    if frozen:
        total = sum(p.numel() for p in model.parameters())
        log.info("froze %d of %d parameter values (%s)", frozen, total, ", ".join(model_config["freeze"]))
    return model
