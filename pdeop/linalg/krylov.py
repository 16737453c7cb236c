"""Restarted Krylov solvers for sparse systems: GMRES(m) and GCRO-DR(m, k) with a recycled subspace.

Both are right-preconditioned (``A M z = b``, ``x = M z``), so the stopping test is on the true
residual ``||b - A x|| <= tol ||b||`` whatever the preconditioner. Arnoldi uses classical
Gram-Schmidt applied twice (one BLAS matrix product per pass instead of a Python loop over
vectors), which is as stable as modified Gram-Schmidt for these sizes.

GCRO-DR: Parks, de Sturler, Mackey, Johnson, Maiti, "Recycling Krylov subspaces for sequences of
linear systems", SIAM J. Sci. Comput. 28 (2006). Its recycled subspace ``U`` (k vectors) is kept
between calls, so solving a sequence of similar systems with one ``GCRODR`` instance reuses the
harmonic Ritz vectors of the previous system: the solver of Wang et al., "Accelerating Data
Generation for Neural Operators via Krylov Subspace Recycling" (SKR), ICLR 2024.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.linalg as la
import scipy.sparse.linalg as spla

Operator = Callable[[np.ndarray], np.ndarray]


@dataclass
class KrylovResult:
    """A solution with its cost: Krylov iterations (Arnoldi steps) and all products with A."""

    x: np.ndarray
    iterations: int
    matvecs: int
    converged: bool
    relative_residual: float


def _orthogonalise(w: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove from ``w`` its components along the orthonormal columns of ``basis`` (CGS2)."""
    h = basis.T @ w
    w = w - basis @ h
    correction = basis.T @ w
    return w - basis @ correction, h + correction


def arnoldi(op: Operator, v0: np.ndarray, steps: int, C: np.ndarray | None = None, stop_norm: float = 0.0):
    """Arnoldi on ``(I - C C^T) op`` from ``v0``; returns ``W = [C V]`` (n x k+p+1), ``Hbar`` (p+1 x p), ``B`` (k x p),
    ``p``.

    ``(I - C C^T) op V[:, :p] = V Hbar`` and ``C^T op V[:, :p] = B``. ``W`` is column-major and
    each new vector is orthogonalised against all of it at once (two BLAS passes). It stops
    early after step p when the least-squares residual of a GMRES step with right-hand side
    ``||v0|| e1`` falls below ``stop_norm`` or the space becomes invariant.
    """
    n = v0.size
    k = 0 if C is None else C.shape[1]
    beta = np.linalg.norm(v0)
    W = np.empty((n, k + steps + 1), order="F")
    if k:
        W[:, :k] = C
    H = np.zeros((steps + 1, steps))
    B = np.zeros((k, steps))
    W[:, k] = v0 / beta
    givens: list[tuple[float, float]] = []
    g = np.zeros(steps + 1)
    g[0] = beta
    for j in range(steps):
        w, h = _orthogonalise(op(W[:, k + j]), W[:, : k + j + 1])
        B[:, j], H[: j + 1, j] = h[:k], h[k:]
        H[j + 1, j] = np.linalg.norm(w)
        # progressive QR of Hbar (Givens rotations) gives the GMRES residual without solving
        column = H[: j + 2, j].copy()
        for i, (c, s) in enumerate(givens):
            column[i], column[i + 1] = c * column[i] + s * column[i + 1], -s * column[i] + c * column[i + 1]
        radius = np.hypot(column[j], column[j + 1])
        c, s = (1.0, 0.0) if radius == 0 else (column[j] / radius, column[j + 1] / radius)
        givens.append((c, s))
        g[j], g[j + 1] = c * g[j], -s * g[j]
        breakdown = H[j + 1, j] <= 1e-14 * beta
        if not breakdown:
            W[:, k + j + 1] = w / H[j + 1, j]
        if abs(g[j + 1]) <= stop_norm or breakdown:
            return W[:, : k + j + 2], H[: j + 2, : j + 1], B[:, : j + 1], j + 1
    return W, H, B, steps


