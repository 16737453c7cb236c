"""The Darcy finite-difference solver against a manufactured solution; its "fno" scheme against solve_gwf.m's steps."""

import numpy as np
import pytest
import scipy.sparse.linalg as spla
from scipy.interpolate import CubicSpline

from pdeop.problems.darcy import (
    FACE_MEANS,
    Darcy,
    cell_centres,
    cells_to_nodes,
    darcy_matrix,
    nodes_to_cells,
    solve_darcy,
)
from pdeop.problems.grf import neumann_grf


def manufactured(x: np.ndarray, ky: int = 1):
    """a = 1 + 0.5 sin(2 pi x) cos(pi y) + xy and u = sin(pi x) sin(ky pi y) at the points x x x; f = -div(a grad u).
    ky = 2 makes u unsymmetric, so that a transposed output fails."""
    X, Y = np.meshgrid(x, x, indexing="ij")
    a = 1 + 0.5 * np.sin(2 * np.pi * X) * np.cos(np.pi * Y) + X * Y
    a_x = np.pi * np.cos(2 * np.pi * X) * np.cos(np.pi * Y) + Y
    a_y = -0.5 * np.pi * np.sin(2 * np.pi * X) * np.sin(np.pi * Y) + X
    u = np.sin(np.pi * X) * np.sin(ky * np.pi * Y)
    u_x = np.pi * np.cos(np.pi * X) * np.sin(ky * np.pi * Y)
    u_y = ky * np.pi * np.sin(np.pi * X) * np.cos(ky * np.pi * Y)
    f = -(a_x * u_x + a_y * u_y - (1 + ky**2) * np.pi**2 * a * u)
    return a, f, u


def test_second_order_convergence():
    sizes = [17, 33, 65, 129]
    errors = []
    for s in sizes:
        a, f, u = manufactured(np.linspace(0.0, 1.0, s))
        errors.append(np.abs(solve_darcy(a, f) - u).max())
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(orders > 1.9) and np.all(orders < 2.1), orders
    assert errors[-1] < 1e-4


def test_matrix_is_symmetric_positive_definite_for_a_jumping_coefficient():
    rng = np.random.default_rng(1)
    a = np.where(rng.standard_normal((20, 20)) > 0, 12.0, 3.0)
    A = darcy_matrix(a)
    assert abs(A - A.T).max() < 1e-9
    smallest = spla.eigsh(A, k=1, which="SA", return_eigenvectors=False)[0]
    assert smallest > 0


def test_matrix_entries_on_a_hand_computed_4x4_grid():
    """Four unknowns, row-major (1,1), (1,2), (2,1), (2,2); h = 1/3. A face between nodes of conductivity p and q
    conducts 2pq/(p+q) (harmonic mean, README "Data"); boundary nodes have a = 1."""
    a = np.array([[1.0, 1.0, 1.0, 1.0],
                  [1.0, 2.0, 6.0, 1.0],
                  [1.0, 3.0, 4.0, 1.0],
                  [1.0, 1.0, 1.0, 1.0]])
    # faces: 2|6 -> 3, 2|3 -> 12/5, 6|4 -> 24/5, 3|4 -> 24/7, 2|1 -> 4/3, 6|1 -> 12/7, 3|1 -> 3/2, 4|1 -> 8/5
    expected = 9 * np.array([
        [4 / 3 + 4 / 3 + 3 + 12 / 5, -3, -12 / 5, 0],
        [-3, 12 / 7 + 12 / 7 + 3 + 24 / 5, 0, -24 / 5],
        [-12 / 5, 0, 3 / 2 + 3 / 2 + 12 / 5 + 24 / 7, -24 / 7],
        [0, -24 / 5, -24 / 7, 8 / 5 + 8 / 5 + 24 / 5 + 24 / 7],
    ])
    np.testing.assert_allclose(darcy_matrix(a).toarray(), expected, rtol=1e-12)


def test_constant_coefficient_scales_the_solution():
    # -div(c grad u) = 1 has the solution of the c = 1 problem divided by c.
    a = np.ones((33, 33))
    np.testing.assert_allclose(solve_darcy(4 * a), solve_darcy(a) / 4, rtol=1e-10)


def test_sampled_coefficient_is_two_valued_and_solution_vanishes_on_boundary():
    problem = Darcy(resolution=33)
    a = problem.sample_inputs(3, np.random.default_rng(0))
    assert a.shape == (3, 1, 33, 33)
    assert set(np.unique(a)) == {3.0, 12.0}
    u = problem.solve(a)
    assert u.shape == (3, 1, 33, 33)
    assert np.all(u[:, 0, [0, -1], :] == 0) and np.all(u[:, 0, :, [0, -1]] == 0)
    assert u[:, 0, 1:-1, 1:-1].min() > 0  # f = 1 > 0 and the maximum principle
    np.testing.assert_allclose(u[1, 0], solve_darcy(a[1, 0]), rtol=1e-12)


def test_coefficient_is_a_high_where_the_field_is_non_negative():
    """FNO's threshold: a = 12 where psi >= 0 and 3 elsewhere, psi the Neumann GRF drawn from the same generator."""
    problem = Darcy(resolution=17)
    a = problem.sample_inputs(2, np.random.default_rng(5))[:, 0]
    psi = neumann_grf(2, 17, problem.alpha, problem.tau, np.random.default_rng(5))
    np.testing.assert_array_equal(a, np.where(psi >= 0, 12.0, 3.0))


