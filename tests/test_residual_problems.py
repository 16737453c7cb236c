"""Residual problems: exact solutions solve them, sources match hand-derived formulas, points lie where they should."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pdeop.data.collocation import CollocationDataModule, CollocationDraws, StepSampler
from pdeop.errors import ConfigError
from pdeop.problems import Advection1D, AllenCahn1D, Darcy, DarcyInstance, Helmholtz2D, Poisson1D, Poisson2D
from pdeop.problems.darcy import solve_darcy
from pdeop.problems.residual import autograd_derivatives
from pdeop.training.losses import check_weights

PI = math.pi

# each problem with its source term derived by hand from the exact solution
HAND_SOURCES = [
    (Poisson1D(solution="sin100x"), lambda x: -1e4 * torch.sin(100 * x[:, 0])),
    (Poisson1D(solution="sin6x_cos100x"), lambda x: -10036 * torch.sin(6 * x[:, 0]) * torch.cos(100 * x[:, 0])
     - 1200 * torch.cos(6 * x[:, 0]) * torch.sin(100 * x[:, 0])),
    (Poisson1D(solution="x_sin200x"), lambda x: 400 * torch.cos(200 * x[:, 0])
     - 4e4 * x[:, 0] * torch.sin(200 * x[:, 0])),
    (Poisson1D(solution="sin500x_quadratic", domain=[[0.0, 1.0]]), lambda x: -2.5e5 * torch.sin(500 * x[:, 0]) - 4),
    (AllenCahn1D(), lambda x: -1e4 * torch.sin(100 * x[:, 0])
     + torch.sin(100 * x[:, 0]) * (torch.sin(100 * x[:, 0]) ** 2 - 1)),
    (Poisson2D(), lambda x: -2e4 * torch.sin(100 * x[:, 0]) * torch.sin(100 * x[:, 1])),
    (Helmholtz2D(), lambda x: (1 - 17 * PI ** 2) * torch.sin(4 * PI * x[:, 1]) * torch.sin(PI * x[:, 0])),
    (Advection1D(beta=200.0), lambda x: torch.zeros(len(x), dtype=x.dtype)),
]


@pytest.mark.parametrize("problem,source", HAND_SOURCES, ids=lambda p: getattr(p, "name", ""))
def test_exact_solution_has_zero_residual_and_the_hand_derived_source(problem, source):
    x = problem.sample_interior(200, torch.Generator().manual_seed(1), torch.float64)
    f = source(x)
    scale = f.abs().max().clamp(min=1.0)
    assert torch.allclose(problem.source(x), f, rtol=0, atol=1e-10 * scale)
    exact = autograd_derivatives(problem.exact, x, problem.orders)
    assert problem.residual(x, exact).abs().max() <= 1e-10 * scale
    # a solution off by a small smooth bump leaves a residual: the check can fail
    bumped = autograd_derivatives(lambda p: problem.exact(p) + 0.01 * torch.sin(p.sum(dim=1)), x, problem.orders)
    assert problem.residual(x, bumped).abs().max() > 1e-4


def test_interior_and_boundary_points_lie_in_the_box_and_on_its_faces():
    problem = Helmholtz2D()
    generator = torch.Generator().manual_seed(0)
    inside = problem.sample_interior(1000, generator)
    assert inside.min() >= -1 and inside.max() <= 1 and inside.std() > 0.5
    edge = problem.sample_boundary(1000, generator)
    on_face = (edge.abs() == 1).any(dim=1)
    assert on_face.all()
    # shared evenly among the four faces (x = -1, x = 1, y = -1, y = 1)
    counts = [int((edge[:, axis] == side).sum()) for axis in (0, 1) for side in (-1.0, 1.0)]
    assert counts == [250, 250, 250, 250]
    assert torch.allclose(problem.boundary_values(edge), problem.exact(edge))


def test_reference_is_the_exact_solution_on_the_test_grid():
    problem = Helmholtz2D(test_points=[30, 40])
    axes = problem.test_axes()
    assert [len(a) for a in axes] == [30, 40] and float(axes[0][0]) == -1.0 and float(axes[1][-1]) == 1.0
    reference = problem.reference(axes)
    i, j = 7, 33
    assert reference[i, j] == pytest.approx(math.sin(4 * PI * float(axes[1][j])) * math.sin(PI * float(axes[0][i])))


def test_darcy_instance_draws_the_foundation_coefficient_and_its_finite_difference_solution():
    instance = DarcyInstance(resolution=33, seed=3, test_points=33)
    coefficient = Darcy(resolution=33).sample_inputs(1, np.random.default_rng(3))[0, 0]
    assert np.array_equal(instance.coefficient.numpy(), coefficient)
    assert set(np.unique(coefficient)) == {3.0, 12.0}
    reference = instance.reference(instance.test_axes())
    assert torch.allclose(reference, torch.from_numpy(solve_darcy(coefficient)), atol=1e-12)
    edge = instance.sample_boundary(8, torch.Generator().manual_seed(0), torch.float64)
    assert (instance.boundary_values(edge) == 0).all()


def test_darcy_operator_on_a_constant_coefficient_is_the_scaled_laplacian():
    instance = DarcyInstance(resolution=17, a_high=5.0, a_low=5.0, test_points=17)
    x = instance.sample_interior(50, torch.Generator().manual_seed(0), torch.float64)
    u = autograd_derivatives(lambda p: torch.sin(PI * p[:, 0]) * torch.sin(2 * PI * p[:, 1]), x, instance.orders)
    expected = 5 * 5 * PI ** 2 * torch.sin(PI * x[:, 0]) * torch.sin(2 * PI * x[:, 1])
    assert torch.allclose(instance.operator(x, u), expected, atol=1e-9)
    assert torch.allclose(instance.residual(x, u), expected - 1.0, atol=1e-9)


def test_darcy_operator_on_a_linear_coefficient_is_the_hand_derived_divergence():
    # a = 1 + 2x + 3y on the nodes (axis 0 is x) is its own bilinear interpolant; with u = x^2 y:
    # -div(a grad u) = -(a u_xx + a u_yy + a_x u_x + a_y u_y) = -((1 + 2x + 3y) 2y + 2 (2xy) + 3 x^2)
    instance = DarcyInstance(resolution=17, test_points=17)
    nodes = torch.linspace(0, 1, 17, dtype=torch.float64)
    instance.__dict__["coefficient"] = 1 + 2 * nodes[:, None] + 3 * nodes[None, :]  # the cached draw, replaced
    x = instance.sample_interior(50, torch.Generator().manual_seed(0), torch.float64)
    u = autograd_derivatives(lambda p: p[:, 0] ** 2 * p[:, 1], x, instance.orders)
    px, py = x[:, 0], x[:, 1]
    expected = -((1 + 2 * px + 3 * py) * 2 * py + 2 * 2 * px * py + 3 * px ** 2)
    torch.testing.assert_close(instance.operator(x, u), expected)


def test_collocation_points_are_redrawn_every_step_and_repeat_for_the_same_step():
    draws = CollocationDraws(Poisson2D(), n_interior=64, n_boundary=16, seed=0)
    assert torch.equal(draws[5]["interior"], draws[5]["interior"])
    assert not torch.equal(draws[5]["interior"], draws[6]["interior"])
    largest = CollocationDraws(Poisson2D(), n_interior=64, n_boundary=16, seed=2 ** 32 - 1)  # overflowed torch's seed
    assert not torch.equal(largest[5]["interior"], largest[6]["interior"])
    assert torch.equal(draws[5]["interior"], CollocationDraws(Poisson2D(), 64, 16, seed=0)[5]["interior"])
    sampler = StepSampler(steps=4, resample=True)
    sampler.set_epoch(2)
    assert list(sampler) == [8, 9, 10, 11]
    assert list(StepSampler(steps=3, resample=False)) == [0, 0, 0]
    assert list(StepSampler(steps=2, resample=True, rank=1))[0] != 0


@pytest.mark.parametrize("make,message", [
    (lambda: Poisson1D(solution="sin7x"), "data.problem.solution: expected one of"),
    (lambda: Poisson1D(domain=[[1.0, 0.0]]), "data.problem.domain: the x interval must have low < high"),
    (lambda: Helmholtz2D(domain=[[0.0, 1.0]]), "data.problem.domain: expected 2 \\[low, high\\] pair"),
    (lambda: Poisson2D(test_points=[10, 10, 10]), "data.problem.test_points"),
    (lambda: CollocationDataModule(Darcy(resolution=9)), "data.problem: Darcy is not posed by a residual"),
    (lambda: CollocationDataModule(Poisson1D(), n_interior=0), "data.n_interior: expected a count >= 1"),
    (lambda: CollocationDataModule(Helmholtz2D(), n_boundary=3),
     r"data.n_boundary: expected at least 4, one point on each face of the 2-D box, got 3"),
    (lambda: Poisson1D(domain=[[0.0, math.inf]]),
     r"data.problem.domain: the x interval must be finite, got \[0.0, inf\]"),
    (lambda: check_weights(math.nan, 1.0), "loss.residual_weight: expected a finite weight >= 0, got nan"),
    (lambda: check_weights(0.0, 0.0), "loss.residual_weight, loss.boundary_weight: both are 0"),
])
def test_bad_problem_settings_name_the_key(make, message):
    with pytest.raises(ConfigError, match=message):
        make()

