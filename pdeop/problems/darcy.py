"""Steady Darcy flow: -div(a grad u) = f on the unit square, u = 0 on the boundary.

The data recipe of Li et al., "Fourier Neural Operator for Parametric PDEs" (ICLR 2021):
a piecewise-constant coefficient ``a`` (12 where a Neumann Gaussian random field is >= 0, 3
elsewhere), f = 1, solved by second-order finite differences on a fine node grid and
subsampled to the training grid (421 -> 85 with r = 5). The linear systems go to a
configurable ``LinearSolver`` (direct by default; GCRO-DR with SKR ordering for speed).

Two discretisations (``scheme``): "harmonic" (default) samples ``a`` on the nodes and gives each face
the harmonic mean of its two nodes; "fno" is the authors' own generator (neuraloperator's
``data_generation/darcy/solve_gwf.m``): ``a`` and ``f`` live on the cell centres, go to the nodes
by a not-a-knot cubic spline (MATLAB's ``interp2(..., 'spline')``), the faces take arithmetic
means, and the node solution is splined back to the cell centres, aligned with its coefficient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Literal

import numpy as np
import scipy.sparse as sp
from scipy.interpolate import make_interp_spline
from scipy.sparse.linalg import spsolve

from pdeop.errors import ConfigError
from pdeop.linalg import LinearSolver
from pdeop.problems.grf import neumann_grf


def harmonic_mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise harmonic mean 2ab/(a+b), the face conductivity between two cells."""
    return 2.0 * a * b / (a + b)


def arithmetic_mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise (a+b)/2, solve_gwf.m's face conductivity (FNO's Darcy data)."""
    return 0.5 * (a + b)


Scheme = Literal["harmonic", "fno"]
FACE_MEANS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {"harmonic": harmonic_mean,
                                                                         "fno": arithmetic_mean}


def cell_centres(k: int) -> np.ndarray:
    """Centres (i + 1/2)/k of k equal cells of [0, 1]: where solve_gwf.m places its input and output values."""
    return (np.arange(k) + 0.5) / k


def spline_resample(values: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Tensor-product not-a-knot cubic spline of ``values`` (``[..., k, k]`` on ``source`` x ``source``) at
    ``target`` x ``target``: MATLAB's ``interp2(..., 'spline')`` as solve_gwf.m uses it."""
    for axis in (-2, -1):
        values = make_interp_spline(source, values, k=3, bc_type="not-a-knot", axis=axis)(target)
    return values


def cells_to_nodes(values: np.ndarray) -> np.ndarray:
    """Fields on the k x k cell centres, splined to the k x k nodes of [0, 1]^2 (solve_gwf.m's first step)."""
    k = values.shape[-1]
    return spline_resample(values, cell_centres(k), np.linspace(0.0, 1.0, k))


def nodes_to_cells(values: np.ndarray) -> np.ndarray:
    """Fields on the k x k nodes, splined back to the k x k cell centres (solve_gwf.m's last step)."""
    k = values.shape[-1]
    return spline_resample(values, np.linspace(0.0, 1.0, k), cell_centres(k))


def darcy_matrix(a: np.ndarray,
                 face_mean: Callable[[np.ndarray, np.ndarray], np.ndarray] = harmonic_mean) -> sp.csc_matrix:
    """Five-point matrix of -div(a grad .) on the interior nodes of a uniform grid of the unit square.

    ``a`` holds the coefficient on all ``s x s`` nodes, boundary included; the conductivity on
    the face between two neighbouring nodes is ``face_mean`` of theirs (harmonic by default;
    ``arithmetic_mean`` is solve_gwf.m's). Unknowns are the ``(s-2)^2`` interior nodes in
    row-major order; Dirichlet boundary values are zero.
    """
    s = a.shape[0]
    if a.shape != (s, s) or s < 3:
        raise ValueError(f"coefficient must be a square grid of at least 3x3 nodes, got {a.shape}")
    n = s - 2
    inv_h2 = float((s - 1) ** 2)
    index = np.full((s, s), -1, dtype=np.int64)
    index[1:-1, 1:-1] = np.arange(n * n).reshape(n, n)

    rows, cols, vals = [], [], []
    diagonal = np.zeros(n * n)
    for axis in (0, 1):
        lo = [slice(None), slice(None)]
        hi = [slice(None), slice(None)]
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        face = face_mean(a[tuple(lo)], a[tuple(hi)]) * inv_h2
        p, q = index[tuple(lo)], index[tuple(hi)]
        for own in (p, q):
            interior = own >= 0
            np.add.at(diagonal, own[interior], face[interior])
        both = (p >= 0) & (q >= 0)
        rows += [p[both], q[both]]
        cols += [q[both], p[both]]
        vals += [-face[both], -face[both]]
    rows.append(np.arange(n * n))
    cols.append(np.arange(n * n))
    vals.append(diagonal)
    matrix = sp.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n * n, n * n)
    )
    return matrix.tocsc()


def darcy_rhs(s: int, f: np.ndarray | float = 1.0) -> np.ndarray:
    """Right-hand side on the interior nodes of an ``s x s`` grid, in ``darcy_matrix``'s order."""
    return np.broadcast_to(np.asarray(f, dtype=np.float64), (s, s))[1:-1, 1:-1].ravel().copy()


