"""Solver workers a GPU trainer needs, on paper: one core's cost of one training sample against training throughput.

    python benchmarks/solver_cost.py [--json experiments/benchmarks/solver_cost_cpu1.json]

Each case is the committed data config (composed with Hydra from pdeop/conf/, as ``train.py`` would), its problem
instantiated and run the way one Dask solver worker runs it: one process, one thread (BLAS, OpenMP and torch
set to 1 before numpy and torch are imported), the solver on the CPU.
- Darcy (``data=darcy_fno``: 421 nodes; ``data=darcy``: 241): one warm-up sample, then ``--darcy-samples``
  samples drawn and solved one at a time (direct sparse solve as committed).
- Navier-Stokes (``data=ns_fno_1e-5``: nu 1e-5, dt 1e-4, T = 20, so 200,000 steps a trajectory; fine grid 256
  as committed and 64 by ``data.problem.resolution=64``): a full trajectory is far too long, so a batch of
  ``--ns-batch`` trajectories runs some hundreds of steps (one warm-up of 10 steps first) and the seconds are
  EXTRAPOLATED linearly per step and per trajectory to the committed step count. The solver's per-step work
  does not depend on the step or the time (constant forcing); the 20 recorded snapshots of a full run (one
  inverse FFT each) are left out, and cost less than 1e-4 of its steps. The per-trajectory figure holds for
  that batch size: batching amortises per-call overhead, so other batches cost somewhat more or less.
Wall seconds are what a worker delivers on this machine (an upper bound when other jobs load it); the
process's CPU seconds (what a core to itself would take, roughly) are printed beside them, and every worker
count is given from both: wall / CPU.
One sample is one stored sample: a Darcy coefficient-solution pair, an NS trajectory (one window a trajectory
under the committed ``task=window``). Its cost is drawing the input plus solving it.

Workers needed at one use per sample = training samples/s x seconds per sample. Training rates are the
committed H100 measurements of ``benchmarks/fno_overhead.py`` (pdeop side, batch 20): darcy_fno (85x85) and
darcy (41x41). No GPU training rate of NS is recorded: its rows give workers per 100 samples/s only.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # before numpy, scipy and torch load their thread pools: one worker, one core

import argparse
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
GPU_RECORDS = {  # data config -> the committed H100 record of its training throughput
    "darcy_fno": REPO / "experiments/benchmarks/fno_overhead_h100_darcy_fno_40ep_run2.json",
    "darcy": REPO / "experiments/benchmarks/fno_overhead_h100_darcy_40ep_run2.json",
}


def committed_problem(overrides: list[str]):
    with initialize_config_dir(config_dir=str(REPO / "pdeop" / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    return instantiate(cfg.data.problem)


def gpu_rate(data: str) -> dict | None:
    path = GPU_RECORDS.get(data)
    if path is None:
        return None
    record = json.loads(path.read_text())
    return {"samples_per_s": record["pdeop"]["samples_per_s"], "device": record["device"],
            "record": str(path.relative_to(REPO)), "batch_size": record["batch_size"], "overrides": record["overrides"]}


def darcy_case(name: str, data: str, samples: int, seed: int) -> dict:
    problem = committed_problem([f"data={data}"])
    rng = np.random.default_rng(seed)
    problem.solve(problem.sample_inputs(1, rng))  # warm-up: imports, first allocations
    draws, solves, cpu = [], [], []
    for _ in range(samples):
        start, cpu_start = time.perf_counter(), time.process_time()
        inputs = problem.sample_inputs(1, rng)
        drawn = time.perf_counter()
        problem.solve(inputs)
        draws.append(drawn - start)
        solves.append(time.perf_counter() - drawn)
        cpu.append(time.process_time() - cpu_start)
    totals = [d + s for d, s in zip(draws, solves)]
    return {"case": name, "overrides": [f"data={data}"], "grid": problem.resolution,
            "solver": f"finite differences, {problem.linear_solver.method} linear solve",
            "measured": f"{samples} samples after 1 warm-up", "extrapolated": False,
            "draw_s": statistics.mean(draws), "solve_s": statistics.mean(solves),
            "seconds_per_sample": statistics.mean(totals), "min_s": min(totals), "max_s": max(totals),
            "cpu_seconds_per_sample": statistics.mean(cpu), "gpu_training": gpu_rate(data)}


def ns_case(name: str, resolution: int | None, steps: int, batch: int, repeats: int, seed: int) -> dict:
    overrides = ["data=ns_fno_1e-5"] + ([f"data.problem.resolution={resolution}"] if resolution else [])
    committed = committed_problem(overrides)
    full_steps = committed.steps_per_record * committed.records
    short = dataclasses.replace(committed, final_time=steps * committed.dt, record_every=steps * committed.dt,
                                device="cpu")  # one record after `steps` steps; the committed dt, grid, nu
    assert short.steps_per_record * short.records == steps, (short.steps_per_record, short.records)
    warm = dataclasses.replace(short, final_time=10 * committed.dt, record_every=10 * committed.dt)
    rng = np.random.default_rng(seed)
    warm.solve(warm.sample_inputs(batch, rng))  # warm-up: FFT plans, allocator
    draws, runs, cpu_draws, cpu_runs = [], [], [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        inputs = short.sample_inputs(batch, rng)
        drawn, cpu_drawn = time.perf_counter(), time.process_time()
        short.solve(inputs)
        draws.append((drawn - start) / batch)
        runs.append(time.perf_counter() - drawn)
        cpu_draws.append((cpu_drawn - cpu_start) / batch)
        cpu_runs.append(time.process_time() - cpu_drawn)
    step_s = [r / (steps * batch) for r in runs]  # seconds per step per trajectory
    solve_s = statistics.median(step_s) * full_steps
    draw_s = statistics.median(draws)
    return {"case": name, "overrides": overrides, "grid": committed.resolution,
            "solver": f"pseudo-spectral, torch CPU {committed.precision} precision, batch {batch}",
            "viscosity": committed.viscosity, "dt": committed.dt, "final_time": committed.final_time,
            "full_steps": full_steps, "measured_steps": steps, "batch": batch, "repeats": repeats,
            "measured": f"{repeats} x {steps} steps of {batch} trajectories after a 10-step warm-up, median",
            "extrapolated": True, "seconds_per_step_per_trajectory": step_s,
            "draw_s": draw_s, "solve_s": solve_s, "seconds_per_sample": draw_s + solve_s,
            "min_s": draw_s + min(step_s) * full_steps, "max_s": draw_s + max(step_s) * full_steps,
            "cpu_seconds_per_sample": statistics.median(cpu_draws)
            + statistics.median(cpu_runs) / (steps * batch) * full_steps,
            "gpu_training": None}


def table(cases: list[dict]) -> str:
    """Markdown rows; each figure from the wall seconds, then (after the slash) from the process's CPU seconds."""
    header = ("| case | s per sample, 1 core: wall / CPU | samples/s per worker | H100 training, samples/s | "
              "workers at that rate | workers per 100 samples/s |")
    rows = [header, "|---|---|---|---|---|---|"]
    for c in cases:
        s, cpu = c["seconds_per_sample"], c["cpu_seconds_per_sample"]
        extrapolated = " (extrapolated)" if c["extrapolated"] else ""
        gpu = c["gpu_training"]
        if gpu:
            rate = gpu["samples_per_s"]
            at_rate = (f"{rate:.0f}", f"{rate * s:,.0f} / {rate * cpu:,.0f}")
        else:
            at_rate = ("not measured (needs a GPU run)", "-")
        rows.append(f"| {c['case']} | {s:,.3g} / {cpu:,.3g}{extrapolated} | {1 / s:.3g} / {1 / cpu:.3g} | "
                    f"{at_rate[0]} | {at_rate[1]} | {100 * s:,.0f} / {100 * cpu:,.0f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--darcy-samples", type=int, default=3, help="Darcy samples timed per case (after 1 warm-up)")
    parser.add_argument("--ns-batch", type=int, default=8, help="NS trajectories per solver call")
    parser.add_argument("--ns-steps-64", type=int, default=2000, help="NS time steps timed at grid 64")
    parser.add_argument("--ns-steps-256", type=int, default=400, help="NS time steps timed at grid 256")
    parser.add_argument("--ns-repeats", type=int, default=3, help="timed NS runs per case (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    load_before = os.getloadavg()
    started = time.perf_counter()
    cases = []
    for case in (lambda: darcy_case("Darcy 421 (data=darcy_fno)", "darcy_fno", args.darcy_samples, args.seed),
                 lambda: darcy_case("Darcy 241 (data=darcy)", "darcy", args.darcy_samples, args.seed),
                 lambda: ns_case("NS 64, nu 1e-5 (data=ns_fno_1e-5, resolution=64)", 64, args.ns_steps_64,
                                 args.ns_batch, args.ns_repeats, args.seed),
                 lambda: ns_case("NS 256, nu 1e-5 (data=ns_fno_1e-5)", None, args.ns_steps_256,
                                 args.ns_batch, args.ns_repeats, args.seed)):
        t = time.perf_counter()
        cases.append(case())
        c = cases[-1]
        print(f"{c['case']}: {c['seconds_per_sample']:.4g} s a sample (draw {c['draw_s']:.3g} s, solve "
              f"{c['solve_s']:.4g} s{', extrapolated' if c['extrapolated'] else ''}; {c['measured']}; "
              f"range {c['min_s']:.4g}-{c['max_s']:.4g} s; CPU {c['cpu_seconds_per_sample']:.4g} s), "
              f"timed in {time.perf_counter() - t:.0f} s", flush=True)
    load_after = os.getloadavg()

    print()
    print(table(cases))
    print()
    print("One worker = one process on one core (1 BLAS/OpenMP/torch thread), solver on the CPU. "
          f"NS seconds are extrapolated per step and per trajectory to {cases[-1]['full_steps']:,} steps, "
          f"at a batch of {args.ns_batch} trajectories per solver call. The NS training rate needs a GPU "
          "measurement; none is recorded.")
    print(f"Load average (1, 5, 15 min): before {load_before}, after {load_after}; "
          f"{os.cpu_count()} CPUs; {time.perf_counter() - started:.0f} s in all.")

    if args.json:
        out = {"machine": f"{platform.machine()}, {platform.processor() or platform.platform()}, "
                          f"{os.cpu_count()} CPUs, 1 thread per worker",
               "torch": torch.__version__, "numpy": np.__version__,
               "loadavg_before": load_before, "loadavg_after": load_after, "cases": cases}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
