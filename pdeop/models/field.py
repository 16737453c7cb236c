"""The base of the pointwise solution models: u(x) on a box, differentiated by autograd (PINN, PIG)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pdeop.errors import ConfigError
from pdeop.problems.residual import Derivatives, Order, autograd_derivatives, mesh_points


class FieldModel(nn.Module):
    """A scalar field u(x) on the box ``domain`` (per axis ``[low, high]``), evaluated at points ``[n, d]``.

    Subclasses see the coordinates mapped onto ``[-1, 1]^d`` (``scaled``), so that their
    initialisations do not depend on where the problem's box lies.
    """

    def __init__(self, domain: Sequence[Sequence[float]]):
        super().__init__()
        box = torch.tensor([[float(v) for v in pair] for pair in domain], dtype=torch.float64)
        if box.ndim != 2 or box.shape[1] != 2 or not bool((box[:, 0] < box[:, 1]).all()):
            raise ConfigError(f"model.domain: expected one [low, high] pair with low < high per axis, got {domain}")
        self.dim = box.shape[0]
        self.register_buffer("centre", box.mean(dim=1).float())
        self.register_buffer("half_width", ((box[:, 1] - box[:, 0]) / 2).float())

    def scaled(self, x: torch.Tensor) -> torch.Tensor:
        """Coordinates mapped from the box onto ``[-1, 1]^d``."""
        return (x.to(self.centre.dtype) - self.centre) / self.half_width

    def derivatives(self, x: torch.Tensor, orders: Sequence[Order]) -> Derivatives:
        """The derivatives ``orders`` of u at ``x``, kept differentiable for training: by autograd unless a
        model knows them in closed form."""
        return autograd_derivatives(self, x, orders)

    def predict_grid(self, axes: Sequence[torch.Tensor], chunk: int = 1 << 15) -> torch.Tensor:
        """u on the tensor-product grid ``axes``, shape ``[len(a) for a in axes]``, in chunks of points."""
        points = mesh_points(axes).to(self.centre)
        return torch.cat([self(part) for part in points.split(chunk)]).reshape([len(a) for a in axes])
