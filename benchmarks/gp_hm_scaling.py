"""How a GP-HM training step scales with the grid: Kronecker algebra against a dense Cholesky.

For square 2D grids on [0, 2 pi]^2 (the paper's Poisson setting: Student-t mixture, Q = 30, frequencies
up to 20, jitter 1e-6, float64) it times one forward + backward of

- ``kron_loss``: the paper's whole loss, ``regulariser() + 200 * boundary_nll + residual_nll`` of a Poisson
  residual from ``grid_derivatives``;
- ``kron_nll``: the log-likelihood term alone, ``GPHM.regulariser()`` (Kronecker-factored Cholesky);
- ``dense_nll``: the same log-likelihood through a dense Cholesky of ``torch.kron(K_x, K_y)``, for grids
  with at most ``--dense-limit`` nodes;

each in its own process, so that the peak resident memory it reports (above the process' memory after
imports) belongs to that measurement alone. It prints the median seconds per step, the growth exponent
``p`` of ``time ~ N^p`` fitted over the three largest grids of each method, and checks that both log-likelihoods agree.

    python benchmarks/gp_hm_scaling.py --out experiments/benchmarks/gp_hm_scaling.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from pdeop.models.gp_hm import GPHM

METHODS = ("kron_loss", "kron_nll", "dense_nll")


def build(n: int) -> GPHM:
    """The paper's 2D Poisson model on an ``n x n`` grid, with smooth grid values in place of zeros."""
    model = GPHM([[0.0, 2 * math.pi]] * 2, n)
    x, y = torch.meshgrid(*model.grid_axes(), indexing="ij")
    with torch.no_grad():
        model.u.copy_(torch.sin(x) * torch.cos(y))
    return model


def dense_nll(model: GPHM) -> torch.Tensor:
    """``(log det K + u^T K^{-1} u) / 2`` with ``K`` formed densely, ``N x N``."""
    chol = torch.linalg.cholesky(torch.kron(*model.axis_covariances()))
    u = model.u.reshape(-1, 1)
    whitened = torch.linalg.solve_triangular(chol, u, upper=False)
    return chol.diagonal().log().sum() + 0.5 * whitened.square().sum()


def kron_loss(model: GPHM) -> torch.Tensor:
    derivatives = model.grid_derivatives([(), (0, 0), (1, 1)])
    boundary = derivatives[()][model.boundary_mask()]
    residual = derivatives[(0, 0)] + derivatives[(1, 1)]
    return model.regulariser() + 200 * model.boundary_nll(boundary) + model.residual_nll(residual)


LOSSES = {"kron_loss": kron_loss, "kron_nll": GPHM.regulariser, "dense_nll": dense_nll}


def resident_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


def measure(method: str, n: int, repeats: int) -> dict:
    """Median seconds of ``repeats`` forward + backward steps after one warm-up, in this process."""
    baseline = resident_mib()
    model = build(n)
    times = []
    for step in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        value = LOSSES[method](model)
        value.backward()
        if step:
            times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"method": method, "n": n, "N": n * n, "seconds": statistics.median(times), "value": value.item(),
            "peak_extra_mib": peak - baseline}


def growth_exponent(rows: list[dict], points: int = 3) -> float | None:
    """Least-squares slope of log(seconds) against log(N) over the ``points`` largest grids, where fixed
    per-step overheads matter least."""
    rows = sorted(rows, key=lambda r: r["N"])[-points:]
    if len(rows) < 2:
        return None
    return float(np.polyfit(np.log([r["N"] for r in rows]), np.log([r["seconds"] for r in rows]), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 30, 40, 55, 80, 160, 320, 640])
    parser.add_argument("--dense-limit", type=int, default=3100, help="largest N for the dense Cholesky")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: stable on a shared machine)")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]), args.repeats)))
        return

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"{'method':>10} {'grid':>9} {'N':>7} {'s/step':>9} {'peak MiB':>9}")
    rows = []
    for n in args.sizes:
        for method in METHODS:
            if method == "dense_nll" and n * n > args.dense_limit:
                continue
            command = [sys.executable, __file__, "--child", method, str(n), "--repeats", str(args.repeats),
                       "--threads", str(args.threads)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{method:>10} {f'{n}x{n}':>9} {row['N']:>7} {row['seconds']:>9.4f} {row['peak_extra_mib']:>9.1f}")

    summary = {}
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        exponent = growth_exponent(mine)
        fitted = sorted(r["N"] for r in mine)[-3:]
        summary[method] = {"exponent": exponent, "fitted_N": fitted}
        if exponent is not None:
            print(f"{method}: time ~ N^{exponent:.2f} (fit over N = {', '.join(map(str, fitted))})")
    agreement = [abs(d["value"] - k["value"]) / abs(d["value"]) for d in rows if d["method"] == "dense_nll"
                 for k in rows if k["method"] == "kron_nll" and k["n"] == d["n"]]
    if agreement:
        print(f"kron_nll vs dense_nll: largest relative difference {max(agreement):.1e}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rows": rows, "summary": summary, "max_relative_difference":
                                        max(agreement) if agreement else None, "torch": torch.__version__,
                                        "threads": torch.get_num_threads()}, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
