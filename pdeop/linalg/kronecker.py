"""Kronecker-structured linear algebra on grid tensors, knowing nothing of PDEs.

A vector indexed by a tensor-product grid is kept as a tensor of shape ``[n_1, ..., n_d]``;
its row-major flattening ``x.reshape(-1)`` is the vector that ``A_1 ⊗ ... ⊗ A_d`` (nested ``torch.kron``)
acts on. Products, solves and log-determinants with ``A_1 ⊗ ... ⊗ A_d`` are done one axis at a time
(mode products), never forming the ``N x N`` matrix, ``N = prod(n_i)``: this is what makes the
grid GP of Fang et al. (ICLR 2024) scale (Saatci, 2012, "Scalable inference for structured
Gaussian process models").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor


def apply_along(x: Tensor, axis: int, fn: Callable[[Tensor], Tensor]) -> Tensor:
    """Apply a matrix map ``fn`` ``[n, k] -> [m, k]`` to every fibre of ``x`` along ``axis``."""
    moved = torch.movedim(x, axis, 0)
    rest = moved.shape[1:]
    out = fn(moved.reshape(moved.shape[0], -1))
    return torch.movedim(out.reshape(out.shape[0], *rest), 0, axis)


def kron_matvec(factors: Sequence[Tensor | None], x: Tensor) -> Tensor:
    """``(A_1 ⊗ ... ⊗ A_d) x`` for a grid tensor ``x`` ``[n_1..n_d]``; ``A_i`` is ``[m_i, n_i]``
    (``None`` for the identity), the result ``[m_1..m_d]``. Cost ``sum_i m_i * prod(sizes)``."""
    if len(factors) != x.dim():
        raise ValueError(f"kron_matvec: {len(factors)} factors for a {x.dim()}-axis tensor")
    for axis, factor in enumerate(factors):
        if factor is not None:
            x = apply_along(x, axis, factor.matmul)
    return x


class KroneckerCholesky:
    """``K_1 ⊗ ... ⊗ K_d`` for symmetric positive definite factors, through their Cholesky factors.

    Used when any jitter is already on each factor (as GP-HM's reference code does): solves and the
    log-determinant then need only the per-axis factors, and their gradients are those of
    ``torch.linalg.cholesky``, well defined for clustered eigenvalues.
    """

    def __init__(self, factors: Sequence[Tensor]):
        self.cholesky = [torch.linalg.cholesky(k) for k in factors]
        self.shape = tuple(k.shape[0] for k in factors)

    def solve(self, x: Tensor) -> Tensor:
        """``(K_1 ⊗ ... ⊗ K_d)^{-1} x`` for a grid tensor ``x``."""
        for axis, chol in enumerate(self.cholesky):
            x = apply_along(x, axis, lambda b, chol=chol: torch.cholesky_solve(b, chol))
        return x

    def solve_factor(self, axis: int, rhs: Tensor) -> Tensor:
        """``K_axis^{-1} rhs`` for a matrix ``rhs`` ``[n_axis, k]``."""
        return torch.cholesky_solve(rhs, self.cholesky[axis])

    def inv_quad(self, x: Tensor) -> Tensor:
        """``x^T (K_1 ⊗ ... ⊗ K_d)^{-1} x`` as ``|(L_1 ⊗ ... ⊗ L_d)^{-1} x|^2``."""
        for axis, chol in enumerate(self.cholesky):
            x = apply_along(x, axis, lambda b, chol=chol: torch.linalg.solve_triangular(chol, b, upper=False))
        return x.square().sum()

    def logdet(self) -> Tensor:
        """``log det(K_1 ⊗ ... ⊗ K_d) = sum_i (N / n_i) log det K_i``."""
        total = math.prod(self.shape)
        return sum((total // n) * 2 * chol.diagonal().log().sum() for n, chol in zip(self.shape, self.cholesky))

