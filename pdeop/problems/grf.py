"""Gaussian random fields for PDE inputs.

``neumann_grf`` draws psi ~ N(0, tau^(2 alpha - 2) (-Laplacian + tau^2 I)^(-alpha)) on the unit
square with Neumann boundary conditions by a cosine expansion, as in the data scripts of
Li et al., "Fourier Neural Operator for Parametric PDEs" (ICLR 2021, GRF.m): the orthonormal
DCT-II coefficient of wavenumber k is ``s * tau^(alpha-1) (pi^2 |k|^2 + tau^2)^(-alpha/2) xi_k``
with xi_k standard normal and the constant mode set to zero.
"""

from __future__ import annotations

import numpy as np
from scipy.fft import idctn


def neumann_grf_coefficients(size: int, alpha: float, tau: float) -> np.ndarray:
    """Standard deviation of each orthonormal DCT-II coefficient, shape ``[size, size]``."""
    k = np.arange(size)
    k1, k2 = np.meshgrid(k, k, indexing="ij")
    coef = tau ** (alpha - 1) * (np.pi**2 * (k1**2 + k2**2) + tau**2) ** (-alpha / 2)
    scaled = size * coef
    scaled[0, 0] = 0.0
    return scaled


def neumann_grf(
    n_samples: int, size: int, alpha: float, tau: float, rng: np.random.Generator
) -> np.ndarray:
    """Draw ``n_samples`` fields on a ``size x size`` grid of the unit square, shape ``[n, size, size]``."""
    std = neumann_grf_coefficients(size, alpha, tau)
    xi = rng.standard_normal((n_samples, size, size))
    return idctn(std * xi, type=2, norm="ortho", axes=(-2, -1))
