"""Krylov solvers against the direct solve, subspace recycling, and the SKR ordering."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve

from pdeop.errors import ConfigError
from pdeop.linalg import (
    GCRODR,
    LinearSolver,
    conjugate_gradient,
    gmres,
    greedy_order,
    grouped_order,
    make_preconditioner,
    tour_length,
)
from pdeop.linalg.solver import SolverError
from pdeop.problems.darcy import Darcy, darcy_matrix


def darcy_systems(count, resolution=26, seed=0):
    coefficients = Darcy(resolution=resolution).sample_inputs(count, np.random.default_rng(seed))[:, 0]
    return coefficients, [darcy_matrix(a) for a in coefficients]


def convection_diffusion(n=24, velocity=20.0):
    """A nonsymmetric test matrix: -Laplacian + velocity d/dx, upwinded, on an n x n interior grid."""
    h = 1.0 / (n + 1)
    one = sp.identity(n)
    second = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(n, n)) / h**2
    first = sp.diags([-1.0, 1.0], [-1, 0], shape=(n, n)) / h
    return (sp.kron(one, second) + sp.kron(second, one) + velocity * sp.kron(one, first)).tocsr()


@pytest.mark.parametrize("preconditioner", ["none", "jacobi", "ilu"])
def test_iterative_solvers_reach_the_direct_solution(preconditioner):
    _, matrices = darcy_systems(2)
    b = np.random.default_rng(1).standard_normal(matrices[0].shape[0])
    recycler = GCRODR(restart=30, recycle=10, tol=1e-10)
    for A in [*matrices, convection_diffusion()]:
        b = np.resize(b, A.shape[0])
        exact = spsolve(A.tocsc(), b)
        M = make_preconditioner(preconditioner, A)
        results = [gmres(A, b, restart=30, tol=1e-10, M=M), recycler.solve(A, b, M=M)]
        if preconditioner != "ilu" and abs(A - A.T).max() == 0:
            results.append(conjugate_gradient(A, b, tol=1e-10, M=M))
        for result in results:
            assert result.converged and result.iterations > 0
            assert np.linalg.norm(result.x - exact) <= 1e-7 * np.linalg.norm(exact)


def test_recycled_subspace_cuts_iterations_on_a_repeated_operator():
    _, (A, _) = darcy_systems(2)
    rng = np.random.default_rng(2)
    recycler = GCRODR(restart=30, recycle=10, tol=1e-8)
    first = recycler.solve(A, rng.standard_normal(A.shape[0]))
    second = recycler.solve(A, rng.standard_normal(A.shape[0]))
    assert second.iterations < 0.7 * first.iterations, (first.iterations, second.iterations)
    recycler.reset()
    assert recycler.solve(A, rng.standard_normal(A.shape[0])).iterations > 0.9 * first.iterations


def test_greedy_order_is_a_permutation_that_shortens_the_tour():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((5, 8, 8)) * 10
    features = centres[rng.integers(0, 5, 60)] + rng.standard_normal((60, 8, 8))
    identity = np.arange(60)
    for order in (greedy_order(features), grouped_order(features, group_size=20)):
        assert sorted(order) == list(identity)
        assert tour_length(features, order) < 0.5 * tour_length(features, identity)
    assert greedy_order(features)[0] == 0


def test_linear_solver_returns_solutions_in_input_order():
    coefficients, matrices = darcy_systems(6)
    rhs = [np.ones(A.shape[0]) for A in matrices]
    direct, _ = LinearSolver().solve_all(matrices, rhs, coefficients)
    solutions, costs = LinearSolver(method="gcrodr", restart=30, recycle=10, tol=1e-10).solve_all(matrices, rhs,
                                                                                                  coefficients)
    for u, v, cost in zip(direct, solutions, costs):
        assert np.linalg.norm(u - v) <= 1e-7 * np.linalg.norm(u) and cost.iterations > 0


def test_linear_solver_rejects_bad_settings_and_reports_a_short_solve():
    with pytest.raises(ConfigError, match="linear_solver.method"):
        LinearSolver(method="bicg")
    with pytest.raises(ConfigError, match="CG needs a symmetric"):
        LinearSolver(method="cg", preconditioner="ilu")
    with pytest.raises(ConfigError, match="linear_solver.recycle"):
        LinearSolver(method="gcrodr", restart=20, recycle=20)
    coefficients, matrices = darcy_systems(1)
    with pytest.raises(SolverError, match="after 5 iterations"):
        LinearSolver(method="gmres", max_iterations=5).solve_all(matrices, [np.ones(matrices[0].shape[0])],
                                                                 coefficients)
