"""Other projects' published checkpoints as starting points for fine-tuning: one loader hook per model family.

A foreign checkpoint holds a network's weights only (no normalisers, no pdeop config), so it is what
``model.pretrained=<it>`` starts a run's network from, never a ready model for ``load_pretrained``. Each
format is a ``ForeignFormat``: how to recognise it, which model it fits, and the hook that checks the
checkpoint against the run's model config and loads its weights strictly. Fine-tuning
(``training.finetune``) and ``load_pretrained`` know nothing of any one format; a new one is a module
beside ``poseidon.py`` and an entry in ``FORMATS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn

from pdeop.errors import ConfigError
from pdeop.models.scot import ScOT
from pdeop.pretrained.build import constructor_config, model_from_config
from pdeop.pretrained.poseidon import is_poseidon_checkpoint, load_poseidon


@dataclass(frozen=True)
class ForeignFormat:
    """A published checkpoint format of one model family.

    ``load(model, model_config, path, exclude)`` checks the checkpoint at ``path`` against the run's
    ``model_config`` (constructor arguments) and loads its weights into ``model``, all but the ``exclude``
    prefixes, strictly.
    """

    name: str  # the project, in messages: "Poseidon"
    network: str  # its network: "scOT"
    choice: str  # the model config that builds it: model=scot
    model_class: type[nn.Module]
    recognises: Callable[[Path], bool]
    load: Callable[[nn.Module, dict, Path, tuple[str, ...]], None]

    def model(self, model_config: dict, path: Path) -> nn.Module:
        """The run's network with the checkpoint's weights (all but ``model.pretrained_exclude``)."""
        model = model_from_config(model_config)
        if not isinstance(model, self.model_class):
            raise ConfigError(f"model.pretrained: '{path}' is a {self.name} ({self.network}) checkpoint; "
                              f"choose model={self.choice}")
        self.load(model, constructor_config(model_config), path, tuple(model_config.get("pretrained_exclude") or ()))
        return model


FORMATS = (
    ForeignFormat("Poseidon", "scOT", "scot", ScOT, is_poseidon_checkpoint, load_poseidon),
)


def foreign_format(path: Path) -> ForeignFormat | None:
    """The foreign format of the checkpoint at ``path``, or None for anything else (pdeop's own, or nothing)."""
    return next((form for form in FORMATS if form.recognises(path)), None)
