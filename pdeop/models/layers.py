"""Small pieces several models share."""

from __future__ import annotations

import torch
from torch import nn


def append_coordinates(x: torch.Tensor) -> torch.Tensor:
    """Concatenate node coordinates in [0, 1] along each spatial axis: ``[b, c, H, W] -> [b, c + 2, H, W]``."""
    axes = (torch.linspace(0, 1, n, device=x.device, dtype=x.dtype) for n in x.shape[2:])
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"))
    return torch.cat([x, grid.expand(x.shape[0], *grid.shape)], dim=1)


def channelwise(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a layer acting on the last axis (``nn.Linear``, a head) to the channel axis of ``[b, c, ...]``."""
    return layer(x.movedim(1, -1)).movedim(-1, 1)
