"""One Darcy instance posed by its residual, for the physics-informed solvers.

The coefficient is one draw of the foundation's Darcy problem (FNO's thresholded Gaussian random
field, seeded); the solution has no closed form, so the reference is the finite-difference
solution on the same fine grid. The physics-informed solvers see the coefficient through its
bilinear interpolant, and the equation expanded as -(a (u_xx + u_yy) + a_x u_x + a_y u_y) = f.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

from pdeop.errors import ConfigError
from pdeop.problems.darcy import Darcy, solve_darcy
from pdeop.problems.manufactured import BoxProblem
from pdeop.problems.residual import Derivatives, mesh_points


def bilinear(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The bilinear interpolant of node values ``[s, s]`` on the unit square at points ``x`` ``[n, 2]``.

    Axis 0 of ``values`` is the first coordinate (``grid_sample`` wants it as the height).
    """
    grid = (2 * x[:, [1, 0]] - 1).reshape(1, -1, 1, 2).to(values.dtype)
    return F.grid_sample(values[None, None], grid, mode="bilinear", align_corners=True).reshape(-1)


@dataclass(frozen=True)
class DarcyInstance(BoxProblem):
    """-div(a grad u) = f on the unit square, u = 0 on its boundary, ``a`` drawn with ``seed``."""

    resolution: int = 241
    seed: int = 0
    alpha: float = 2.0
    tau: float = 3.0
    a_high: float = 12.0
    a_low: float = 3.0
    forcing: float = 1.0
    test_points: int = 241
    domain: tuple = ((0.0, 1.0), (0.0, 1.0))

    name = "darcy_instance"
    axis_names = ("x", "y")
    orders = ((0,), (1,), (0, 0), (1, 1))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.domain != ((0.0, 1.0), (0.0, 1.0)):
            raise ConfigError(f"data.problem.domain: the Darcy problem lives on the unit square [[0, 1], [0, 1]], "
                              f"got {self.domain}")
        self.foundation()

    def foundation(self) -> Darcy:
        """The foundation's Darcy problem with these parameters (which checks them)."""
        return Darcy(resolution=self.resolution, alpha=self.alpha, tau=self.tau, a_high=self.a_high,
                     a_low=self.a_low, forcing=self.forcing)

    @cached_property
    def coefficient(self) -> torch.Tensor:
        """The coefficient on the fine grid's nodes, ``[resolution, resolution]``."""
        draw = self.foundation().sample_inputs(1, np.random.default_rng(self.seed))
        return torch.from_numpy(draw[0, 0])

    @cached_property
    def solution(self) -> torch.Tensor:
        """The finite-difference solution on the fine grid's nodes (the reference)."""
        return torch.from_numpy(solve_darcy(self.coefficient.numpy(), self.forcing))

    def operator(self, x: torch.Tensor, d: Derivatives) -> torch.Tensor:
        points = x.detach().requires_grad_(True)
        with torch.enable_grad():
            a = bilinear(self.coefficient.to(points.device), points)
            gradient = torch.autograd.grad(a.sum(), points)[0].to(x.dtype)
        a = a.detach().to(x.dtype)
        return -(a * (d[(0, 0)] + d[(1, 1)]) + gradient[:, 0] * d[(0,)] + gradient[:, 1] * d[(1,)])

    def source(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x),), self.forcing, dtype=x.dtype, device=x.device)

    def boundary_values(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(x), dtype=x.dtype, device=x.device)

    def reference(self, axes) -> torch.Tensor:
        return bilinear(self.solution, mesh_points(axes)).reshape([len(a) for a in axes])
