"""The pre-flight pass: the model run once on every stored grid before training, and the checks it allows.

A model that cannot handle a grid (too small for its modes or levels, say) then fails with its
message at start-up, not at the test step after the whole training run.
"""

from __future__ import annotations

import numpy as np
import torch
from neuralop.layers.spectral_convolution import SpectralConv
from torch import nn

from pdeop.errors import ConfigError
from pdeop.inference import taking_inputs


def most_modes(grid: tuple[int, ...]) -> list[int]:
    """The largest neuralop ``n_modes`` a spectral convolution on ``grid`` holds: every frequency of each
    axis, and on the last (real FFT) axis the ``n`` with ``n // 2 + 1`` at most ``grid // 2 + 1``."""
    return [*grid[:-1], 2 * (grid[-1] // 2) + 1]


def check_spectral_modes(model: nn.Module, training_input: torch.Tensor, n_modes: list[int]) -> None:
    """Run ``model`` on ``training_input`` and refuse neuralop spectral convolutions that keep more modes than
    that grid holds.

    neuraloperator silently keeps only the modes a grid has, so the weights of the others would
    never be trained, and would then act, untrained, on a finer test grid (zero-shot super-resolution).
    """
    first = next((m for m in model.modules() if isinstance(m, SpectralConv)), None)
    if first is None:
        model(training_input)
        return
    seen: list[tuple[int, ...]] = []
    hook = first.register_forward_hook(lambda m, inputs, output: seen.append(tuple(inputs[0].shape[2:])))
    try:
        model(training_input)
    finally:
        hook.remove()
    kept, grid = list(first.n_modes), seen[0]
    holds = [*grid[:-1], grid[-1] // 2 + 1]
    if any(k > h for k, h in zip(kept, holds)):
        stored = "x".join(str(n) for n in training_input.shape[2:])
        padded = "" if grid == tuple(training_input.shape[2:]) else f" ({'x'.join(map(str, grid))} with domain padding)"
        raise ConfigError(f"model.n_modes: {list(n_modes)} Fourier modes do not fit the {stored} training "
                          f"grid{padded}, which holds at most {most_modes(grid)}; the missing modes' weights would "
                          f"never train and would act untrained on finer grids; lower model.n_modes or train on a "
                          f"finer grid")


def preflight(module: nn.Module, inputs: list[np.ndarray], model_config: dict) -> None:
    """Run ``module`` once on the inputs of every stored grid (``inputs[0]``: the training grid), in eval mode;
    the training grid's pass also checks FNO's modes against that grid."""
    module.eval()
    with torch.no_grad():
        with taking_inputs(module.model, inputs[0].shape):
            if "n_modes" in model_config:
                check_spectral_modes(module, torch.from_numpy(inputs[0]), model_config["n_modes"])
            else:
                module(torch.from_numpy(inputs[0]))
        for sample in inputs[1:]:
            with taking_inputs(module.model, sample.shape):
                module(torch.from_numpy(sample))
    module.train()
