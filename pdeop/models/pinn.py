"""The physics-informed neural network baseline: a tanh MLP u(x), optionally on random Fourier features.

Raissi, Perdikaris, Karniadakis, "Physics-informed neural networks", J. Comput. Phys. 2019; the
Fourier-feature input of Tancik et al. (NeurIPS 2020) as used for multi-scale PDEs by Wang, Wang,
Perdikaris, "On the eigenvector bias of Fourier feature networks", CMAME 2021.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from pdeop.errors import ConfigError
from pdeop.models.field import FieldModel


class PINN(FieldModel):
    """``depth`` hidden tanh layers of ``width`` units (Xavier-normal weights, zero biases) mapping x to u.

    With ``fourier_features`` > 0 the (box-scaled) coordinates first become
    ``[cos(2 pi B z), sin(2 pi B z)]`` with a fixed ``B`` drawn from N(0, ``fourier_scale``^2).
    """

    def __init__(self, domain: Sequence[Sequence[float]], width: int = 100, depth: int = 4,
                 fourier_features: int = 0, fourier_scale: float = 1.0):
        super().__init__(domain)
        if width < 1 or depth < 1:
            raise ConfigError(f"model.width/model.depth: expected positive sizes, got width {width}, depth {depth}")
        if fourier_features < 0 or fourier_scale <= 0:
            raise ConfigError(f"model.fourier_features/fourier_scale: expected a count >= 0 and a positive scale, "
                              f"got {fourier_features}, {fourier_scale}")
        self.register_buffer("frequencies", torch.randn(self.dim, fourier_features) * fourier_scale)
        sizes = [2 * fourier_features if fourier_features else self.dim] + [width] * depth
        layers: list[nn.Module] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(n_in, n_out), nn.Tanh()]
        layers.append(nn.Linear(sizes[-1], 1))
        self.net = nn.Sequential(*layers)
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_normal_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.scaled(x)
        if self.frequencies.shape[1]:
            angle = 2 * math.pi * z @ self.frequencies
            z = torch.cat([torch.cos(angle), torch.sin(angle)], dim=1)
        return self.net(z)[:, 0]
