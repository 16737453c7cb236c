"""Navier-Stokes and Burgers solvers against exact and manufactured solutions; the periodic GRF's spectrum."""

import contextlib
import math

import numpy as np
import pytest
import torch

from pdeop.errors import ConfigError
from pdeop.problems.burgers import Burgers1D, burgers_rollout
from pdeop.problems.grf import periodic_grf
import pdeop.problems.navier_stokes as navier_stokes_module
from pdeop.problems.navier_stokes import NavierStokes2D, vorticity_rollout
from pdeop.problems.spectral import dealias_mask, wavenumbers


def grid(s: int):
    x = torch.arange(s, dtype=torch.float64) / s
    return torch.meshgrid(x, x, indexing="ij")


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def test_navier_stokes_keeps_the_decaying_taylor_green_solution():
    """A vorticity made of modes with one |k| has psi proportional to w, so u . grad w = 0 and
    w(t) = w0 exp(-4 pi^2 |k|^2 nu t) exactly; Crank-Nicolson is second order in dt."""
    x, y = grid(32)
    w0 = torch.sin(2 * math.pi * x) * torch.sin(2 * math.pi * y) + torch.cos(2 * math.pi * (x + y))  # |k|^2 = 2
    nu = 0.01
    out = vorticity_rollout(w0, nu, dt=1e-3, steps_per_record=100, records=10)
    for record in (0, 9):
        t = 0.1 * (record + 1)
        assert relative(out[record], w0 * math.exp(-8 * math.pi**2 * nu * t)) < 1e-7


def test_navier_stokes_converges_at_first_order_on_a_manufactured_solution():
    """w = A(t) sin(2 pi x) + B(t) cos(4 pi y): two |k| shells, so the advection term is
    1.5 A B cos(2 pi x) sin(4 pi y) (derived by hand); the forcing makes w exact. Advection and
    forcing are forward Euler (FNO's scheme), so halving dt halves the error."""
    x, y = grid(32)
    nu = 0.01
    a, da = math.cos, lambda t: -math.sin(t)
    b, db = (lambda t: 1 + 0.5 * math.sin(t)), (lambda t: 0.5 * math.cos(t))
    s2x, c4y, c2x, s4y = (torch.sin(2 * math.pi * x), torch.cos(4 * math.pi * y), torch.cos(2 * math.pi * x),
                          torch.sin(4 * math.pi * y))

    def exact(t):
        return a(t) * s2x + b(t) * c4y

    def forcing(t):
        return (da(t) * s2x + db(t) * c4y + 1.5 * a(t) * b(t) * c2x * s4y
                + nu * (4 * math.pi**2 * a(t) * s2x + 16 * math.pi**2 * b(t) * c4y))

    errors = [relative(vorticity_rollout(exact(0.0), nu, dt, round(1 / dt), 1, forcing)[0], exact(1.0))
              for dt in (4e-3, 2e-3, 1e-3)]
    orders = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    assert all(0.95 < order < 1.05 for order in orders), (errors, orders)
    assert errors[-1] < 5e-4


def test_burgers_matches_the_cole_hopf_solution_at_fourth_order():
    """u = -2 nu phi_x / phi with phi = 2 + exp(-4 pi^2 nu t) cos(2 pi x) solving the heat equation."""
    x = torch.arange(256, dtype=torch.float64) / 256
    for nu in (0.1, 0.02):
        def exact(t):
            decay = math.exp(-4 * math.pi**2 * nu * t)
            return 4 * math.pi * nu * decay * torch.sin(2 * math.pi * x) / (2 + decay * torch.cos(2 * math.pi * x))

        errors = [relative(burgers_rollout(exact(0.0)[None], nu, dt, round(1 / dt), 1)[0, 0], exact(1.0))
                  for dt in (2e-2, 1e-2, 5e-3)]
        orders = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
        assert all(3.7 < order < 4.3 for order in orders), (nu, errors, orders)
        assert errors[-1] < 1e-9


def test_dealias_mask_keeps_wavenumbers_up_to_two_thirds_of_the_nyquist_one():
    # s = 12: Nyquist 6, limit 4 per axis; the rfft axis holds 0..6, the full axis 0..5, -6..-1
    (k,) = wavenumbers(12, 1, torch.float64, torch.device("cpu"))
    assert dealias_mask([k], 12).tolist() == [1, 1, 1, 1, 1, 0, 0]
    kx, ky = wavenumbers(12, 2, torch.float64, torch.device("cpu"))
    mask = dealias_mask([kx, ky], 12)
    keep_x = torch.tensor([1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1], dtype=torch.float64)  # k = 0..5, -6..-1
    torch.testing.assert_close(mask, keep_x[:, None] * torch.tensor([1.0, 1, 1, 1, 1, 0, 0], dtype=torch.float64))


