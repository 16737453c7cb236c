"""Losses that neuraloperator does not provide (its ``LpLoss`` and ``H1Loss`` are used directly)."""

from __future__ import annotations

import torch


class FourierSobolevLoss:
    """Relative H^1 error measured in Fourier space, as MgNO's reference code trains (its ``HsLoss``, k = 1).

    Each Fourier coefficient (orthonormal FFT over the spatial axes) is weighted by
    ``sqrt(1 + a^2 |k|^2)`` with integer wavenumbers ``k``; components with ``|k_i| >=
    max_wavenumber`` get no derivative weight. The loss is ``||w (P - T)|| / ||w T||`` per
    sample, averaged over the batch. With ``a = 0`` it is the relative L2 error (Parseval).
    He, Liu, Xu, "MgNO", ICLR 2024 (reference code: utilities3.HsLoss).
    """

    def __init__(self, a: float = 1.0, max_wavenumber: int = 20):
        self.a = a
        self.max_wavenumber = max_wavenumber

    def weights(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        squared = torch.zeros(shape, device=device)
        for axis, n in enumerate(shape):
            k = (torch.fft.fftfreq(n, device=device) * n).abs()
            k = torch.where(k < self.max_wavenumber, k, torch.zeros_like(k))
            view = [1] * len(shape)
            view[axis] = n
            squared = squared + k.view(view) ** 2
        return torch.sqrt(1 + self.a**2 * squared)

    def __call__(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(2, target.ndim))
        weight = self.weights(target.shape[2:], target.device)
        error = torch.fft.fftn(prediction - target, dim=dims, norm="ortho") * weight
        reference = torch.fft.fftn(target, dim=dims, norm="ortho") * weight
        return (error.flatten(1).norm(dim=1) / reference.flatten(1).norm(dim=1)).mean()
