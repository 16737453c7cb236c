"""Navier-Stokes data generation: batched torch FFTs against a straightforward one-trajectory NumPy loop.

Both integrate FNO's scheme (pseudo-spectral, 2/3 de-aliasing, Crank-Nicolson diffusion, forward
Euler advection and forcing) from the same initial vorticity; the NumPy loop advances one
trajectory at a time, the torch solver (``pdeop.problems.navier_stokes``) a batch at once. Prints
trajectories per second of each, their ratio, and the largest difference between their results.

    python benchmarks/ns_generation.py --resolution 64 --steps 1000 --batch 64 --loop 4 \
        --json experiments/benchmarks/ns_generation_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from pdeop.problems.navier_stokes import NavierStokes2D, vorticity_rollout


def numpy_trajectory(w0: np.ndarray, forcing: np.ndarray, viscosity: float, dt: float, steps: int) -> np.ndarray:
    """One trajectory, the way a single-sample script would write it (float64 NumPy FFTs)."""
    s = w0.shape[-1]
    kx = 2 * np.pi * np.fft.fftfreq(s, 1.0 / s)[:, None]
    ky = 2 * np.pi * np.fft.rfftfreq(s, 1.0 / s)[None, :]
    lap = kx**2 + ky**2
    inverse = np.where(lap == 0, 0.0, 1.0 / np.where(lap == 0, 1.0, lap))
    limit = (2.0 / 3.0) * (s // 2) * 2 * np.pi
    dealias = (np.abs(kx) <= limit) & (np.abs(ky) <= limit)
    w_hat, f_hat = np.fft.rfft2(w0), np.fft.rfft2(forcing)
    half = 0.5 * dt * viscosity * lap
    for _ in range(steps):
        psi_hat = inverse * w_hat
        u = np.fft.irfft2(1j * ky * psi_hat, s=(s, s))
        v = np.fft.irfft2(-1j * kx * psi_hat, s=(s, s))
        wx = np.fft.irfft2(1j * kx * w_hat, s=(s, s))
        wy = np.fft.irfft2(1j * ky * w_hat, s=(s, s))
        advection = np.fft.rfft2(u * wx + v * wy) * dealias
        w_hat = (w_hat - dt * advection + dt * f_hat - half * w_hat) / (1 + half)
    return np.fft.irfft2(w_hat, s=(s, s))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1000, help="time steps per trajectory (dt = 1e-3)")
    parser.add_argument("--batch", type=int, default=64, help="trajectories per torch call")
    parser.add_argument("--loop", type=int, default=4, help="trajectories timed in the NumPy loop")
    parser.add_argument("--precision", choices=["single", "double"], default="double")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)  # NumPy's FFT uses one thread: --threads 1 compares like with like
    dt = 1e-3
    problem = NavierStokes2D(resolution=args.resolution, viscosity=1e-3, final_time=args.steps * dt,
                             record_every=args.steps * dt, dt=dt, precision=args.precision, device=args.device)
    inputs = problem.sample_inputs(args.batch, np.random.default_rng(0))[:, 0]
    forcing = problem.forcing()

    start = time.perf_counter()
    looped = [numpy_trajectory(inputs[i], forcing, problem.viscosity, dt, args.steps) for i in range(args.loop)]
    loop_rate = args.loop / (time.perf_counter() - start)

    dtype = torch.float64 if args.precision == "double" else torch.float32
    device = torch.device(args.device)
    w0 = torch.as_tensor(inputs, dtype=dtype, device=device)
    f = torch.as_tensor(forcing, dtype=dtype, device=device)
    vorticity_rollout(w0[:2], problem.viscosity, dt, 5, 1, f)  # warm-up (plans, allocator)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad():
        batched = vorticity_rollout(w0, problem.viscosity, dt, args.steps, 1, f)[:, 0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    batch_rate = args.batch / (time.perf_counter() - start)

    reference = np.stack(looped)
    difference = float(np.abs(batched[: args.loop].cpu().numpy() - reference).max() / np.abs(reference).max())
    result = {
        "resolution": args.resolution, "steps": args.steps, "dt": dt, "precision": args.precision,
        "device": str(device), "torch_threads": torch.get_num_threads(), "batch": args.batch,
        "numpy_loop_trajectories_per_s": loop_rate, "torch_batched_trajectories_per_s": batch_rate,
        "speedup": batch_rate / loop_rate, "max_relative_difference": difference,
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
    }
    print(f"{args.resolution}x{args.resolution}, {args.steps} steps, {args.precision}, {device}")
    print(f"  NumPy loop, one trajectory at a time: {loop_rate:8.3f} trajectories/s")
    print(f"  torch, {args.batch} trajectories batched:   {batch_rate:8.3f} trajectories/s")
    print(f"  speed-up {batch_rate / loop_rate:.1f}x; largest difference {difference:.1e} (relative to max |w|)")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)


if __name__ == "__main__":
    main()
