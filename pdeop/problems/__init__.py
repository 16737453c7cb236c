"""Equations, how to draw their inputs, and how to solve them numerically.

A problem is a frozen dataclass with ``name``, ``params()``, ``coordinates()``,
``sample_inputs(n, rng)`` and ``solve(inputs)``; the data layer turns it into stored datasets.
"""

from pdeop.problems.base import Problem
from pdeop.problems.darcy import Darcy

__all__ = ["Darcy", "Problem"]
