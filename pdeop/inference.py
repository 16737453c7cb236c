"""The trained operator as a plain ``nn.Module``: normalise the input, apply the network, de-normalise.

``TrainedOperator`` is what a trained run is for inference, with no Lightning, loss or optimiser:
the network (``model``), the input and output normalisers and, for a model trained on trajectories,
the rollout task (``data.tasks.Window``) that feeds its predictions back over the horizon.
``pdeop.load_pretrained`` returns one, evaluation and prediction take one, and the training
module (``training.operator_module.OperatorModule``) is one as well, so checkpoints, bundles and
resumed runs share the state-dict keys ``model.*``, ``input_normaliser.*`` and ``output_normaliser.*``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class TrainedOperator(nn.Module):
    """Physical inputs ``[batch, channels, *grid]`` (and lead times, for time-conditioned models) to physical outputs.

    ``config`` is the resolved run config the operator was trained with (how to build it again);
    ``rollout`` a task with ``rollout(predict, x)`` for autoregressive models, else None.
    """

    def __init__(self, model: nn.Module, input_normaliser: nn.Module, output_normaliser: nn.Module,
                 rollout: Any | None = None, config: dict | None = None):
        super().__init__()
        self.model = model
        self.input_normaliser = input_normaliser
        self.output_normaliser = output_normaliser
        self.rollout = rollout
        self.config = config

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """Map physical inputs (and, for time-conditioned models, lead times ``t``) to physical outputs."""
        normalised = self.input_normaliser.transform(x)
        out = self.model(normalised) if t is None else self.model(normalised, t)
        return self.output_normaliser.inverse_transform(out)

    def predict(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """The task's prediction: one call of the model, or a rollout task's whole autoregressive horizon."""
        return self(x, t) if self.rollout is None else self.rollout.rollout(self, x)

    @staticmethod
    def unpack(batch) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """``(x, y)`` or ``(x, lead time, y)`` -> x, t (or None), y."""
        return batch[0], (batch[1] if len(batch) == 3 else None), batch[-1]
