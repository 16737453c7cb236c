"""Online data: solvers running beside training, streaming fresh samples through a buffer.

After Meyer et al., "Training Deep Surrogate Models with Large Scale Online Learning", ICML 2023.
"""

from pdeop.data.stream.buffers import POLICIES, Buffer, make_buffer
from pdeop.data.stream.dataset import StreamBatches
from pdeop.data.stream.generator import GeneratorError, SolverStream, StreamSettings, draw_and_solve, sample_seed

__all__ = ["POLICIES", "Buffer", "GeneratorError", "SolverStream", "StreamBatches", "StreamSettings", "draw_and_solve",
           "make_buffer", "sample_seed"]
