"""The linear-solver layer a problem delegates to, chosen by config (``data.problem.linear_solver``).

``LinearSolver.solve_all`` takes a batch of systems with their parameter fields and solves them
directly, or iteratively (CG, GMRES(m), GCRO-DR(m, k)) with none, Jacobi or ILU preconditioning.
With GCRO-DR and ``sort`` on it is SKR (Wang et al., ICLR 2024): the systems are put in greedy
nearest-neighbour order and solved one after another, each recycling the previous subspace.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from pdeop.errors import ConfigError, PdeopError
from pdeop.linalg.krylov import GCRODR, KrylovResult, conjugate_gradient, gmres
from pdeop.linalg.ordering import grouped_order

METHODS = ("direct", "cg", "gmres", "gcrodr")
PRECONDITIONERS = ("none", "jacobi", "ilu")


def make_preconditioner(kind: str, A: sp.spmatrix):
    """``None``, the inverse diagonal, or SuperLU's incomplete LU with no fill beyond A's pattern size.

    ILU keeps the natural ordering and no pivoting (``drop_tol=0``, ``fill_factor=1``), the
    closest SciPy offers to the ILU(0) of PETSc that SKR's experiments use.
    """
    if kind == "none":
        return None
    if kind == "jacobi":
        return sp.diags(1.0 / A.diagonal())
    if kind == "ilu":
        factor = spla.spilu(A.tocsc(), drop_tol=0.0, fill_factor=1.0, permc_spec="NATURAL", diag_pivot_thresh=0.0)
        return spla.LinearOperator(A.shape, matvec=factor.solve, dtype=A.dtype)
    raise ConfigError(f"data.problem.linear_solver.preconditioner: expected one of {PRECONDITIONERS}, got {kind!r}")


class SolverError(PdeopError):
    """An iterative solve stopped short of its tolerance; the data would be wrong."""


@dataclass(frozen=True)
class LinearSolver:
    """How to solve a problem's linear systems.

    ``tol`` is the relative residual ``||b - A x|| / ||b||``; ``restart`` and ``recycle`` are
    GMRES/GCRO-DR's m and k (SKR's defaults 40 and 20); ``sort`` orders a batch for recycling,
    in groups of ``group_size`` for large batches.
    """

    method: str = "direct"
    preconditioner: str = "none"
    tol: float = 1e-8
    restart: int = 40
    recycle: int = 20
    sort: bool = True
    group_size: int = 1000
    max_iterations: int = 20000

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"data.problem.linear_solver.method: expected one of {METHODS}, got {self.method!r}")
        if self.preconditioner not in PRECONDITIONERS:
            raise ConfigError(
                f"data.problem.linear_solver.preconditioner: expected one of {PRECONDITIONERS}, "
                f"got {self.preconditioner!r}")
        if not 0 < self.tol < 1:
            raise ConfigError(f"data.problem.linear_solver.tol: expected a relative tolerance in (0, 1), "
                              f"got {self.tol}")
        if self.method == "cg" and self.preconditioner == "ilu":
            raise ConfigError("data.problem.linear_solver.preconditioner: CG needs a symmetric positive definite "
                              "preconditioner and SuperLU's incomplete LU is not symmetric; use none or jacobi with CG")
        if self.method == "gcrodr" and not 0 < self.recycle < self.restart:
            raise ConfigError(f"data.problem.linear_solver.recycle: expected 0 < recycle < restart = {self.restart}, "
                              f"got {self.recycle}")

    def params(self) -> dict:
        """What determines the solutions (the direct solve has no parameters worth recording)."""
        return {"method": "direct"} if self.method == "direct" else asdict(self)

    def solve_all(self, matrices: Sequence[sp.spmatrix], rhs: Sequence[np.ndarray],
                  features: np.ndarray) -> tuple[list[np.ndarray], list[KrylovResult | None]]:
        """Solve every system; returns solutions and per-system costs, in the input order.

        ``features`` (one parameter field per system) drive the SKR ordering.
        """
        n = len(matrices)
        if self.method == "direct":
            return [spla.spsolve(A.tocsc(), b) for A, b in zip(matrices, rhs)], [None] * n
        order = grouped_order(features, self.group_size) if self.method == "gcrodr" and self.sort else np.arange(n)
        recycler = (GCRODR(self.restart, self.recycle, self.tol, self.max_iterations) if self.method == "gcrodr"
                    else None)
        solutions: list[np.ndarray | None] = [None] * n
        costs: list[KrylovResult | None] = [None] * n
        for i in order:
            A, b = matrices[i], rhs[i]
            M = make_preconditioner(self.preconditioner, A)
            if recycler is not None:
                result = recycler.solve(A, b, M=M)
            elif self.method == "gmres":
                result = gmres(A, b, self.restart, self.tol, self.max_iterations, M=M)
            else:
                result = conjugate_gradient(A, b, self.tol, self.max_iterations, M=M)
            if not result.converged:
                raise SolverError(
                    f"data.problem.linear_solver: {self.method} with {self.preconditioner} preconditioning reached "
                    f"relative residual {result.relative_residual:.2e} after {result.iterations} iterations, above "
                    f"tol={self.tol}; raise data.problem.linear_solver.max_iterations or use another method")
            solutions[i], costs[i] = result.x, result
        return solutions, costs
