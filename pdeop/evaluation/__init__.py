"""Using trained runs: load a checkpoint safely, evaluate it on any stored dataset and resolution."""

from pdeop.evaluation.checkpoint import CheckpointError, load_checkpoint, load_weights, module_from_checkpoint
from pdeop.evaluation.metrics import evaluate_fields, per_sample_errors

__all__ = ["CheckpointError", "evaluate_fields", "load_checkpoint", "load_weights", "module_from_checkpoint",
           "per_sample_errors"]
