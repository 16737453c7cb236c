"""2D incompressible Navier-Stokes in vorticity form on the periodic unit square, FNO's data recipe.

    w_t + u . grad w = nu Laplacian w + f,   u = (psi_y, -psi_x),   -Laplacian psi = w,
    f = 0.1 (sin(2 pi (x + y)) + cos(2 pi (x + y)))

Pseudo-spectral in space with 2/3 de-aliasing, Crank-Nicolson for the diffusion and forward
Euler for advection and forcing, as in the data script of Li et al., "Fourier Neural Operator
for Parametric PDEs" (ICLR 2021, ns_2d.py); initial vorticity w0 ~ N(0, 7^(3/2) (-Laplacian + 49 I)^(-2.5)).
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

Forcing = torch.Tensor | Callable[[float], torch.Tensor] | None


def vorticity_rollout(w0: torch.Tensor, viscosity: float, dt: float, steps_per_record: int, records: int,
                      forcing: Forcing = None, on_step: Callable[[], None] | None = None) -> torch.Tensor:
    """Advance vorticity ``w0`` ``[..., s, s]`` and return it at every ``steps_per_record``-th step:
    ``[..., records, s, s]``.

    ``forcing`` is a fixed field ``[s, s]``, a function of time returning one, or None; ``on_step`` is
    called after every step (progress reports; it sees nothing of the state).
    Each step: w_hat <- (w_hat - dt N_hat + dt f_hat + (dt/2) nu Lap w_hat) / (1 - (dt/2) nu Lap),
    with N = u . grad w evaluated on the grid from de-aliased spectral derivatives.
    """
    s = w0.shape[-1]
    kx, ky = (2 * math.pi * k for k in wavenumbers(s, 2, w0.dtype, w0.device))
    laplacian = -(kx**2 + ky**2)                     # symbol of the Laplacian, 0 for the mean mode
    inverse = torch.where(laplacian == 0, 0.0, -1.0 / torch.where(laplacian == 0, 1.0, laplacian))  # (-Lap)^-1
    dealias = dealias_mask(wavenumbers(s, 2, w0.dtype, w0.device), s)
    half = 0.5 * dt * viscosity * laplacian
    w_hat = torch.fft.rfft2(w0)
    constant_forcing = torch.fft.rfft2(forcing) if isinstance(forcing, torch.Tensor) else None
    out = torch.empty((*w0.shape[:-2], records, s, s), dtype=w0.dtype, device=w0.device)

    def grid(spectrum: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(spectrum, s=(s, s))

    step = 0
    for record in range(records):
        for _ in range(steps_per_record):
            psi_hat = inverse * w_hat
            u, v = grid(1j * ky * psi_hat), grid(-1j * kx * psi_hat)
            advection = torch.fft.rfft2(u * grid(1j * kx * w_hat) + v * grid(1j * ky * w_hat)) * dealias
            if constant_forcing is not None:
                f_hat = constant_forcing
            elif forcing is not None:
                f_hat = torch.fft.rfft2(forcing(step * dt))
            else:
                f_hat = 0.0
            w_hat = (w_hat - dt * advection + dt * f_hat + half * w_hat) / (1 - half)
            step += 1
            if on_step is not None:
                on_step()
        out[..., record, :, :] = grid(w_hat)
    return out


@dataclass(frozen=True)
class NavierStokes2D(RecordedTimeStepping):
    """Vorticity trajectories from random initial vorticity; ``solve`` records every ``record_every`` time units.

    ``resolution`` is the periodic fine grid (FNO: 256, subsampled to 64 for training),
    ``dt`` the time step (FNO: 1e-4), ``alpha``/``tau``/``sigma`` the initial field's GRF.
    ``precision`` (single: FNO's float32, double) and ``device`` (auto, cpu, cuda) choose how the
    solver runs; ``device`` does not change the data beyond rounding and is not recorded.
    """

    resolution: int = 256
    viscosity: float = 1e-3
    final_time: float = 50.0
    record_every: float = 1.0
    dt: float = 1e-4
    alpha: float = 2.5
    tau: float = 7.0
    sigma: float = 7.0**1.5
    forcing_amplitude: float = 0.1
    precision: str = "single"
    device: str = "auto"

    name = "navier_stokes"
    boundary = "periodic"
    input_names = ("w0",)
    output_names = ("w",)

    def __post_init__(self) -> None:
        self.check_settings()

    def coordinates(self) -> dict[str, np.ndarray]:
        x = np.arange(self.resolution) / self.resolution
        return {"x": x, "y": x.copy()}

    def forcing(self) -> np.ndarray:
        x = np.arange(self.resolution) / self.resolution
        xx, yy = np.meshgrid(x, x, indexing="ij")
        return self.forcing_amplitude * (np.sin(2 * np.pi * (xx + yy)) + np.cos(2 * np.pi * (xx + yy)))

    def sample_inputs(self, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        """Initial vorticity ``[n, 1, s, s]``."""
        return periodic_grf(n_samples, self.resolution, 2, self.alpha, self.tau, self.sigma, rng)[:, None]

    def solve(self, inputs: np.ndarray, progress: Progress | None = None) -> np.ndarray:
        """Trajectories ``[n, 1, records, s, s]`` (float32) from initial vorticity ``[n, 1, s, s]``; ``progress``
        hears of every hundredth of the time steps."""
        device, dtype = solver_device(self.device), solver_dtype(self.precision)
        w0 = torch.as_tensor(inputs[:, 0], dtype=dtype, device=device)
        forcing = torch.as_tensor(self.forcing(), dtype=dtype, device=device)
        steps = StepProgress(progress, len(inputs), self.steps_per_record * self.records)
        with torch.no_grad(), subnormals_flushed():
            trajectory = vorticity_rollout(w0, self.viscosity, self.dt, self.steps_per_record, self.records, forcing,
                                           steps.step)
        return trajectory[:, None].to(torch.float32).cpu().numpy()