def test_skr_solver_matches_the_direct_solve_and_names_a_new_file():
    from pdeop.linalg import LinearSolver

    direct = Darcy(resolution=33)
    skr = Darcy(resolution=33, linear_solver=LinearSolver(method="gcrodr", restart=30, recycle=10, tol=1e-10))
    a = direct.sample_inputs(8, np.random.default_rng(1))
    np.testing.assert_allclose(skr.solve(a), direct.solve(a), rtol=0, atol=1e-8 * np.abs(direct.solve(a)).max())
    assert "linear_solver" not in direct.params()
    assert skr.params()["linear_solver"]["method"] == "gcrodr"


@pytest.mark.parametrize("bad", [{"resolution": 3}, {"tau": 0.0}, {"a_low": -1.0}, {"scheme": "fem"}])
def test_bad_parameters_name_the_key(bad):
    from pdeop.errors import ConfigError

    with pytest.raises(ConfigError, match=f"data.problem.{next(iter(bad))}"):
        Darcy(**bad)


def test_fno_scheme_matrix_takes_arithmetic_face_means_on_a_hand_computed_4x4_grid():
    """solve_gwf.m's faces conduct (p + q)/2; the grid and ordering of the harmonic test above, h = 1/3."""
    a = np.array([[1.0, 1.0, 1.0, 1.0],
                  [1.0, 2.0, 6.0, 1.0],
                  [1.0, 3.0, 4.0, 1.0],
                  [1.0, 1.0, 1.0, 1.0]])
    # faces: 2|6 -> 4, 2|3 -> 5/2, 6|4 -> 5, 3|4 -> 7/2, 2|1 -> 3/2, 6|1 -> 7/2, 3|1 -> 2, 4|1 -> 5/2
    expected = 9 * np.array([
        [3 / 2 + 3 / 2 + 4 + 5 / 2, -4, -5 / 2, 0],
        [-4, 7 / 2 + 7 / 2 + 4 + 5, 0, -5],
        [-5 / 2, 0, 2 + 2 + 5 / 2 + 7 / 2, -7 / 2],
        [0, -5, -7 / 2, 5 / 2 + 5 / 2 + 5 + 7 / 2],
    ])
    np.testing.assert_allclose(darcy_matrix(a, FACE_MEANS["fno"]).toarray(), expected, rtol=1e-12)


def test_fno_scheme_splines_are_not_a_knot_along_each_axis():
    """MATLAB's interp2 'spline' (solve_gwf.m): a not-a-knot cubic spline along one axis, then the other."""
    rng = np.random.default_rng(2)
    values = rng.standard_normal((2, 12, 12))
    centres, nodes = (np.arange(12) + 0.5) / 12, np.linspace(0.0, 1.0, 12)

    def reference(v: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        v = CubicSpline(source, v, axis=1, bc_type="not-a-knot")(target)
        return CubicSpline(source, v, axis=2, bc_type="not-a-knot")(target)

    np.testing.assert_allclose(cells_to_nodes(values), reference(values, centres, nodes), rtol=0, atol=1e-12)
    np.testing.assert_allclose(nodes_to_cells(values), reference(values, nodes, centres), rtol=0, atol=1e-12)


def test_fno_scheme_converges_at_second_order_at_the_cell_centres():
    sizes = [16, 32, 64, 128]
    errors = []
    for k in sizes:
        a, f, u = manufactured(cell_centres(k), ky=2)  # at the k x k cell centres
        errors.append(np.abs(solve_darcy(a, f, scheme="fno") - u).max())
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(orders > 1.8) and np.all(orders < 2.2), orders
    assert errors[-1] < 1e-3


def test_fno_scheme_problem_solves_on_the_cell_centres_with_any_linear_solver():
    from pdeop.linalg import LinearSolver

    problem = Darcy(resolution=33, scheme="fno")
    a = problem.sample_inputs(4, np.random.default_rng(3))
    u = problem.solve(a)
    assert u.shape == (4, 1, 33, 33)
    np.testing.assert_allclose(u[2, 0], solve_darcy(a[2, 0], 1.0, scheme="fno"), rtol=1e-12)
    skr = Darcy(resolution=33, scheme="fno", linear_solver=LinearSolver(method="gcrodr", restart=30, recycle=10,
                                                                         tol=1e-10))
    np.testing.assert_allclose(skr.solve(a), u, rtol=0, atol=1e-8 * np.abs(u).max())
    np.testing.assert_allclose(problem.coordinates()["x"][::8], (np.arange(0, 33, 8) + 0.5) / 33)  # FNO's coeff[::r]


def test_default_scheme_leaves_the_data_file_names_as_they_were():
    """data=darcy and the recorded CPU cell keep their files' digests (from before the scheme option); the paper
    tier's FNO cell, generated by solve_gwf.m's scheme, gets a file of its own."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    import pdeop.config  # noqa: F401  (registers the subsampled_size resolver)
    from pdeop.conf import CONF

    assert "scheme" not in Darcy().params() and Darcy(scheme="fno").params()["scheme"] == "fno"
    digests = {}
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for overrides in (["data=darcy"], ["+experiment=darcy85/fno_cpu"], ["+experiment=darcy85/fno"]):
            digests[overrides[0]] = instantiate(compose("config", overrides=overrides).data).spec.digest()
    paper = digests.pop("+experiment=darcy85/fno")
    assert digests == {"data=darcy": "eb052f5f3623", "+experiment=darcy85/fno_cpu": "05bf6b2418cb"}
    assert paper not in ("62c165a0187a", *digests.values())  # 62c1...: data=darcy_fno, harmonic
