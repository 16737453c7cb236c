"""What flushing subnormal floats buys the time-stepping solvers: CPU seconds of a committed data config's solve
with the flag (as ``solve`` runs) and without it, along the trajectory, and whether the two agree bit for bit.

    python benchmarks/subnormals.py [--data ns_fno_1e-3_cpu burgers] [--samples 20] [--final-time 20]

One torch thread, as a solver worker runs. For each data config: ``--samples`` trajectories drawn as generation draws
them, solved over ``--final-time`` (default: the config's own) on the CPU, once with ``subnormals_flushed`` and once
with it replaced by a no-op. Printed: the CPU seconds of the first and of the last tenth of the steps, the total,
and whether the recorded trajectories are equal. A viscous solve damps its de-aliased modes through float32's
subnormal range, where every operation on them is slow on x86: the last tenth is where the flag shows.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import time
from unittest import mock

import numpy as np
import torch
from solver_cost import committed_problem  # the committed data config's problem, composed as train.py composes it


def problem_on_cpu(data: str, final_time: float | None):
    """The committed data config's problem (``solver_cost.committed_problem``), on the CPU, over ``final_time``."""
    problem = committed_problem([f"data={data}"])
    changes = {"device": "cpu"}
    if final_time is not None:
        changes |= {"final_time": final_time, "record_every": min(problem.record_every, final_time)}
    return dataclasses.replace(problem, **changes)


def timed_solve(problem, inputs: np.ndarray, flushed: bool) -> tuple[np.ndarray, list[float]]:
    """The trajectories and the CPU seconds of each hundredth of the steps (the solver's progress hook)."""
    marks = [time.process_time()]
    solver_module = sys.modules[type(problem).__module__]
    switch = contextlib.nullcontext() if flushed else mock.patch.object(solver_module, "subnormals_flushed",
                                                                        contextlib.nullcontext)
    with switch:
        trajectories = problem.solve(inputs, progress=lambda _: marks.append(time.process_time()))
    return trajectories, list(np.diff(marks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["ns_fno_1e-3_cpu", "burgers"])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--final-time", type=float, default=None, help="simulated time (default: the config's)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'data':>16} {'flag':>5} {'first tenth':>12} {'last tenth':>11} {'total':>8}  CPU s; "
          f"{args.samples} trajectories, one thread, {torch.backends.cpu.get_cpu_capability()}")
    for data in args.data:
        problem = problem_on_cpu(data, args.final_time)
        inputs = problem.sample_inputs(args.samples, np.random.default_rng(0))
        results = {}
        for flushed in (True, False):
            trajectories, seconds = timed_solve(problem, inputs, flushed)
            tenth = max(1, len(seconds) // 10)
            results[flushed] = trajectories
            print(f"{data:>16} {'on' if flushed else 'off':>5} {sum(seconds[:tenth]):>12.2f} "
                  f"{sum(seconds[-tenth:]):>11.2f} {sum(seconds):>8.2f}", flush=True)
        equal = np.array_equal(results[True], results[False])
        print(f"{data:>16} grid {problem.resolution}, {problem.steps_per_record * problem.records} steps of "
              f"{problem.dt}, {problem.precision} precision: trajectories {'equal' if equal else 'DIFFER'} bit for bit")


if __name__ == "__main__":
    main()
