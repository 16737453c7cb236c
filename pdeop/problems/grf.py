"""Gaussian random fields for PDE inputs.

``neumann_grf`` draws psi ~ N(0, tau^(2 alpha - 2) (-Laplacian + tau^2 I)^(-alpha)) on the unit
square with Neumann boundary conditions by a cosine expansion, as in the data scripts of
Li et al., "Fourier Neural Operator for Parametric PDEs" (ICLR 2021, GRF.m): the orthonormal
DCT-II coefficient of wavenumber k is ``s * tau^(alpha-1) (pi^2 |k|^2 + tau^2)^(-alpha/2) xi_k``
with xi_k standard normal and the constant mode set to zero.

``periodic_grf`` draws sigma^2 (-Laplacian + tau^2 I)^(-alpha) fields on the periodic unit
interval, square or cube as FNO's ``GaussianRF`` (random_fields.py) does for its Burgers and
Navier-Stokes data: complex standard normal Fourier coefficients scaled by
``s^d sqrt(2) sigma (4 pi^2 |k|^2 + tau^2)^(-alpha/2)``, mean mode zero, real part of the inverse FFT.
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


def periodic_grf(n_samples: int, size: int, dims: int, alpha: float, tau: float, sigma: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Draw ``n_samples`` periodic fields on ``size`` nodes per axis (x = i / size), shape ``[n, size, ...]``."""
    k = np.fft.fftfreq(size, 1.0 / size)
    squared = sum(np.meshgrid(*([k**2] * dims), indexing="ij"))
    std = size**dims * np.sqrt(2.0) * sigma * (4 * np.pi**2 * squared + tau**2) ** (-alpha / 2)
    std.flat[0] = 0.0
    shape = (n_samples, *([size] * dims))
    xi = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    return np.fft.ifftn(std * xi, axes=tuple(range(1, dims + 1))).real
