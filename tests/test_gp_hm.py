"""GP-HM (Fang et al., ICLR 2024) and its Kronecker algebra: covariance, solves, derivatives, gradients,
prediction and settings checks, on tiny float64 grids."""


import pytest
import torch

from pdeop.errors import ConfigError
from pdeop.linalg import KroneckerCholesky, kron_matvec
from pdeop.models.gp_hm import GPHM, spectral_mixture

F64 = torch.float64


def dense_kron(factors):
    out = factors[0]
    for factor in factors[1:]:
        out = torch.kron(out, factor)
    return out


def random_spd(n, generator):
    a = torch.randn(n, n, dtype=F64, generator=generator)
    return a @ a.T / n + 0.1 * torch.eye(n, dtype=F64)


def randomised(model, seed=0):
    """Move the parameters off their symmetric initial values (zero frequency, equal weights)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, dtype=F64, generator=generator))
    return model


def test_covariance_is_the_kronecker_product_of_the_axis_kernels():
    model = randomised(GPHM([[0.0, 1.0], [-1.0, 2.0]], [4, 5], components=3, max_frequency=2.0))
    factors = [k - model.jitter * torch.eye(len(k), dtype=F64) for k in model.axis_covariances()]
    covariance = dense_kron(factors)
    points = model.grid_points()
    pointwise = torch.ones(20, 20, dtype=F64)
    for axis in range(2):
        d = points[:, axis, None] - points[None, :, axis]
        pointwise = pointwise * spectral_mixture(d, model.log_weight[axis], model.log_inverse_lengthscale[axis],
                                                 model.frequency[axis], model.kernel)
    torch.testing.assert_close(covariance, pointwise, rtol=1e-12, atol=1e-12)
    # the grid order of grid_points is that of u.reshape(-1): a dense matvec equals the mode product
    u = torch.randn(4, 5, dtype=F64)
    torch.testing.assert_close(kron_matvec(factors, u).reshape(-1), covariance @ u.reshape(-1))


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4)])
def test_kron_matvec_matches_dense_for_rectangular_factors(shape):
    generator = torch.Generator().manual_seed(1)
    factors = [torch.randn(n + 1, n, dtype=F64, generator=generator) for n in shape]
    x = torch.randn(shape, dtype=F64, generator=generator)
    out = kron_matvec(factors, x)
    assert out.shape == tuple(n + 1 for n in shape)
    torch.testing.assert_close(out.reshape(-1), dense_kron(factors) @ x.reshape(-1))
    identity_first = kron_matvec([None] + factors[1:], x)
    torch.testing.assert_close(identity_first.reshape(-1),
                               dense_kron([torch.eye(shape[0], dtype=F64)] + factors[1:]) @ x.reshape(-1))


@pytest.mark.parametrize("shape", [(4, 5), (3, 4, 2)])
def test_kronecker_solves_and_logdets_match_dense(shape):
    generator = torch.Generator().manual_seed(2)
    factors = [random_spd(n, generator) for n in shape]
    x = torch.randn(shape, dtype=F64, generator=generator)
    jitter = 1e-2
    jittered = [k + jitter * torch.eye(len(k), dtype=F64) for k in factors]
    dense_jittered = dense_kron(jittered)
    chol = KroneckerCholesky(jittered)
    torch.testing.assert_close(chol.solve(x).reshape(-1), torch.linalg.solve(dense_jittered, x.reshape(-1)))
    torch.testing.assert_close(chol.logdet(), torch.linalg.slogdet(dense_jittered).logabsdet)
    torch.testing.assert_close(chol.inv_quad(x), x.reshape(-1) @ torch.linalg.solve(dense_jittered, x.reshape(-1)))


def test_kronecker_gradients_match_dense():
    generator = torch.Generator().manual_seed(3)
    factors = [random_spd(n, generator).requires_grad_() for n in (3, 4)]
    x = torch.randn(3, 4, dtype=F64, generator=generator)
    op, dense = KroneckerCholesky(factors), dense_kron(factors)
    structured = torch.autograd.grad(op.logdet() + op.inv_quad(x), factors)
    reference = torch.autograd.grad(torch.linalg.slogdet(dense).logabsdet
                                    + x.reshape(-1) @ torch.linalg.solve(dense, x.reshape(-1)), factors)
    for a, b in zip(structured, reference):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kernel", ["student_t", "gaussian"])
def test_kernel_derivatives_match_autograd_and_finite_differences(kernel):
    generator = torch.Generator().manual_seed(4)
    params = [torch.randn(3, dtype=F64, generator=generator) * 0.3 for _ in range(2)] + \
        [torch.tensor([0.0, 1.0, 2.5], dtype=F64)]
    d = torch.tensor([-0.7, -0.2, 0.3, 1.1], dtype=F64, requires_grad=True)
    k = spectral_mixture(d, *params, kernel)
    first = torch.autograd.grad(k.sum(), d, create_graph=True)[0]
    second = torch.autograd.grad(first.sum(), d)[0]
    torch.testing.assert_close(spectral_mixture(d, *params, kernel, order=1), first)
    torch.testing.assert_close(spectral_mixture(d, *params, kernel, order=2), second)
    h = 1e-4  # at d = 0, where |d| is not differentiable by autograd: central differences
    at = torch.tensor([-h, 0.0, h], dtype=F64)
    values = spectral_mixture(at, *params, kernel)
    assert abs(spectral_mixture(at[1:2], *params, kernel, order=1).item()) < 1e-12
    torch.testing.assert_close(spectral_mixture(at[1:2], *params, kernel, order=2),
                               ((values[0] - 2 * values[1] + values[2]) / h**2).reshape(1), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kernel", ["student_t", "gaussian"])
def test_grid_derivatives_approximate_a_smooth_function(kernel):
    """sin(3x) sin(2y) on a 41 x 33 grid, the kernel's frequencies below the grid's Nyquist frequency:
    every derivative within 3% of its maximum at nodes four or more steps from the boundary."""
    model = GPHM([[0.0, 2.0], [0.0, 1.5]], [41, 33], kernel=kernel, max_frequency=5.0)
    x, y = torch.meshgrid(*model.grid_axes(), indexing="ij")
    sx, sy, cx, cy = torch.sin(3 * x), torch.sin(2 * y), torch.cos(3 * x), torch.cos(2 * y)
    with torch.no_grad():
        model.u.copy_(sx * sy)
    exact = {(): sx * sy, (0,): 3 * cx * sy, (1,): 2 * sx * cy, (0, 0): -9 * sx * sy, (1, 1): -4 * sx * sy,
             (0, 1): 6 * cx * cy}
    derivatives = model.grid_derivatives(list(exact))
    inner = (slice(4, -4), slice(4, -4))
    for order, expected in exact.items():
        error = (derivatives[order].reshape(x.shape) - expected)[inner].abs().max() / expected.abs().max()
        assert error < 3e-2, (order, error.item())


def test_grid_derivatives_are_derivatives_of_the_posterior_mean():
    """Up to the jitter: as in the reference code, axes not differentiated take u as it is rather than the
    smoothed K (K + jI)^{-1} u, so the two differ by O(jitter)."""
    jitter = 1e-9
    model = randomised(GPHM([[0.0, 1.0], [0.0, 2.0]], [7, 9], kernel="gaussian", components=4, max_frequency=2.0,
                            jitter=jitter))
    points = model.grid_points().clone().requires_grad_()
    mean = model(points)
    gradient = torch.autograd.grad(mean.sum(), points, create_graph=True)[0]
    hessian = [torch.autograd.grad(gradient[:, axis].sum(), points, retain_graph=True)[0] for axis in range(2)]
    derivatives = model.grid_derivatives([(0,), (1,), (0, 0), (0, 1), (1, 1)])
    for order, expected in {(0,): gradient[:, 0], (1,): gradient[:, 1], (0, 0): hessian[0][:, 0],
                            (0, 1): hessian[0][:, 1], (1, 1): hessian[1][:, 1]}.items():
        error = (derivatives[order] - expected).abs().max() / expected.abs().max()
        assert error < 100 * jitter, (order, error.item())


@pytest.mark.parametrize("kernel", ["student_t", "gaussian"])
def test_every_parameter_gets_a_finite_nonzero_gradient(kernel):
    model = randomised(GPHM([[0.0, 1.0], [0.0, 1.0]], [6, 7], kernel=kernel, components=5))
    derivatives = model.grid_derivatives([(), (0, 0), (1, 1)])
    mask = model.boundary_mask()
    residual = derivatives[(0, 0)] + derivatives[(1, 1)] - 1.0
    loss = model.regulariser() + 200 * model.boundary_nll(derivatives[()][mask] - 0.5) + model.residual_nll(residual)
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.dtype == F64, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_regulariser_is_the_dense_negative_log_likelihood():
    model = randomised(GPHM([[0.0, 1.0], [0.0, 1.0]], [5, 4], components=3, max_frequency=3.0))
    dense = dense_kron(model.axis_covariances())
    u = model.u.reshape(-1)
    expected = 0.5 * (torch.linalg.slogdet(dense).logabsdet + u @ torch.linalg.solve(dense, u))
    torch.testing.assert_close(model.regulariser(), expected)


def test_grid_boundary_and_initial_state():
    model = GPHM([[0.0, 2.0], [-1.0, 1.0]], [5, 4])
    x, y = model.grid_axes()
    torch.testing.assert_close(x, torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0], dtype=F64))
    assert y[0] == -1.0 and y[-1] == 1.0
    points = model.grid_points()
    assert points.shape == (20, 2) and torch.equal(points[1], torch.tensor([0.0, y[1].item()], dtype=F64))
    mask = model.boundary_mask()
    on_edge = (points[:, 0] == 0) | (points[:, 0] == 2) | (points[:, 1] == -1) | (points[:, 1] == 1)
    assert torch.equal(mask, on_edge) and mask.sum() == 14
    assert torch.equal(model.u, torch.zeros(5, 4, dtype=F64))
    torch.testing.assert_close(model.frequency[1], torch.linspace(0, 20, 30, dtype=F64))
    torch.testing.assert_close(model.log_weight.exp().sum(1), torch.ones(2, dtype=F64))


@pytest.mark.parametrize("kernel", ["student_t", "gaussian"])
def test_prediction_interpolates_and_grid_prediction_matches_pointwise(kernel):
    model = GPHM([[0.0, 1.0], [0.0, 2.0]], [12, 15], kernel=kernel, max_frequency=3.0)
    points = model.grid_points()
    with torch.no_grad():
        model.u.copy_((torch.sin(4 * points[:, 0]) * torch.cos(points[:, 1])).reshape(12, 15))
        torch.testing.assert_close(model(points.float()), model.u.reshape(-1), rtol=0, atol=1e-3)
        axes = [torch.linspace(-0.1, 1.1, 7, dtype=F64), torch.linspace(0.3, 1.7, 5, dtype=F64)]
        grid = model.predict_grid(axes)
        assert grid.shape == (7, 5)
        meshed = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
        torch.testing.assert_close(grid.reshape(-1), model(meshed), rtol=1e-10, atol=1e-10)


def test_three_axes():
    model = randomised(GPHM([[0.0, 1.0]] * 3, [4, 3, 5], components=2))
    assert model.grid_derivatives([(0, 2)])[(0, 2)].shape == (60,)
    with torch.no_grad():
        torch.testing.assert_close(model.predict_grid(model.grid_axes()).reshape(-1), model(model.grid_points()))


@pytest.mark.parametrize("kwargs, argument", [
    ({"kernel": "matern"}, "model.kernel"),
    ({"points": 2}, "model.points"),
    ({"points": [5, 5, 5]}, "model.points"),
    ({"domain": [[1.0, 1.0], [0.0, 1.0]]}, "model.domain"),
    ({"domain": [[0.0, 1.0, 2.0]]}, "model.domain"),
    ({"components": 0}, "model.components"),
    ({"max_frequency": -1.0}, "model.max_frequency"),
    ({"jitter": 0.0}, "model.jitter"),
])
def test_bad_settings_raise_config_error_naming_the_argument(kwargs, argument):
    settings = {"domain": [[0.0, 1.0], [0.0, 1.0]], "points": 5} | kwargs
    with pytest.raises(ConfigError, match=argument):
        GPHM(**settings)


def test_bad_derivative_orders_are_refused():
    model = GPHM([[0.0, 1.0], [0.0, 1.0]], 5)
    for order in [(1, 0), (2,), (0, 0, 0)]:
        with pytest.raises(ValueError, match="order"):
            model.grid_derivatives([order])
