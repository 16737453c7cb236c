"""The interface every problem offers the data layer."""

from __future__ import annotations

from typing import Protocol

import numpy as np


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
        recorded times, and returns trajectories ``[n, out_channels, len(times), *grid]``.
        """
