"""Sparse linear algebra for the problems' solvers: direct, CG, GMRES, GCRO-DR and the SKR ordering.

Knows nothing of PDEs: a problem hands over its matrices, right-hand sides and parameter
fields, and a ``LinearSolver`` (a config object) decides how they are solved.
"""

from pdeop.linalg.kronecker import KroneckerCholesky, kron_matvec
from pdeop.linalg.krylov import GCRODR, KrylovResult, conjugate_gradient, gmres
from pdeop.linalg.ordering import greedy_order, grouped_order, tour_length
from pdeop.linalg.solver import LinearSolver, make_preconditioner

__all__ = ["GCRODR", "KroneckerCholesky", "KrylovResult", "LinearSolver", "conjugate_gradient",
           "gmres", "greedy_order", "grouped_order", "kron_matvec", "make_preconditioner", "tour_length"]
