"""Unit-Gaussian normalisation fitted on the training split only.

A per-channel mean and standard deviation (over samples and grid points) rather than FNO's
per-grid-point statistics, so the same normaliser applies at every resolution, which the
zero-shot super-resolution test needs. The statistics are buffers of an ``nn.Module`` and
travel inside every checkpoint.
"""

from __future__ import annotations

import torch
from neuralop.data.transforms.normalizers import UnitGaussianNormalizer


def fit_channel_normaliser(data: torch.Tensor) -> UnitGaussianNormalizer:
    """Fit per-channel statistics on ``data`` shaped ``[samples, channels, *grid]``.

    The statistics are computed in float64 in one pass over the whole split (not the
    incremental E[x^2] - E[x]^2 update, which loses precision when the mean dominates).
    """
    reduce = [0, *range(2, data.ndim)]
    wide = data.to(torch.float64)
    mean = wide.mean(dim=reduce, keepdim=True)
    std = wide.std(dim=reduce, keepdim=True)
    return channel_normaliser(mean.to(data.dtype), std.to(data.dtype))


def channel_normaliser(mean: torch.Tensor, std: torch.Tensor) -> UnitGaussianNormalizer:
    """The normaliser for given per-channel statistics shaped ``[1, channels, 1, ...]`` (fitted, or from a checkpoint)."""
    return UnitGaussianNormalizer(mean=mean, std=std, dim=[0, *range(2, mean.ndim)])