def test_navier_stokes_drops_advection_beyond_two_thirds():
    """w0 = sin(6 pi x) + sin(8 pi y) on a 10-grid (de-aliasing limit 10/3): its advection term lives at
    wavenumbers (+-3, +-4), cut by the mask, so each mode decays by Crank-Nicolson's factor
    (1 - dt nu 2 pi^2 |k|^2) / (1 + dt nu 2 pi^2 |k|^2) per step, as if the flow were linear."""
    x, y = grid(10)
    nu, dt, steps = 0.01, 1e-2, 20
    out = vorticity_rollout(torch.sin(6 * math.pi * x) + torch.sin(8 * math.pi * y), nu, dt, steps, 1)[0]

    def factor(k: int) -> float:
        half = 0.5 * dt * nu * 4 * math.pi**2 * k**2
        return ((1 - half) / (1 + half)) ** steps

    expected = factor(3) * torch.sin(6 * math.pi * x) + factor(4) * torch.sin(8 * math.pi * y)
    assert relative(out, expected) < 1e-12


def test_burgers_drops_the_square_beyond_two_thirds():
    """u0 = cos(6 pi x) on a 16-grid (de-aliasing limit 16/3): u0^2 lives at wavenumbers 0 and 6, whose
    derivative is zero and cut by the mask, so u decays exactly as the heat equation's exp(-36 pi^2 nu t)."""
    x = torch.arange(16, dtype=torch.float64) / 16
    nu = 0.1
    out = burgers_rollout(torch.cos(6 * math.pi * x)[None], nu, 1e-2, 10, 2)[0]
    for record, t in ((0, 0.1), (1, 0.2)):
        assert relative(out[record], math.exp(-36 * math.pi**2 * nu * t) * torch.cos(6 * math.pi * x)) < 1e-12


def test_navier_stokes_forcing_is_evaluated_at_the_start_of_each_step():
    """Forward Euler for the forcing: with nu = 0 and a single-mode field (no advection), n steps of
    f(t) = t g from w0 = 0 give dt sum_{j<n} f(j dt) = dt^2 n (n - 1) / 2 g."""
    x, _ = grid(8)
    g = torch.cos(2 * math.pi * x)
    dt, n = 0.1, 4
    out = vorticity_rollout(torch.zeros_like(g), 0.0, dt, n, 1, lambda t: t * g)[0]
    assert relative(out, dt**2 * n * (n - 1) / 2 * g) < 1e-12


def test_navier_stokes_forcing_is_fnos():
    """0.1 (sin(2 pi (x + y)) + cos(2 pi (x + y))) at the nodes x = i / s."""
    f = NavierStokes2D(resolution=8, final_time=1.0, record_every=1.0, dt=0.5).forcing()
    r = 0.1 * math.sqrt(2)
    values = {(0, 0): 0.1, (1, 0): r, (0, 1): r, (1, 1): 0.1, (2, 2): -0.1, (3, 0): 0.0, (5, 0): -r}
    for (i, j), value in values.items():
        assert f[i, j] == pytest.approx(value, abs=1e-12), (i, j)


def test_initial_fields_default_to_fnos():
    """Burgers: u0 ~ N(0, 625 (-Lap + 25 I)^-2), i.e. alpha 2, tau 5, sigma 25; Navier-Stokes:
    w0 ~ N(0, 7^(3/2) (-Lap + 49 I)^-2.5), i.e. alpha 2.5, tau 7, sigma 7^(3/2) (FNO's data scripts)."""
    burgers = Burgers1D(resolution=64, final_time=0.1, record_every=0.1, dt=0.1)
    np.testing.assert_array_equal(burgers.sample_inputs(2, np.random.default_rng(3))[:, 0],
                                  periodic_grf(2, 64, 1, 2.0, 5.0, 25.0, np.random.default_rng(3)))
    ns = NavierStokes2D(resolution=16, final_time=0.1, record_every=0.1, dt=0.1)
    np.testing.assert_array_equal(ns.sample_inputs(2, np.random.default_rng(3))[:, 0],
                                  periodic_grf(2, 16, 2, 2.5, 7.0, 7.0**1.5, np.random.default_rng(3)))


