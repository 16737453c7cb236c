"""PDE instances with known solutions, the benchmarks of the physics-informed solvers.

High-frequency and multi-scale cases of Fang et al., "Solving High Frequency and Multi-Scale PDEs
with Gaussian Processes" (ICLR 2024): 1D Poisson, 1D Allen-Cahn, 2D Poisson, 1D advection; the 2D
Helmholtz case of Kang et al., "PIG: Physics-Informed Gaussians as Adaptive Parametric Mesh
Representations" (ICLR 2025). Each source term is the operator applied to the exact solution
(automatic differentiation), as in both papers' code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from pdeop.errors import ConfigError
from pdeop.problems.residual import Derivatives, ResidualProblem

Solution = Callable[[torch.Tensor], torch.Tensor]

POISSON_1D: dict[str, Solution] = {
    "sin100x": lambda x: torch.sin(100 * x),
    "sin6x_cos100x": lambda x: torch.sin(6 * x) * torch.cos(100 * x),
    "x_sin200x": lambda x: x * torch.sin(200 * x),
    "sin500x_quadratic": lambda x: torch.sin(500 * x) - 2 * (x - 0.5) ** 2,
}


def as_box(domain) -> tuple[tuple[float, float], ...]:
    """A domain from the config (lists) as a tuple of ``(low, high)`` float pairs."""
    try:
        return tuple((float(low), float(high)) for low, high in domain)
    except (TypeError, ValueError):
        raise ConfigError(f"data.problem.domain: expected one [low, high] pair per axis, got {domain}") from None


def solution(table: dict[str, Solution], name: str) -> Solution:
    if name not in table:
        raise ConfigError(f"data.problem.solution: expected one of {sorted(table)}, got '{name}'")
    return table[name]


class BoxProblem(ResidualProblem):
    """Normalises the configured domain and checks it once the dataclass fields are set."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "domain", as_box(self.domain))
        if len(self.domain) != len(self.axis_names):
            raise ConfigError(f"data.problem.domain: expected {len(self.axis_names)} [low, high] pair(s) "
                              f"for the axes {self.axis_names}, got {len(self.domain)}")
        self.check()


@dataclass(frozen=True)
class Poisson1D(BoxProblem):
    """u_xx = f with Dirichlet ends; ``solution`` names the exact solution (GP-HM's cases)."""

    solution: str = "sin100x"
    domain: tuple = ((0.0, 2 * math.pi),)
    test_points: int = 300

    name = "poisson1d"
    axis_names = ("x",)
    orders = ((0, 0),)

    def __post_init__(self) -> None:
        super().__post_init__()
        solution(POISSON_1D, self.solution)

    def operator(self, x: torch.Tensor, d: Derivatives) -> torch.Tensor:
        return d[(0, 0)]

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        return POISSON_1D[self.solution](x[:, 0])


@dataclass(frozen=True)
class AllenCahn1D(BoxProblem):
    """u_xx + u (u^2 - 1) = f, the nonlinear 1D case of GP-HM, exact u = sin(100x)."""

    frequency: float = 100.0
    domain: tuple = ((0.0, 2 * math.pi),)
    test_points: int = 300

    name = "allen_cahn1d"
    axis_names = ("x",)
    orders = ((), (0, 0))

    def operator(self, x: torch.Tensor, d: Derivatives) -> torch.Tensor:
        u = d[()]
        return d[(0, 0)] + u * (u ** 2 - 1)

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.frequency * x[:, 0])


@dataclass(frozen=True)
class Poisson2D(BoxProblem):
    """u_xx + u_yy = f with Dirichlet data on the square, exact u = sin(w x) sin(w y) (GP-HM: w = 100 on
    [0, 2 pi]^2)."""

    frequency: float = 100.0
    domain: tuple = ((0.0, 2 * math.pi), (0.0, 2 * math.pi))
    test_points: int = 300

    name = "poisson2d"
    axis_names = ("x", "y")
    orders = ((0, 0), (1, 1))

    def operator(self, x: torch.Tensor, d: Derivatives) -> torch.Tensor:
        return d[(0, 0)] + d[(1, 1)]

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.frequency * x[:, 0]) * torch.sin(self.frequency * x[:, 1])


@dataclass(frozen=True)
class Helmholtz2D(BoxProblem):
    """u_xx + u_yy + k^2 u = f on [-1, 1]^2, exact u = sin(a1 pi y) sin(a2 pi x) (PIG's setting: a1 = 4, a2 = 1,
    k = 1)."""

    a1: float = 4.0
    a2: float = 1.0
    k: float = 1.0
    domain: tuple = ((-1.0, 1.0), (-1.0, 1.0))
    test_points: int = 250

    name = "helmholtz2d"
    axis_names = ("x", "y")
    orders = ((), (0, 0), (1, 1))

    def operator(self, x: torch.Tensor, d: Derivatives) -> torch.Tensor:
        return d[(0, 0)] + d[(1, 1)] + self.k ** 2 * d[()]

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.a1 * math.pi * x[:, 1]) * torch.sin(self.a2 * math.pi * x[:, 0])


@dataclass(frozen=True)
class Advection1D(BoxProblem):
    """u_t + beta u_x = 0 on [0, 1] x [0, 1] (space x time), exact u = sin(x - beta t).

    GP-HM's setting (beta = 200): the exact solution is imposed on all four edges of the box.
    """

    beta: float = 200.0
    domain: tuple = ((0.0, 1.0), (0.0, 1.0))
    test_points: int = 300

    name = "advection1d"
    axis_names = ("x", "t")
    orders = ((0,), (1,))

    def operator(self, x: torch.Tensor, d: Derivatives) -> torch.Tensor:
        return d[(1,)] + self.beta * d[(0,)]

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x[:, 0] - self.beta * x[:, 1])
