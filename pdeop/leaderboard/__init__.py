"""Leaderboard reproduction: one Hydra experiment config per table cell and tier, result records, the report.

``python -m pdeop.leaderboard run <table> [--tier cpu|paper]`` trains each cell, ``report``
writes the tables with the papers' figures beside the measured ones (docs/leaderboard.md).
"""

from pdeop.leaderboard.cells import Cell, load_cells
from pdeop.leaderboard.record import make_record
from pdeop.leaderboard.report import write_report

__all__ = ["Cell", "load_cells", "make_record", "write_report"]
