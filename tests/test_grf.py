"""The Neumann GRF sampler against its target spectrum."""

import numpy as np
from scipy.fft import dctn

from pdeop.problems.grf import neumann_grf, neumann_grf_coefficients


def fitted_exponent(alpha: float, tau: float = 3.0, size: int = 32, n: int = 400) -> float:
    """Fit log Var(coefficient) = c - alpha log(pi^2 |k|^2 + tau^2) to sampled fields' DCT coefficients."""
    fields = neumann_grf(n, size, alpha, tau, np.random.default_rng(0))
    coeffs = dctn(fields, type=2, norm="ortho", axes=(-2, -1))
    variance = (coeffs**2).mean(axis=0) / size**2
    k1, k2 = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    keep = (k1 + k2) > 0
    x = np.log(np.pi**2 * (k1**2 + k2**2) + tau**2)[keep]
    slope, intercept = np.polyfit(x, np.log(variance[keep]), 1)
    assert abs(intercept - 2 * (alpha - 1) * np.log(tau)) < 0.2  # the tau^(alpha - 1) prefactor
    return -slope


def test_spectrum_matches_alpha_2():
    assert abs(fitted_exponent(2.0) - 2.0) < 0.05


def test_estimator_tells_a_wrong_exponent_apart():
    # The same estimator recovers a different exponent, so a sampler with the wrong power would fail above.
    assert abs(fitted_exponent(2.5) - 2.5) < 0.05


def test_constant_mode_is_zero_and_variance_matches_the_expansion():
    size, alpha, tau = 16, 2.0, 3.0
    fields = neumann_grf(2000, size, alpha, tau, np.random.default_rng(3))
    np.testing.assert_allclose(fields.mean(axis=(-2, -1)), 0.0, atol=1e-12)
    # Parseval: the expected squared norm of a field is the sum of its coefficient variances.
    expected = (neumann_grf_coefficients(size, alpha, tau) ** 2).sum()
    assert abs((fields**2).sum(axis=(-2, -1)).mean() / expected - 1) < 0.05


def test_same_seed_same_field():
    a = neumann_grf(2, 16, 2.0, 3.0, np.random.default_rng(7))
    b = neumann_grf(2, 16, 2.0, 3.0, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
