"""The trained operator as a plain ``nn.Module``: normalise the input, apply the network, de-normalise.

``TrainedOperator`` is what a trained run is for inference, with no Lightning, loss or optimiser:
the network (``model``), the input and output normalisers and, for a model trained on trajectories,
the rollout task (``data.tasks.Window``) that feeds its predictions back over the horizon.
``pdeop.load_pretrained`` returns one, evaluation and prediction take one, and the training
module (``training.operator_module.OperatorModule``) is one as well, so checkpoints, bundles and
resumed runs share the state-dict keys ``model.*``, ``input_normaliser.*`` and ``output_normaliser.*``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch import nn

from pdeop.errors import ConfigError, PdeopError, first_line


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


def grid_dims(network: nn.Module) -> int | None:
    """How many spatial axes ``network``'s fields have: pdeop's grid models say (``spatial_dims``), neuraloperator's
    by ``n_dim``; None when it does not say."""
    return getattr(network, "spatial_dims", None) or getattr(network, "n_dim", None)


@contextmanager
def taking_inputs(network: nn.Module, shape: tuple[int, ...], data: str = "the data") -> Iterator[None]:
    """Within the block, the error of ``network`` given inputs it cannot take (another number of dimensions or
    channels) is one ``ConfigError`` naming the network and the inputs' shape, not the library's traceback.

    Fields with another number of spatial axes than the network's (``grid_dims``) are refused before it runs: a 2-D
    convolution takes a batch of 1-D fields for one unbatched image, and would fail later, or not at all."""
    dims = grid_dims(network)
    if dims is not None and len(shape) - 2 != dims:
        grid = "x".join(map(str, shape[2:]))
        raise ConfigError(f"model: {type(network).__name__} takes {dims}-D fields and the inputs of {data} are "
                          f"{len(shape) - 2}-D, shaped {list(shape)} (batch, {shape[1]} channels, grid {grid}); "
                          f"choose a model for {len(shape) - 2}-D fields"
                          f"{' (model=fno_1d)' if len(shape) == 3 else ''}")
    try:
        yield
    except (PdeopError, torch.OutOfMemoryError):
        raise
    except (RuntimeError, AssertionError, ValueError, IndexError, TypeError) as exc:
        reason = first_line(exc)
        if "allocate" in reason:  # out of host memory (not torch.OutOfMemoryError on a CPU): not the inputs' fault
            raise
        grid = "x".join(map(str, shape[2:]))
        raise ConfigError(f"model: {type(network).__name__} cannot take the inputs of {data}, shaped {list(shape)} "
                          f"(batch, {shape[1]} channels, a {len(shape) - 2}-D grid {grid}): {reason}; choose a "
                          f"model and data of the same dimension and channels") from exc


def check_takes(operator: TrainedOperator, inputs: torch.Tensor, lead_times: torch.Tensor | None = None,
                data: str = "the data") -> None:
    """Run ``operator`` once on the first two samples of ``inputs`` (eval mode, no gradients; two, because a batch
    of one can pass where its axes are mistaken for others), refusing in one line the data it cannot take."""
    with torch.no_grad(), taking_inputs(operator.model, tuple(inputs.shape), data):
        operator.predict(inputs[:2], None if lead_times is None else lead_times[:2])