def with_boundary(interior: np.ndarray, s: int) -> np.ndarray:
    """Interior unknowns back onto the ``s x s`` node grid with the zero Dirichlet boundary."""
    u = np.zeros((s, s))
    u[1:-1, 1:-1] = interior.reshape(s - 2, s - 2)
    return u


def solve_darcy(a: np.ndarray, f: np.ndarray | float = 1.0, scheme: Scheme = "harmonic") -> np.ndarray:
    """Solve -div(a grad u) = f with u = 0 on the boundary (direct).

    "harmonic": ``a``, ``f`` and the returned u are on all ``s x s`` nodes; "fno": all three are on the
    ``s x s`` cell centres, as solve_gwf.m takes and returns them.
    """
    s = a.shape[0]
    if scheme == "fno":
        a, f = cells_to_nodes(a), cells_to_nodes(np.broadcast_to(np.asarray(f, dtype=np.float64), (s, s)))
    u = with_boundary(spsolve(darcy_matrix(a, FACE_MEANS[scheme]), darcy_rhs(s, f)), s)
    return nodes_to_cells(u) if scheme == "fno" else u


@dataclass(frozen=True)
class Darcy:
    """Darcy flow with FNO's thresholded-GRF coefficient, on a fine grid of ``resolution`` nodes a side.

    ``alpha``/``tau`` set the GRF (covariance (-Laplacian + tau^2 I)^-alpha); the coefficient is
    ``a_high`` where the field is >= 0 and ``a_low`` elsewhere; ``forcing`` is the constant f.
    ``linear_solver`` solves the finite-difference systems (the direct solve unless configured).
    ``scheme``: "harmonic" (nodes, harmonic face means) or "fno" (solve_gwf.m's: cell centres, splines,
    arithmetic face means; module docstring), so that the data match Li et al.'s (ICLR 2021) files.
    """

    resolution: int = 421
    alpha: float = 2.0
    tau: float = 3.0
    a_high: float = 12.0
    a_low: float = 3.0
    forcing: float = 1.0
    linear_solver: LinearSolver = field(default_factory=LinearSolver)
    scheme: Scheme = "harmonic"

    name = "darcy"
    boundary = "dirichlet"
    input_names = ("a",)
    output_names = ("u",)

    def __post_init__(self) -> None:
        if self.resolution < 5:
            raise ConfigError(f"data.problem.resolution: expected at least 5 nodes, got {self.resolution}")
        for key in ("alpha", "tau", "a_high", "a_low"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"data.problem.{key}: expected a positive number, got {getattr(self, key)}")
        if self.scheme not in FACE_MEANS:
            raise ConfigError(f"data.problem.scheme: expected one of {sorted(FACE_MEANS)}, got {self.scheme!r}")

    def params(self) -> dict:
        """Every parameter that determines the generated data.

        An iterative solver's settings are recorded (its solutions differ from the direct ones
        within its tolerance); the direct solver and the default scheme add nothing, so earlier
        files keep their names.
        """
        params = {"name": self.name, **{f.name: getattr(self, f.name) for f in fields(self)
                                        if f.name not in ("linear_solver", "scheme")}}
        if self.scheme != "harmonic":
            params["scheme"] = self.scheme
        if self.linear_solver.method != "direct":
            params["linear_solver"] = self.linear_solver.params()
        return params

    def coordinates(self) -> dict[str, np.ndarray]:
        """Coordinates of the fine grid's points along each axis: nodes, or cell centres with scheme "fno"
        (subsampled r-fold, these are FNO's ``coeff[::r, ::r]`` points)."""
        x = cell_centres(self.resolution) if self.scheme == "fno" else np.linspace(0.0, 1.0, self.resolution)
        return {"x": x, "y": x.copy()}

    def sample_inputs(self, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        """Draw coefficients, shape ``[n, 1, resolution, resolution]``."""
        psi = neumann_grf(n_samples, self.resolution, self.alpha, self.tau, rng)
        return np.where(psi >= 0, self.a_high, self.a_low)[:, None]

    def solve(self, inputs: np.ndarray) -> np.ndarray:
        """Solve a batch of coefficients ``[n, 1, s, s]``; returns ``[n, 1, s, s]``.

        The batch goes to the linear solver as a whole, so an SKR solver can order it and
        recycle its Krylov subspace from one system to the next. With scheme "fno" inputs and
        outputs are on the cell centres (``solve_darcy``).
        """
        coefficients = inputs[:, 0]
        s = coefficients.shape[-1]
        forcing: np.ndarray | float = self.forcing
        if self.scheme == "fno":
            coefficients, forcing = cells_to_nodes(coefficients), cells_to_nodes(np.full((s, s), self.forcing))
        rhs = darcy_rhs(s, forcing)
        matrices = [darcy_matrix(a, FACE_MEANS[self.scheme]) for a in coefficients]
        solutions, _ = self.linear_solver.solve_all(matrices, [rhs] * len(coefficients), coefficients)
        u = np.stack([with_boundary(x, s) for x in solutions])
        return (nodes_to_cells(u) if self.scheme == "fno" else u)[:, None]
