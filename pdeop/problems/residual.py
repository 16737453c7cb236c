"""Single PDE instances posed by their residual, the input of physics-informed solvers (PINN, PIG, GP-HM).

An operator learns from many solved samples; a physics-informed solver represents one solution
u(x) and fits it to the equation itself. A ``ResidualProblem`` says which derivatives of u its
differential operator reads, applies the operator to given derivatives, and supplies the source
term, the Dirichlet data on its boundary faces and a reference solution on a test grid.
Derivatives are keyed by ``Order``: the axes differentiated, sorted, so ``()`` is u itself,
``(0, 0)`` is u_xx and ``(0, 1)`` the mixed derivative of the first two axes.
"""

from __future__ import annotations

import math

from collections.abc import Callable, Sequence

import torch

from pdeop.errors import ConfigError

Order = tuple[int, ...]
Derivatives = dict[Order, torch.Tensor]


def autograd_derivatives(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                         orders: Sequence[Order], create_graph: bool = True) -> Derivatives:
    """The derivatives ``orders`` of the scalar field ``fn`` at the points ``x`` ``[n, d]``, by automatic
    differentiation.

    Each gradient is taken once and shared: u_xx and u_xy both reuse the first gradient of u.
    ``create_graph`` keeps the graph so that a loss on the derivatives can be trained.
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        known: Derivatives = {(): fn(x)}

        def derivative(order: Order) -> torch.Tensor:
            if order not in known:
                parent = derivative(order[:-1])
                gradient = torch.autograd.grad(parent.sum(), x, create_graph=True)[0]
                for axis in range(x.shape[1]):
                    known[order[:-1] + (axis,)] = gradient[:, axis]
            return known[order]

        wanted = {tuple(sorted(order)): derivative(tuple(sorted(order))) for order in orders}
    if not create_graph:
        wanted = {order: value.detach() for order, value in wanted.items()}
    return wanted


class ResidualProblem:
    """One PDE instance L[u] = f on a box, with Dirichlet data on all of its faces.

    Subclasses set ``name``, ``axis_names``, ``domain`` (per axis ``(low, high)``) and ``orders``,
    implement ``operator`` and, where the solution is known, ``exact``; the source term then
    follows from the exact solution by automatic differentiation, so that a manufactured
    solution needs no hand-derived right-hand side.
    """

    name: str
    axis_names: tuple[str, ...]
    domain: tuple[tuple[float, float], ...]
    orders: tuple[Order, ...]
    test_points: int | Sequence[int]

    def operator(self, x: torch.Tensor, d: Derivatives) -> torch.Tensor:
        """L[u] at the points ``x`` ``[n, d]`` from the derivatives ``d`` of u there (each ``[n]``)."""
        raise NotImplementedError

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        """The exact solution at ``x`` ``[n, d]``, shape ``[n]``."""
        raise NotImplementedError

    @property
    def dim(self) -> int:
        return len(self.domain)

    def source(self, x: torch.Tensor) -> torch.Tensor:
        """f = L[exact] at ``x``, by automatic differentiation of the exact solution."""
        return self.operator(x, autograd_derivatives(self.exact, x, self.orders, create_graph=False)).detach()

    def residual(self, x: torch.Tensor, d: Derivatives) -> torch.Tensor:
        """L[u] - f at ``x``: zero where u solves the equation."""
        return self.operator(x, d) - self.source(x)

    def boundary_values(self, x: torch.Tensor) -> torch.Tensor:
        """The Dirichlet data at boundary points ``x``."""
        return self.exact(x).detach()

    def test_axes(self, dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
        """Node coordinates of the test grid along each axis (end points included)."""
        counts = [self.test_points] * self.dim if isinstance(self.test_points, int) else list(self.test_points)
        return [torch.linspace(low, high, n, dtype=dtype) for (low, high), n in zip(self.domain, counts)]

    def reference(self, axes: Sequence[torch.Tensor]) -> torch.Tensor:
        """The reference solution on the tensor-product grid ``axes``, shape ``[len(a) for a in axes]``."""
        return self.exact(mesh_points(axes)).reshape([len(a) for a in axes]).detach()

    def sample_interior(self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``n`` points drawn uniformly in the box, ``[n, d]``."""
        low, high = self._bounds(dtype)
        return low + (high - low) * torch.rand(n, self.dim, generator=generator, dtype=dtype)

    def sample_boundary(self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``n`` points drawn uniformly on the box's faces, shared evenly among them, ``[n, d]``."""
        faces = [(axis, side) for axis in range(self.dim) for side in (0, 1)]
        points = self.sample_interior(n, generator, dtype)
        face = torch.arange(n) % len(faces)
        low, high = self._bounds(dtype)
        for index, (axis, side) in enumerate(faces):
            points[face == index, axis] = (high if side else low)[axis]
        return points

    def check(self) -> None:
        """Raise ``ConfigError`` for an empty or inverted box (called by subclasses' ``__post_init__``)."""
        for axis, (low, high) in zip(self.axis_names, self.domain):
            if not (math.isfinite(low) and math.isfinite(high)):
                raise ConfigError(f"data.problem.domain: the {axis} interval must be finite, got [{low}, {high}]")
            if not low < high:
                raise ConfigError(f"data.problem.domain: the {axis} interval must have low < high, got [{low}, {high}]")
        counts = [self.test_points] if isinstance(self.test_points, int) else list(self.test_points)
        if len(counts) not in (1, self.dim) or min(counts) < 2:
            raise ConfigError(f"data.problem.test_points: expected one count of at least 2 or one per axis "
                              f"{self.axis_names}, got {self.test_points}")

    def _bounds(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        bounds = torch.tensor(self.domain, dtype=dtype)
        return bounds[:, 0], bounds[:, 1]


def mesh_points(axes: Sequence[torch.Tensor]) -> torch.Tensor:
    """The nodes of a tensor-product grid as points ``[N, d]``, in ``meshgrid(indexing="ij")`` order."""
    return torch.stack([g.reshape(-1) for g in torch.meshgrid(*axes, indexing="ij")], dim=1)
