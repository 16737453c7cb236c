"""1D viscous Burgers' equation on the periodic unit interval, FNO's data recipe.

    u_t + (u^2 / 2)_x = nu u_xx,   u(x, 0) = u0(x) ~ N(0, 625 (-Laplacian + 25 I)^-2)

Fourier pseudo-spectral in space with 2/3 de-aliasing of the quadratic term, and ETDRK4 in time
(Cox and Matthews, J. Comput. Phys. 2002; coefficients by the contour integrals of Kassam and
Trefethen, SIAM J. Sci. Comput. 2005), the stiff integrator behind chebfun's ``spin`` that
generated FNO's Burgers data (Li et al., ICLR 2021; nu = 0.1, 8192 points, t = 1).
Batched in torch: many trajectories advance together, on the GPU when there is one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from pdeop.problems.base import Progress, StepProgress
from pdeop.problems.grf import periodic_grf
from pdeop.problems.spectral import (
    RecordedTimeStepping,
    dealias_mask,
    solver_device,
    solver_dtype,
    subnormals_flushed,
    wavenumbers,
)

CONTOUR_POINTS = 64


def etdrk4_coefficients(linear: torch.Tensor, dt: float) -> dict[str, torch.Tensor]:
    """ETDRK4's per-mode factors for the diagonal linear operator ``linear`` (real symbol), in float64.

    The phi-functions are averaged over a circle of radius 1 around each h L (Kassam and
    Trefethen), which avoids the cancellation of their closed forms near h L = 0.
    """
    hl = dt * linear.to(torch.float64)
    roots = torch.exp(1j * math.pi * (torch.arange(1, CONTOUR_POINTS + 1, dtype=torch.float64) - 0.5) / CONTOUR_POINTS)
    z = hl[..., None] + roots.to(hl.device)
    ez, ez2 = torch.exp(z), torch.exp(z / 2)

    def mean(values: torch.Tensor) -> torch.Tensor:
        return dt * values.mean(dim=-1).real

    return {
        "e": torch.exp(hl), "e2": torch.exp(hl / 2),
        "q": mean((ez2 - 1) / z),
        "f1": mean((-4 - z + ez * (4 - 3 * z + z**2)) / z**3),
        "f2": mean((2 + z + ez * (z - 2)) / z**3),
        "f3": mean((-4 - 3 * z - z**2 + ez * (4 - z)) / z**3),
    }


def burgers_rollout(u0: torch.Tensor, viscosity: float, dt: float, steps_per_record: int, records: int,
                    on_step: Callable[[], None] | None = None) -> torch.Tensor:
    """Advance ``u0`` ``[..., s]`` by ETDRK4 and return it at every ``steps_per_record``-th step: ``[..., records, s]``;
    ``on_step`` is called after every step (progress reports; it sees nothing of the state)."""
    s = u0.shape[-1]
    (k,) = wavenumbers(s, 1, u0.dtype, u0.device)
    derivative = 2j * math.pi * k
    factors = {name: value.to(u0.dtype).to(u0.device)
               for name, value in etdrk4_coefficients(-viscosity * (2 * math.pi * k) ** 2, dt).items()}
    nonlinear_factor = -0.5 * derivative * dealias_mask([k], s)

    def nonlinear(v_hat: torch.Tensor) -> torch.Tensor:
        u = torch.fft.irfft(v_hat, n=s)
        return nonlinear_factor * torch.fft.rfft(u * u)

    e, e2, q, f1, f2, f3 = (factors[name] for name in ("e", "e2", "q", "f1", "f2", "f3"))
    v = torch.fft.rfft(u0)
    out = torch.empty((*u0.shape[:-1], records, s), dtype=u0.dtype, device=u0.device)
    for record in range(records):
        for _ in range(steps_per_record):
            nv = nonlinear(v)
            a = e2 * v + q * nv
            na = nonlinear(a)
            b = e2 * v + q * na
            nb = nonlinear(b)
            c = e2 * a + q * (2 * nb - nv)
            v = e * v + f1 * nv + 2 * f2 * (na + nb) + f3 * nonlinear(c)
            if on_step is not None:
                on_step()
        out[..., record, :] = torch.fft.irfft(v, n=s)
    return out


@dataclass(frozen=True)
class Burgers1D(RecordedTimeStepping):
    """Burgers trajectories from random initial states; ``solve`` records every ``record_every`` time units.

    ``resolution`` is the periodic fine grid (FNO: 8192, subsampled for training), ``dt`` the
    ETDRK4 step, ``alpha``/``tau``/``sigma`` the initial field's GRF. ``precision`` (double,
    single) and ``device`` (auto, cpu, cuda) choose how the solver runs; ``device`` is not recorded.
    """

    resolution: int = 8192
    viscosity: float = 0.1
    final_time: float = 1.0
    record_every: float = 1.0
    dt: float = 1e-4
    alpha: float = 2.0
    tau: float = 5.0
    sigma: float = 25.0
    precision: str = "double"
    device: str = "auto"

    name = "burgers"
    boundary = "periodic"
    input_names = ("u0",)
    output_names = ("u",)

    def __post_init__(self) -> None:
        self.check_settings()

    def coordinates(self) -> dict[str, np.ndarray]:
        return {"x": np.arange(self.resolution) / self.resolution}

    def sample_inputs(self, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        """Initial states ``[n, 1, s]``."""
        return periodic_grf(n_samples, self.resolution, 1, self.alpha, self.tau, self.sigma, rng)[:, None]

    def solve(self, inputs: np.ndarray, progress: Progress | None = None) -> np.ndarray:
        """Trajectories ``[n, 1, records, s]`` (float32) from initial states ``[n, 1, s]``; ``progress`` hears of
        every hundredth of the time steps."""
        device, dtype = solver_device(self.device), solver_dtype(self.precision)
        u0 = torch.as_tensor(inputs[:, 0], dtype=dtype, device=device)
        steps = StepProgress(progress, len(inputs), self.steps_per_record * self.records)
        with torch.no_grad(), subnormals_flushed():
            trajectory = burgers_rollout(u0, self.viscosity, self.dt, self.steps_per_record, self.records, steps.step)
        return trajectory[:, None].to(torch.float32).cpu().numpy()
