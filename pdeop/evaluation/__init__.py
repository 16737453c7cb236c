"""Using trained runs: evaluate on any stored dataset and resolution, predict to NetCDF, plot."""

from pdeop.evaluation.metrics import evaluate_fields, per_sample_errors

__all__ = ["evaluate_fields", "per_sample_errors"]
