"""GP-HM: Fang et al., "Solving High Frequency and Multi-Scale PDEs with Gaussian Processes", ICLR 2024
(reference code xuangu-fang/Gaussian-Process-Slover-for-High-Freq-PDE, JAX, float64).

The solution's values on a uniform collocation grid are the unknowns, under a GP prior whose
covariance is a product over axes of spectral mixtures: per axis,
``k(d) = sum_q w_q g(d; l_q) cos(2 pi f_q d)`` with ``g`` a Matern-5/2 envelope (Student-t
spectral density, "GP-HM-StM") or a squared exponential (Gaussian mixture, "GP-HM-GM").
Derivatives on the grid are those of the GP conditional mean, one axis at a time:
``u_xx = (K''_x K_x^{-1} ⊗ I) u``. The covariance is Kronecker-structured, so the log-likelihood
costs ``O(N sum n_i + sum n_i^3)`` (``pdeop.linalg.kronecker``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pdeop.errors import ConfigError
from pdeop.linalg.kronecker import KroneckerCholesky, kron_matvec

Order = tuple[int, ...]
KERNELS = ("student_t", "gaussian")
MAX_ORDER = 2  # per axis; the paper's equations need at most second derivatives


def _envelope_derivatives(d: Tensor, inverse_lengthscale: Tensor, kernel: str, order: int) -> list[Tensor]:
    """``[g, g', ..., g^(order)]`` of the envelope at signed offsets ``d``, parametrised by ``c`` (the
    inverse lengthscale) as the reference code does: Matern-5/2 ``(1 + s + s^2/3) exp(-s)`` with
    ``s = sqrt(5) c |d|``, squared exponential ``exp(-c d^2)``."""
    if kernel == "student_t":
        scale = 5 * inverse_lengthscale.square() / 3
        s = math.sqrt(5) * d.abs() * inverse_lengthscale
        decay = torch.exp(-s)
        values = [(1 + s + s.square() / 3) * decay, -scale * d * (1 + s) * decay,
                  -scale * (1 + s - s.square()) * decay]
    else:
        g = torch.exp(-d.square() * inverse_lengthscale)
        values = [g, -2 * inverse_lengthscale * d * g,
                  (4 * inverse_lengthscale.square() * d.square() - 2 * inverse_lengthscale) * g]
    return values[: order + 1]


def spectral_mixture(d: Tensor, log_weight: Tensor, log_inverse_lengthscale: Tensor, frequency: Tensor,
                     kernel: str, order: int = 0) -> Tensor:
    """``k^(order)(d)`` of the one-axis kernel ``sum_q w_q g_q(d) cos(2 pi f_q d)`` (Fang et al.),
    by Leibniz's rule; ``d`` is any shape, the parameters ``[Q]``."""
    d = d[..., None]
    envelope = _envelope_derivatives(d, log_inverse_lengthscale.exp(), kernel, order)
    omega = 2 * math.pi * frequency
    total = sum(math.comb(order, j) * envelope[j] * omega ** (order - j)
                * torch.cos(omega * d + (order - j) * math.pi / 2) for j in range(order + 1))
    return (log_weight.exp() * total).sum(-1)


