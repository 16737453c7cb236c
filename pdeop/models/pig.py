"""PIG: Physics-Informed Gaussians (Kang et al., "PIG: Physics-Informed Gaussians as Adaptive Parametric
Mesh Representations", ICLR 2025; reference code NamGyuKang/Physics-Informed-Gaussians, Helmholtz2d/).

The solution is a tiny MLP on a few feature channels; each channel is a weighted sum of its own
Gaussians, whose means, widths and weights are all trained, so the representation concentrates
its resolution where the residual asks for it, like an adaptive mesh.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pdeop.errors import ConfigError
from pdeop.models.field import FieldModel
from pdeop.problems.residual import Derivatives, Order


class PIG(FieldModel):
    """``channels`` features, each a sum of ``num_gaussians`` Gaussians, decoded by a tanh MLP.

    Feature k at x: sum_i w_ki exp(-|L_ki^T (x - mu_ki)|^2 / 2) with means mu ~ U(-1, 1) in the
    box scaled onto [-1, 1]^d, weights w ~ N(0, 0.01^2) and L = diag(1 / sigma) with sigma
    (per axis, raw, as the reference trains it) initialised to ``sigma_init``. With
    ``full_covariance`` (2D only) L = R(theta) diag(1 / sigma), a rotated anisotropic Gaussian (theta
    starts at 0 and turns nothing while a Gaussian's widths are equal; the reference fine-tunes it
    from a trained diagonal run, ``model.pretrained=<its checkpoint> model.pretrained_exclude=[rotation]``).
    The decoder has ``layers`` linear layers (hidden width ``hidden``, tanh between); the
    paper's Helmholtz setting is 800 Gaussians, 4 channels, sigma 0.1, Linear(4,16)-tanh-Linear(16,1).
    """

    def __init__(self, domain: Sequence[Sequence[float]], num_gaussians: int = 800, channels: int = 4,
                 sigma_init: float = 0.1, hidden: int = 16, layers: int = 2, full_covariance: bool = False):
        super().__init__(domain)
        if num_gaussians < 1 or channels < 1 or hidden < 1 or layers < 1:
            raise ConfigError(f"model.num_gaussians/channels/hidden/layers: expected positive sizes, got "
                              f"{num_gaussians}, {channels}, {hidden}, {layers}")
        if sigma_init <= 0:
            raise ConfigError(f"model.sigma_init: expected a positive width, got {sigma_init}")
        if full_covariance and self.dim != 2:
            raise ConfigError(f"model.full_covariance: rotations are implemented for 2D problems, this one has "
                              f"{self.dim} axes")
        shape = (channels, num_gaussians)
        self.means = nn.Parameter(torch.rand(*shape, self.dim) * 2 - 1)
        self.sigmas = nn.Parameter(torch.full((*shape, self.dim), float(sigma_init)))
        self.weights = nn.Parameter(torch.randn(shape) * 0.01)
        self.rotation = nn.Parameter(torch.zeros(shape)) if full_covariance else None
        sizes = [channels] + [hidden] * (layers - 1) + [1]
        modules: list[nn.Module] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            modules += [nn.Linear(n_in, n_out), nn.Tanh()]
        self.decoder = nn.Sequential(*modules[:-1])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The Gaussian feature channels at points ``x`` ``[n, d]``: ``[n, channels]``."""
        offset = self.scaled(x)[:, None, None, :] - self.means  # [n, channels, gaussians, d]
        return (self.gaussians(offset, self.precision()) * self.weights).sum(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.features(x))[:, 0]

    def derivatives(self, x: torch.Tensor, orders: Sequence[Order]) -> Derivatives:
        """Derivatives up to second order in closed form: the Gaussians' own, carried through the decoder.

        Much cheaper than nested autograd through the ``[n, channels, gaussians, d]`` features (a
        few elementwise passes instead of a double-backward graph); ``tests/test_physics_models.py``
        checks them against autograd.
        """
        orders = [tuple(sorted(order)) for order in orders]
        if any(len(order) > 2 for order in orders):
            return super().derivatives(x, orders)
        scale = 1 / self.half_width  # d z / d x of the box scaling
        offset = self.scaled(x)[:, None, None, :] - self.means
        precision = self.precision()
        pulled = self.pull(offset, precision)  # P (z - mu), [n, channels, gaussians, d]
        gauss = torch.exp(-0.5 * (offset * pulled).sum(dim=-1)) * self.weights  # [n, channels, gaussians]
        first = sorted({axis for order in orders for axis in order})
        seconds = sorted({order for order in orders if len(order) == 2})
        value = gauss.sum(dim=-1)
        slopes = {a: -(gauss * pulled[..., a]).sum(dim=-1) * scale[a] for a in first}
        curvatures = {(a, b): (gauss * (pulled[..., a] * pulled[..., b] - self.entry(precision, a, b))).sum(dim=-1)
                      * scale[a] * scale[b] for a, b in seconds}
        for layer in self.decoder:
            if isinstance(layer, nn.Linear):
                value = layer(value)
                slopes = {a: s @ layer.weight.T for a, s in slopes.items()}
                curvatures = {ab: c @ layer.weight.T for ab, c in curvatures.items()}
            else:
                value = torch.tanh(value)
                slope, bend = 1 - value.square(), -2 * value * (1 - value.square())
                curvatures = {(a, b): bend * slopes[a] * slopes[b] + slope * c for (a, b), c in curvatures.items()}
                slopes = {a: slope * s for a, s in slopes.items()}
        known = {(): value[:, 0], **{(a,): s[:, 0] for a, s in slopes.items()},
                 **{ab: c[:, 0] for ab, c in curvatures.items()}}
        return {order: known[order] for order in orders}

    def precision(self) -> torch.Tensor:
        """Each Gaussian's precision ``L L^T`` in the scaled box: its diagonal ``1 / sigma^2``
        ``[channels, gaussians, d]``, or with rotations the full matrices ``[channels, gaussians, d, d]``."""
        if self.rotation is None:
            return self.sigmas.pow(-2)
        cos, sin = torch.cos(self.rotation), torch.sin(self.rotation)
        rotation = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)
        factor = rotation.mT @ torch.diag_embed(1 / self.sigmas)
        return factor @ factor.mT

    def pull(self, offset: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
        """``P (z - mu)`` for offsets ``[n, channels, gaussians, d]``."""
        if self.rotation is None:
            return offset * precision
        return torch.einsum("cgab,ncgb->ncga", precision, offset)

    def entry(self, precision: torch.Tensor, a: int, b: int) -> torch.Tensor:
        """``P_ab`` of every Gaussian, ``[channels, gaussians]``."""
        if self.rotation is None:
            return precision[..., a] if a == b else torch.zeros_like(precision[..., a])
        return precision[..., a, b]

    def gaussians(self, offset: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
        """``exp(-(z - mu)^T P (z - mu) / 2)`` for offsets ``[n, channels, gaussians, d]``."""
        return torch.exp(-0.5 * (offset * self.pull(offset, precision)).sum(dim=-1))
