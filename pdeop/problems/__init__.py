"""Equations, how to draw their inputs, and how to solve them numerically.

A problem is a frozen dataclass with ``name``, ``params()``, ``coordinates()``,
``sample_inputs(n, rng)`` and ``solve(inputs)``; the data layer turns it into stored datasets.
A residual problem (``residual.py``) is one PDE instance posed by its residual, boundary data and
reference solution, for the physics-informed solvers.
"""

from pdeop.problems.base import Problem
from pdeop.problems.burgers import Burgers1D
from pdeop.problems.darcy import Darcy
from pdeop.problems.darcy_instance import DarcyInstance
from pdeop.problems.manufactured import Advection1D, AllenCahn1D, Helmholtz2D, Poisson1D, Poisson2D
from pdeop.problems.navier_stokes import NavierStokes2D
from pdeop.problems.residual import ResidualProblem

__all__ = ["Advection1D", "AllenCahn1D", "Burgers1D", "Darcy", "DarcyInstance", "Helmholtz2D", "NavierStokes2D",
           "Poisson1D", "Poisson2D", "Problem", "ResidualProblem"]