def _check_domain(domain: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    if len(domain) == 0 or any(len(bounds) != 2 for bounds in domain):
        raise ConfigError(f"model.domain: expected a list of [low, high] per axis, got {domain}")
    if any(float(low) >= float(high) for low, high in domain):
        raise ConfigError(f"model.domain: every axis needs low < high, got {domain}")
    return [(float(low), float(high)) for low, high in domain]


class GPHM(nn.Module):
    """GP-HM solver state on a ``points`` grid over ``domain`` (Fang et al., ICLR 2024).

    Parameters, all float64 and per axis as in the reference code: ``log_weight`` ``[d, Q]``
    (initialised ``log(1/Q)``; estimating weights in the log domain is the paper's Jeffreys
    prior), ``log_inverse_lengthscale`` ``[d, Q]`` (initialised 0),
    ``frequency`` ``[d, Q]`` (initialised ``linspace(0, 1, Q) * max_frequency``), the grid
    values ``u`` (initialised 0), and the log precisions of the boundary and residual
    likelihoods (initialised 0). ``jitter`` is added to each axis' covariance, as the
    reference does, so the covariance is ``(K_1 + jI) ⊗ ... ⊗ (K_d + jI)``.

    ``boundary_per_face`` (default False) is the reference's boundary likelihood, for the fixture
    tests (tests/test_reference_outputs_physics.py): its 2D solvers stack the grid's four edges, so a
    corner enters the boundary misfit twice and the count N_b is 2 (n_1 + n_2). pdeop counts each
    boundary node once (2 (n_1 + n_2) - 4): a corner is one observation of the Dirichlet data, and
    doubling it weights the corners over the rest of the boundary. In 1D the two agree.
    """

    def __init__(self, domain: Sequence[Sequence[float]], points: int | Sequence[int], kernel: str = "student_t",
                 components: int = 30, max_frequency: float = 20.0, jitter: float = 1e-6,
                 boundary_per_face: bool = False):
        super().__init__()
        bounds = _check_domain(domain)
        sizes = [points] * len(bounds) if isinstance(points, int) else list(points)
        if len(sizes) != len(bounds) or any(not isinstance(n, int) or n < 3 for n in sizes):
            raise ConfigError(f"model.points (data.grid_points, which it takes by default): expected an int >= 3 or "
                              f"one per axis of the domain, got {points}")
        if kernel not in KERNELS:
            raise ConfigError(f"model.kernel: expected one of {KERNELS}, got {kernel!r}")
        if components < 1:
            raise ConfigError(f"model.components: expected at least 1 mixture component, got {components}")
        if not max_frequency > 0:
            raise ConfigError(f"model.max_frequency: expected a positive frequency, got {max_frequency}")
        if not jitter > 0:
            raise ConfigError(f"model.jitter: expected a positive jitter, got {jitter}")
        self.kernel = kernel
        self.jitter = float(jitter)
        self.boundary_per_face = bool(boundary_per_face)
        self.dim = len(bounds)
        for axis, ((low, high), n) in enumerate(zip(bounds, sizes)):
            self.register_buffer(f"axis_{axis}", torch.linspace(low, high, n, dtype=torch.float64))
        shape = (self.dim, components)
        f64 = torch.float64
        self.log_weight = nn.Parameter(torch.full(shape, math.log(1 / components), dtype=f64))
        self.log_inverse_lengthscale = nn.Parameter(torch.zeros(shape, dtype=f64))
        self.frequency = nn.Parameter(torch.linspace(0, 1, components, dtype=f64).repeat(self.dim, 1) * max_frequency)
        self.u = nn.Parameter(torch.zeros(sizes, dtype=f64))
        self.log_boundary_precision = nn.Parameter(torch.zeros((), dtype=f64))
        self.log_residual_precision = nn.Parameter(torch.zeros((), dtype=f64))

    def grid_axes(self) -> list[Tensor]:
        """Per-axis node coordinates of the collocation grid, end points included."""
        return [getattr(self, f"axis_{axis}") for axis in range(self.dim)]

    def grid_points(self) -> Tensor:
        """``[N, d]`` grid nodes in ``meshgrid(indexing="ij")`` order, matching ``u.reshape(-1)``."""
        return torch.stack(torch.meshgrid(*self.grid_axes(), indexing="ij"), dim=-1).reshape(-1, self.dim)

    def boundary_mask(self) -> Tensor:
        """``[N]`` bool: nodes with a coordinate at either end of its axis."""
        mask = torch.zeros(self.u.shape, dtype=torch.bool, device=self.u.device)
        for axis in range(self.dim):
            mask.index_fill_(axis, torch.tensor([0, self.u.shape[axis] - 1], device=self.u.device), True)
        return mask.reshape(-1)

    def _kernel(self, axis: int, offsets: Tensor, order: int = 0) -> Tensor:
        """``k_axis^(order)`` at signed offsets ``x - y`` of any shape."""
        return spectral_mixture(offsets, self.log_weight[axis], self.log_inverse_lengthscale[axis],
                                self.frequency[axis], self.kernel, order)

    def _grid_kernel(self, axis: int, order: int = 0) -> Tensor:
        """``[n, n]``: ``k_axis^(order)(x_i - x_j)`` on the axis' nodes. The grid is uniform, so the matrix is
        Toeplitz: the kernel is evaluated at the ``2n - 1`` offsets only, in ``O(n Q)`` rather than ``O(n^2 Q)``."""
        nodes = self.grid_axes()[axis]
        n = len(nodes)
        steps = torch.arange(1 - n, n, dtype=nodes.dtype, device=nodes.device)
        index = torch.arange(n, device=nodes.device)
        return self._kernel(axis, steps * (nodes[-1] - nodes[0]) / (n - 1), order)[index[:, None] - index + n - 1]

    def _cross_kernel(self, axis: int, points: Tensor) -> Tensor:
        """``[len(points), n]``: ``k_axis(p, x_j)`` between coordinates ``points`` and the axis' nodes."""
        points = points.to(dtype=torch.float64, device=self.u.device)
        return self._kernel(axis, points[:, None] - self.grid_axes()[axis][None, :])

    def axis_covariances(self) -> list[Tensor]:
        """Per-axis prior covariances on the grid, jitter included; that of ``u`` is their Kronecker product."""
        return [self._grid_kernel(axis) + self.jitter * torch.eye(len(nodes), dtype=nodes.dtype, device=nodes.device)
                for axis, nodes in enumerate(self.grid_axes())]

    def _covariance(self) -> KroneckerCholesky:
        return KroneckerCholesky(self.axis_covariances())

    def grid_derivatives(self, orders: Sequence[Order]) -> dict[Order, Tensor]:
        """Each requested derivative of the GP conditional mean at the grid nodes, ``[N]`` (Fang et al.):
        per differentiated axis the operator ``K^(k)_axis (K_axis + jI)^{-1}``."""
        covariance = self._covariance()
        operators: dict[tuple[int, int], Tensor] = {}
        result = {}
        for order in orders:
            order = tuple(order)
            if list(order) != sorted(order) or any(not 0 <= axis < self.dim for axis in order):
                raise ValueError(f"GPHM.grid_derivatives: order {order} must list axes in [0, {self.dim}) ascending")
            factors: list[Tensor | None] = [None] * self.dim
            for axis, count in Counter(order).items():
                if count > MAX_ORDER:
                    raise ValueError(f"GPHM.grid_derivatives: order {order} differentiates axis {axis} "
                                     f"{count} times, at most {MAX_ORDER} supported")
                if (axis, count) not in operators:
                    cross = self._grid_kernel(axis, count)
                    operators[axis, count] = covariance.solve_factor(axis, cross.mT).mT
                factors[axis] = operators[axis, count]
            result[order] = kron_matvec(factors, self.u).reshape(-1)
        return result

    def regulariser(self) -> Tensor:
        """``-log N(u | 0, K)`` without its constant ``N/2 log(2 pi)``: ``(log det K + u^T K^{-1} u) / 2``,
        unscaled, as in the paper's log joint and the
        reference code."""
        covariance = self._covariance()
        return 0.5 * (covariance.logdet() + covariance.inv_quad(self.u))

    def boundary_nll(self, errors: Tensor) -> Tensor:
        """``-log N(errors | 0, I / tau)`` without constant: ``-n/2 log tau + tau/2 sum(errors^2)``, the paper's
        boundary likelihood with a learnt precision ``tau`` (the trainer weights it, 200 or 500 in the paper).
        ``errors`` are at the ``boundary_mask`` nodes, in grid order; with ``boundary_per_face`` each counts once
        per face of the box it lies on, as the reference's stacked edges count it."""
        if self.boundary_per_face:
            errors = errors.repeat_interleave(self._faces_per_boundary_node())
        return _gaussian_nll(errors, self.log_boundary_precision)

    def _faces_per_boundary_node(self) -> Tensor:
        """``[number of boundary nodes]``: on how many faces of the box each ``boundary_mask`` node lies."""
        faces = torch.zeros(self.u.shape, dtype=torch.long, device=self.u.device)
        for axis, n in enumerate(self.u.shape):
            ends = torch.zeros(n, dtype=torch.long, device=self.u.device)
            ends[[0, -1]] = 1
            faces = faces + ends.reshape([n if a == axis else 1 for a in range(self.dim)])
        return faces.reshape(-1)[self.boundary_mask()]

    def residual_nll(self, residual: Tensor) -> Tensor:
        """``-n/2 log v + v/2 sum(residual^2)``: the paper's equation likelihood with a learnt precision ``v``."""
        return _gaussian_nll(residual, self.log_residual_precision)

    def _coefficients(self) -> Tensor:
        return self._covariance().solve(self.u)

    def forward(self, x: Tensor) -> Tensor:
        """Posterior mean at points ``x`` ``[n, d]`` -> ``[n]``: ``k(x, grid) K^{-1} u`` with the product kernel."""
        x = x.to(dtype=torch.float64, device=self.u.device)
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"GPHM.forward: expected points of shape [n, {self.dim}], got {tuple(x.shape)}")
        coefficients = self._coefficients()
        out = self._cross_kernel(0, x[:, 0]) @ coefficients.reshape(self.u.shape[0], -1)
        for axis in range(1, self.dim):
            cross = self._cross_kernel(axis, x[:, axis])
            out = (cross[:, :, None] * out.reshape(len(x), self.u.shape[axis], -1)).sum(1)
        return out.reshape(-1)

    def predict_grid(self, axes: Sequence[Tensor]) -> Tensor:
        """Posterior mean on the tensor-product grid of ``axes``, shape ``[len(a) for a in axes]``, through
        per-axis cross-covariances as the reference code predicts."""
        if len(axes) != self.dim:
            raise ValueError(f"GPHM.predict_grid: expected {self.dim} axes, got {len(axes)}")
        return kron_matvec([self._cross_kernel(axis, a) for axis, a in enumerate(axes)], self._coefficients())


def _gaussian_nll(values: Tensor, log_precision: Tensor) -> Tensor:
    return 0.5 * (log_precision.exp() * values.square().sum() - values.numel() * log_precision)
