"""Equations, how to draw their inputs, and how to solve them numerically.

A problem is a frozen dataclass with ``name``, ``params()``, ``coordinates()``,
``sample_inputs(n, rng)`` and ``solve(inputs)``; the data layer turns it into stored datasets.
"""

from pdeop.problems.base import Problem
from pdeop.problems.burgers import Burgers1D
from pdeop.problems.darcy import Darcy
from pdeop.problems.navier_stokes import NavierStokes2D

__all__ = ["Burgers1D", "Darcy", "NavierStokes2D", "Problem"]