@pytest.mark.parametrize("dims, size", [(1, 64), (2, 16)])
def test_periodic_grf_has_the_prescribed_spectrum(dims, size):
    """E |FFT(u)_k|^2 = (s^d sqrt(2) sigma (4 pi^2 |k|^2 + tau^2)^(-alpha/2))^2 for the real part of the field."""
    alpha, tau, sigma = 2.0, 5.0, 25.0
    fields = periodic_grf(4000, size, dims, alpha, tau, sigma, np.random.default_rng(0))
    power = (np.abs(np.fft.fftn(fields, axes=tuple(range(1, dims + 1)))) ** 2).mean(axis=0)
    k = np.fft.fftfreq(size, 1.0 / size)
    squared = sum(np.meshgrid(*([k**2] * dims), indexing="ij"))
    expected = (size**dims * np.sqrt(2) * sigma * (4 * np.pi**2 * squared + tau**2) ** (-alpha / 2)) ** 2
    expected.flat[0] = 0.0
    assert power.flat[0] < 1e-20 * expected.max()
    nonzero = expected > 0
    assert np.allclose(power[nonzero] / expected[nonzero], 1.0, atol=0.12)  # 4000 samples: ~2% per mode
    assert abs(np.mean(power[nonzero] / expected[nonzero]) - 1) < 0.01


def test_navier_stokes_batches_trajectories_independently():
    problem = NavierStokes2D(resolution=32, viscosity=1e-3, final_time=0.2, record_every=0.1, dt=1e-3,
                             precision="double", device="cpu")
    inputs = problem.sample_inputs(3, np.random.default_rng(1))
    together = problem.solve(inputs)
    assert together.shape == (3, 1, 2, 32, 32) and together.dtype == np.float32
    alone = np.concatenate([problem.solve(inputs[i:i + 1]) for i in range(3)])
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-6)
    single = NavierStokes2D(**{**problem.__dict__, "precision": "single"}).solve(inputs)
    assert np.abs(single - together).max() < 1e-4 * np.abs(together).max()
    assert not np.allclose(together[:, :, 0], together[:, :, 1])  # it moves
    np.testing.assert_allclose(problem.times(), [0.1, 0.2])


def flushing() -> bool:
    """Whether this thread flushes subnormal floats to zero now."""
    return (torch.tensor([1e-39], dtype=torch.float32) * 1.0).item() == 0.0


def test_navier_stokes_flushes_subnormals_and_keeps_every_bit(monkeypatch):
    # At nu = 1e-3 on 32x32 in float32 the de-aliased modes decay into the subnormal range after about 4,000 steps;
    # from there each step took about 4x as long (benchmarks/subnormals.py). The solve flushes them to zero, which
    # must not change a bit of the trajectories. Mutation checked by hand: without the flag in the solve, the
    # in-solve check below fails.
    problem = NavierStokes2D(resolution=32, viscosity=1e-3, final_time=5.0, record_every=2.5, dt=1e-3, device="cpu")
    inputs = problem.sample_inputs(2, np.random.default_rng(0))
    subnormal_seen = []
    irfft2 = torch.fft.irfft2

    def watched_irfft2(spectrum, *args, **kwargs):
        if not subnormal_seen:
            magnitude = torch.view_as_real(spectrum).abs()
            if ((magnitude > 0) & (magnitude < torch.finfo(magnitude.dtype).tiny)).any():
                subnormal_seen.append(True)
        return irfft2(spectrum, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(torch.fft, "irfft2", watched_irfft2)
        patch.setattr(navier_stokes_module, "subnormals_flushed", contextlib.nullcontext)
        unflushed = problem.solve(inputs)
    assert subnormal_seen, "this case no longer reaches subnormals: it cannot tell a flushed solve from another"

    flag_in_solve = []
    flushed = problem.solve(inputs, progress=lambda _: flag_in_solve.append(flushing()))
    assert flag_in_solve and all(flag_in_solve)
    assert not flushing()  # the thread's flag is cleared after the solve
    np.testing.assert_array_equal(flushed, unflushed)


def test_burgers_problem_records_trajectories():
    problem = Burgers1D(resolution=128, final_time=0.5, record_every=0.25, dt=1e-3, device="cpu")
    out = problem.solve(problem.sample_inputs(2, np.random.default_rng(0)))
    assert out.shape == (2, 1, 2, 128) and np.isfinite(out).all()
    assert problem.params()["viscosity"] == 0.1 and "device" not in problem.params()


@pytest.mark.parametrize("cls, changes, key", [
    (NavierStokes2D, {"record_every": 0.15, "dt": 0.1}, "record_every"),
    (NavierStokes2D, {"final_time": 1.0, "record_every": 0.3, "dt": 0.1}, "final_time"),
    (NavierStokes2D, {"resolution": 33}, "resolution"),
    (Burgers1D, {"viscosity": 0.0}, "viscosity"),
    (Burgers1D, {"precision": "half"}, "precision"),
])
def test_bad_solver_settings_are_named(cls, changes, key):
    with pytest.raises(ConfigError, match=f"data.problem.{key}"):
        cls(**changes)
