"""Unit-Gaussian normalisation fitted on the training split only.

A per-channel mean and standard deviation (over samples and grid points) rather than FNO's
per-grid-point statistics, so the same normaliser applies at every resolution, which the
zero-shot super-resolution test needs. The statistics are buffers of an ``nn.Module`` and
travel inside every checkpoint.
"""

from __future__ import annotations

import numpy as np
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
    """The normaliser for given per-channel statistics shaped ``[1, channels, 1, ...]`` (fitted, or from a
    checkpoint)."""
    return UnitGaussianNormalizer(mean=mean, std=std, dim=[0, *range(2, mean.ndim)])



class ChannelStats:
    """Per-channel mean and standard deviation accumulated chunk by chunk, for splits read from disk in parts.

    Each chunk's float64 mean and sum of squared deviations are merged with Chan, Golub and
    LeVeque's pairwise update, which keeps the precision of the one-pass fit above.
    """

    def __init__(self):
        self.count = 0
        self.mean: np.ndarray | None = None
        self.squares: np.ndarray | None = None

    def add(self, data: np.ndarray) -> None:
        """Add a chunk shaped ``[samples, channels, *grid]``."""
        wide = np.moveaxis(np.asarray(data, dtype=np.float64), 1, 0).reshape(data.shape[1], -1)
        count, mean = wide.shape[1], wide.mean(axis=1)
        squares = ((wide - mean[:, None]) ** 2).sum(axis=1)
        if self.count == 0:
            self.count, self.mean, self.squares = count, mean, squares
            return
        total = self.count + count
        delta = mean - self.mean
        self.squares = self.squares + squares + delta**2 * self.count * count / total
        self.mean = self.mean + delta * count / total
        self.count = total

    def normaliser(self, ndim: int, dtype: torch.dtype = torch.float32) -> UnitGaussianNormalizer:
        """The normaliser of everything added, for data with ``ndim`` axes (unbiased std, as ``torch.std``)."""
        shape = (1, len(self.mean), *[1] * (ndim - 2))
        mean = torch.from_numpy(self.mean).reshape(shape).to(dtype)
        std = torch.from_numpy(np.sqrt(self.squares / (self.count - 1))).reshape(shape).to(dtype)
        return channel_normaliser(mean, std)