def _preconditioned(A, M) -> Operator:
    if M is None:
        return lambda v: A @ v
    return lambda v: A @ (M @ v)


def gmres(A, b: np.ndarray, restart: int = 40, tol: float = 1e-8, max_iterations: int = 20000,
          M=None) -> KrylovResult:
    """GMRES(restart) from a zero initial guess, right-preconditioned by ``M`` (a matrix or LinearOperator)."""
    op = _preconditioned(A, M)
    target = tol * np.linalg.norm(b)
    z = np.zeros_like(b)
    r = b.copy()
    iterations = 0
    while np.linalg.norm(r) > target and iterations < max_iterations:
        step, r, _, _, p = _gmres_cycle(op, r, min(restart, max_iterations - iterations), target)
        z += step
        iterations += p
    return _finish(A, b, M, z, iterations, iterations, tol)


def _gmres_cycle(op: Operator, r: np.ndarray, steps: int, target: float):
    """One GMRES cycle from residual ``r``: the update, the new residual, ``V``, ``Hbar`` and the step count."""
    V, H, _, p = arnoldi(op, r, steps, stop_norm=target)
    rhs = np.zeros(p + 1)
    rhs[0] = np.linalg.norm(r)
    y = la.lstsq(H, rhs)[0]
    return V[:, :p] @ y, r - V @ (H @ y), V, H, p


def _finish(A, b, M, z, iterations, matvecs, tol) -> KrylovResult:
    x = z if M is None else M @ z
    relative = float(np.linalg.norm(b - A @ x) / np.linalg.norm(b))
    # the updated residual drifts from the true one by rounding; allow a small margin
    return KrylovResult(x, iterations, matvecs + 1, relative <= 1.01 * tol, relative)


