"""Losses that neuraloperator does not provide (its ``LpLoss`` and ``H1Loss`` are used directly)."""

from __future__ import annotations

import math

from typing import Protocol, runtime_checkable

import torch

from pdeop.errors import ConfigError

# H1's settings for whether the grid wraps around (its finite differences at the edge); null in loss=h1: the data's
PERIODIC_LOSS_KEYS = ("periodic_in_x", "periodic_in_y", "periodic_in_z")


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


@runtime_checkable
class TransformedSpaceModel(Protocol):
    """A model whose output lives in an orthonormal transform's retained block (T1)."""

    def forward_spectral(self, x: torch.Tensor) -> torch.Tensor: ...

    def project(self, y: torch.Tensor) -> torch.Tensor: ...

    @property
    def is_orthonormal(self) -> bool: ...


class TransformedRelativeL2:
    """Relative L2 error taken in the model's transformed space, as T1's reference trains.

    The prediction arrives as retained coefficients of an orthonormal transform (no inverse
    transform); the target is projected onto the same block. By Parseval, ``||y - p||^2 =
    ||Y_kept - P||^2 + ||y||^2 - ||Y_kept||^2`` (the prediction has no dropped modes), so the
    value and its gradient equal the spatial relative L2 (neuraloperator's ``LpLoss``: per
    sample and channel, averaged). Poli et al., "Transform Once", NeurIPS 2022, Sec. 3.
    """

    @staticmethod
    def check_model(model: object) -> None:
        """Raise ``ConfigError`` unless ``model`` predicts coefficients of an orthonormal transform."""
        if not isinstance(model, TransformedSpaceModel):
            raise ConfigError(f"loss: the transformed-space loss needs a model that predicts transform "
                              f"coefficients (T1); {type(model).__name__} predicts on the grid")
        if not model.is_orthonormal:
            raise ConfigError("loss: the transformed-space loss needs an orthonormal transform "
                              "(model.transform=dct); use loss=rel_l2 with the real DFT")

    def __call__(self, coefficients: torch.Tensor, target: torch.Tensor, model: TransformedSpaceModel) -> torch.Tensor:
        kept = model.project(target)
        kept_error = (coefficients - kept).pow(2).flatten(2).sum(-1)
        target_energy = target.flatten(2).pow(2).sum(-1)
        dropped_energy = (target_energy - kept.pow(2).flatten(2).sum(-1)).clamp_min(0)
        return (torch.sqrt(kept_error + dropped_energy) / torch.sqrt(target_energy)).mean()


class PhysicsLoss:
    """The physics-informed objective: ``residual_weight`` x residual misfit + ``boundary_weight`` x boundary
    misfit (+ the model's regulariser, if it has one).

    ``reduction`` says how each misfit's squares are reduced: ``mean`` (PINN and PIG: mean squared
    error) or ``sum``. PIG's Helmholtz setting weighs the residual 1e-4 and the boundary 1.
    """

    def __init__(self, residual_weight: float = 1.0, boundary_weight: float = 1.0, reduction: str = "mean"):
        if reduction not in ("mean", "sum"):
            raise ConfigError(f"loss.reduction: expected 'mean' or 'sum', got {reduction!r}")
        check_weights(residual_weight, boundary_weight)
        self.residual_weight, self.boundary_weight, self.reduction = residual_weight, boundary_weight, reduction

    def __call__(self, residual: torch.Tensor, boundary: torch.Tensor,
                 model: torch.nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The total loss and its parts by name (for logging)."""
        reduce = torch.mean if self.reduction == "mean" else torch.sum
        parts = {"residual": reduce(residual.square()), "boundary": reduce(boundary.square())}
        total = self.residual_weight * parts["residual"] + self.boundary_weight * parts["boundary"]
        if hasattr(model, "regulariser"):
            parts["regulariser"] = model.regulariser()
            total = total + parts["regulariser"]
        return total, parts


class GaussianLikelihoodLoss:
    """GP-HM's objective (Fang et al., ICLR 2024): the GP prior's negative log-likelihood of the solution values
    plus Gaussian negative log-likelihoods of the boundary and residual misfits, each with a learned noise
    precision (the model's ``boundary_nll`` and ``residual_nll``), weighted ``boundary_weight`` (the paper:
    200, advection 500) and ``residual_weight`` (1).
    """

    def __init__(self, boundary_weight: float = 200.0, residual_weight: float = 1.0):
        check_weights(residual_weight, boundary_weight)
        self.residual_weight, self.boundary_weight = residual_weight, boundary_weight

    def __call__(self, residual: torch.Tensor, boundary: torch.Tensor,
                 model: torch.nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if not hasattr(model, "boundary_nll"):
            raise ConfigError(f"loss: the Gaussian-likelihood loss needs a GP model (model=gp_hm), not "
                              f"{type(model).__name__}; use loss=physics")
        parts = {"prior": model.regulariser(), "boundary": model.boundary_nll(boundary),
                 "residual": model.residual_nll(residual)}
        total = parts["prior"] + self.boundary_weight * parts["boundary"] + self.residual_weight * parts["residual"]
        return total, parts


def is_residual_loss(loss: object) -> bool:
    """A physics-informed model's loss (or loss class), taken on PDE residuals rather than solved samples."""
    cls = loss if isinstance(loss, type) else type(loss)
    return issubclass(cls, (PhysicsLoss, GaussianLikelihoodLoss))


def operator_loss_expected(model: str, loss: str) -> str:
    """The one-line message for an operator model given a residual loss."""
    return (f"loss: {loss} is a physics-informed model's residual loss; {model} learns from solved samples "
            f"(loss=rel_l2, h1, hs or rel_l1)")


def check_weights(residual_weight: float, boundary_weight: float) -> None:
    """Finite weights >= 0, not both 0 (a loss of 0 trains nothing and reports the untrained model as tested)."""
    weights = {"loss.residual_weight": residual_weight, "loss.boundary_weight": boundary_weight}
    for key, weight in weights.items():
        if not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"{key}: expected a finite weight >= 0, got {weight}")
    if residual_weight == boundary_weight == 0:
        raise ConfigError("loss.residual_weight, loss.boundary_weight: both are 0, so the loss is 0 whatever the "
                          "model; give at least one a positive weight")
