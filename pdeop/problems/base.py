"""The interface every problem offers the data layer."""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

Progress = Callable[[float], None]
"""A solver's optional progress hook (``solve(inputs, progress=...)``): called as the solve advances with the
samples' worth of work done since its last call; the calls of one solve add up to its number of samples."""


def is_periodic(problem: object) -> bool:
    """Whether a problem (or its class) lives on a periodic grid (``boundary``); one that does not say has edges."""
    return getattr(problem, "boundary", "dirichlet") == "periodic"


class Problem(Protocol):
    """A PDE with an input distribution and a numerical solver on a fine grid."""

    name: str
    boundary: str  # "dirichlet" or "periodic": how models pad and how derivatives are taken at the edge
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def params(self) -> dict:
        """Every parameter that determines the generated data (JSON-serialisable)."""

    def coordinates(self) -> dict[str, np.ndarray]:
        """Fine-grid node coordinates along each axis, in axis order."""

    def sample_inputs(self, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        """Draw inputs, shape ``[n, in_channels, *grid]``."""

    def solve(self, inputs: np.ndarray) -> np.ndarray:
        """Solve a batch: ``[n, in_channels, *grid]`` -> ``[n, out_channels, *grid]``.

        Batched so that a solver can share work across samples (vectorised time stepping,
        Krylov subspace recycling). A time-dependent problem also offers ``times()``, the
        recorded times, and returns trajectories ``[n, out_channels, len(times), *grid]``. A slow
        solver may take an optional keyword ``progress`` (a ``Progress`` hook) and report to it
        while it works, without changing its results (``StepProgress``).
        """


class StepProgress:
    """Reports a time-stepping solve of ``samples`` trajectories over ``steps`` steps to a ``Progress`` hook in
    about ``blocks`` calls, each with the samples' worth of the steps since the last one (the trajectories
    advance together, so k of ``steps`` steps are ``samples * k / steps`` samples' worth)."""

    def __init__(self, hook: Progress | None, samples: int, steps: int, blocks: int = 100):
        self.hook, self.samples, self.steps = hook, samples, steps
        self.block = max(1, steps // blocks)
        self.done = self.reported = 0

    def step(self) -> None:
        """One time step done."""
        self.done += 1
        if self.hook is not None and (self.done % self.block == 0 or self.done == self.steps):
            self.hook(self.samples * (self.done - self.reported) / self.steps)
            self.reported = self.done