def _real_invariant_basis(vectors: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """A real basis of the span of the eigenvectors with the ``k`` smallest ``|values|``.

    A complex eigenvector contributes its real and imaginary parts, and its conjugate partner
    is then skipped, so the span is real and holds at least the k wanted directions.
    """
    finite = np.isfinite(values)
    order = [i for i in np.argsort(np.where(finite, np.abs(values), np.inf)) if finite[i]]
    columns: list[np.ndarray] = []
    used = set()
    for i in order:
        if len(columns) >= k:
            break
        if i in used:
            continue
        v = vectors[:, i]
        if abs(values[i].imag) > 1e-12 * max(abs(values[i]), 1e-300):
            columns += [v.real, v.imag]
            partner = min((j for j in order if j not in used and j != i),
                          key=lambda j: abs(values[j] - values[i].conj()), default=None)
            if partner is not None:
                used.add(partner)
        else:
            columns.append(v.real)
        used.add(i)
    P, _ = np.linalg.qr(np.column_stack(columns))
    return P


class GCRODR:
    """GCRO-DR(m, k): restarted GMRES that deflates and recycles a k-dimensional subspace.

    The recycled space ``U`` (with ``C = A M U`` orthonormal) persists across ``solve`` calls;
    the first call seeds it from one GMRES(m) cycle. ``reset()`` forgets it.
    """

    def __init__(self, restart: int = 40, recycle: int = 20, tol: float = 1e-8, max_iterations: int = 20000):
        if not 0 < recycle < restart:
            raise ValueError(f"GCRO-DR needs 0 < recycle < restart, got recycle={recycle}, restart={restart}")
        self.restart, self.recycle, self.tol, self.max_iterations = restart, recycle, tol, max_iterations
        self.U: np.ndarray | None = None

    def reset(self) -> None:
        self.U = None

    def solve(self, A, b: np.ndarray, M=None) -> KrylovResult:
        op = _preconditioned(A, M)
        m, k = self.restart, self.recycle
        target = self.tol * np.linalg.norm(b)
        z = np.zeros_like(b)
        r = b.copy()
        iterations = matvecs = 0
        C = U = None
        if self.U is not None:
            AU = np.column_stack([op(u) for u in self.U.T])
            matvecs += self.U.shape[1]
            Q, R = np.linalg.qr(AU)
            C, U = Q, self.U @ la.solve_triangular(R, np.eye(R.shape[0]))  # U R^-1, so that op U = C
            z += U @ (C.T @ r)
            r = r - C @ (C.T @ r)
        while np.linalg.norm(r) > target and iterations < self.max_iterations:
            if C is None:  # no recycled space yet: GMRES cycles until one is long enough to seed it
                step, r, V, H, p = _gmres_cycle(op, r, min(m, self.max_iterations - iterations), target)
                z += step
                iterations += p
                if p > k:
                    C, U = self._harmonic_ritz_from_gmres(V, H, k)
                continue
            kk = C.shape[1]
            W, H, Bm, p = arnoldi(op, r, min(m - kk, self.max_iterations - iterations), C=C, stop_norm=target)
            iterations += p
            V = W[:, kk:]
            scale = 1.0 / np.linalg.norm(U, axis=0)
            U_scaled = U * scale
            G = np.zeros((kk + p + 1, kk + p))
            G[:kk, :kk] = np.diag(scale)
            G[:kk, kk:] = Bm
            G[kk:, kk:] = H
            rhs = np.zeros(kk + p + 1)
            rhs[kk] = np.linalg.norm(r)
            y = la.lstsq(G, rhs)[0]
            z += U_scaled @ y[:kk] + V[:, :p] @ y[kk:]  # W_hat y with W_hat = [U_scaled, V_p]
            r = r - W @ (G @ y)
            # new recycled space: harmonic Ritz vectors of the deflated operator over W_hat
            WtW_hat = np.zeros((kk + p + 1, kk + p))
            WtW_hat[:, :kk] = W.T @ U_scaled
            WtW_hat[kk:, kk:] = np.eye(p + 1, p)
            values, vectors = la.eig(G.T @ G, G.T @ WtW_hat)
            P = _real_invariant_basis(vectors, values, min(k, kk + p - 1))
            Q, R = np.linalg.qr(G @ P)
            C = W @ Q
            P_over_R = la.solve_triangular(R, P.T, trans="T").T  # P R^-1, so that op U = C
            U = U_scaled @ P_over_R[:kk] + V[:, :p] @ P_over_R[kk:]
        if U is not None:
            self.U = U
        return _finish(A, b, M, z, iterations, iterations + matvecs, self.tol)

    @staticmethod
    def _harmonic_ritz_from_gmres(V: np.ndarray, H: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """C, U from the k harmonic Ritz vectors of a GMRES cycle: ``(H + h^2 H^-T e e^T) g = theta g``."""
        p = H.shape[1]
        square = H[:p, :p]
        e = np.zeros(p)
        e[-1] = 1.0
        f = la.solve(square.T, e)
        values, vectors = la.eig(square + H[p, p - 1] ** 2 * np.outer(f, e))
        P = _real_invariant_basis(vectors, values, k)
        Q, R = np.linalg.qr(H @ P)
        return V @ Q, V[:, :p] @ la.solve_triangular(R, P.T, trans="T").T


def conjugate_gradient(A, b: np.ndarray, tol: float = 1e-8, max_iterations: int = 20000, M=None) -> KrylovResult:
    """SciPy's preconditioned CG (for symmetric positive definite A), with its iterations counted."""
    count = [0]

    def tick(_):
        count[0] += 1

    x, _ = spla.cg(A, b, rtol=tol, atol=0.0, maxiter=max_iterations, M=M, callback=tick)
    relative = float(np.linalg.norm(b - A @ x) / np.linalg.norm(b))
    return KrylovResult(x, count[0], count[0] + 1, relative <= 1.01 * tol, relative)
