"""T1 (Transform Once): a neural operator that works entirely in the frequency domain.

Poli et al., "Transform Once: Efficient Operator Learning in Frequency Domain", NeurIPS 2022.
A pointwise lift of (input, coordinates), one forward orthonormal DCT-II (or real DFT), then
``num_layers`` blocks on the retained low-frequency block ``[:modes[0], :modes[1]]`` -- per-mode
channel mixing, activation, mixing along each axis, residual -- a pointwise head
(width -> 128 -> out, near-zero initialisation) still in frequency space, and one inverse
transform with the higher modes zero. Weights follow the paper's variance-preserving
initialisation, std = gain * sqrt(N / (fan_in * m1 * m2)) with N the number of grid points of
``signal_resolution`` (gain 1 for the DCT, 1/2 for the DFT); axis mixing uses sqrt(1 / modes).

Resolution: the transform is orthonormal at ``signal_resolution`` (the training grid); on any
other grid the coefficients are rescaled by sqrt(N_train / N), so the same weights apply the
same operator to the same function sampled more finely or coarsely. The reference code
(DiffEqML/kairos) does not rescale: its operator changes with the grid. ``rescale_coefficients=False``
reproduces that, only to compare outputs with the reference (``tests/test_reference_outputs.py``).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from pdeop.errors import ConfigError
from pdeop.models.layers import append_coordinates, channelwise

TRANSFORMS = ("dct", "dft")
WEIGHT_INITS = ("variance_preserving", "fno", "kaiming")
ACTIVATIONS = {"gelu": F.gelu, "tanh": torch.tanh, "sin": torch.sin}


@lru_cache(maxsize=64)
def _dct_rows(n: int, modes: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The first ``modes`` rows of the orthonormal DCT-II matrix of size ``n``, built once per device and dtype."""
    k = torch.arange(modes, dtype=torch.float64)[:, None]
    j = torch.arange(n, dtype=torch.float64)[None, :]
    rows = torch.cos(math.pi * (2 * j + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    rows[0] /= math.sqrt(2.0)
    return rows.to(device=device, dtype=dtype)


def dct_rows(n: int, modes: int, like: torch.Tensor) -> torch.Tensor:
    """DCT rows on ``like``'s device in its real dtype; cached, so no host-to-device copy per forward."""
    return _dct_rows(n, modes, like.device, like.real.dtype)


class T1Block(nn.Module):
    """One T1 layer on the retained block ``z`` of shape ``[batch, width, m1, m2]``."""

    def __init__(self, width: int, modes: tuple[int, int], signal_points: int, transform: str, activation: str,
                 weight_init: str = "variance_preserving"):
        super().__init__()
        m1, m2 = modes
        gain = 1.0 if transform == "dct" else 0.5
        dtype = torch.float32 if transform == "dct" else torch.cfloat
        if weight_init == "variance_preserving":
            channel_std = gain * math.sqrt(signal_points / (width * m1 * m2))
        elif weight_init == "fno":
            channel_std = gain / (width * width)
        else:
            channel_std = gain * math.sqrt(1.0 / width)
        self.channel_mixing = nn.Parameter(channel_std * torch.randn(width, width, m1, m2, dtype=dtype))
        self.mixing_1 = nn.Parameter(gain * math.sqrt(1.0 / m1) * torch.randn(m1, m1, width, dtype=dtype))
        self.mixing_2 = nn.Parameter(gain * math.sqrt(1.0 / m2) * torch.randn(m2, m2, width, dtype=dtype))
        self.act = ACTIVATIONS[activation]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.act(torch.einsum("bixy,ioxy->boxy", z, self.channel_mixing))
        h = torch.einsum("bcix,ioc->bcox", h, self.mixing_1)
        h = torch.einsum("bcyi,ioc->bcyo", h, self.mixing_2)
        return z + h


class T1(nn.Module):
    """Transform Once operator on 2D grids: ``[batch, in_channels, H, W] -> [batch, out_channels, H, W]``.

    ``transform``: ``dct`` (real weights, the paper's choice for non-periodic problems) or
    ``dft`` (real FFT, complex weights). ``activation`` inside the blocks: ``gelu`` (DCT only),
    ``tanh`` or ``sin``; the head uses ``sin`` as in the reference code. ``rescale_coefficients=False``
    drops the sqrt(N_train / N) rescaling on grids other than ``signal_resolution``, as the reference
    code does (module docstring); it exists only to compare outputs with the reference.
    """

    spatial_dims = 2  # fields on 2-D grids (the input check, pdeop.inference.taking_inputs)

    def __init__(self, in_channels: int, out_channels: int, modes: list[int] = (12, 12), width: int = 32,
                 num_layers: int = 4, signal_resolution: list[int] = (64, 64), transform: str = "dct",
                 activation: str = "gelu", head_width: int = 128, weight_init: str = "variance_preserving",
                 rescale_coefficients: bool = True):
        super().__init__()
        self.modes = tuple(int(m) for m in modes)
        self.signal_resolution = tuple(int(n) for n in signal_resolution)
        if transform not in TRANSFORMS:
            raise ConfigError(f"model.transform: expected one of {TRANSFORMS}, got {transform!r}")
        if activation not in ACTIVATIONS or (transform == "dft" and activation == "gelu"):
            valid = sorted(ACTIVATIONS) if transform == "dct" else ["sin", "tanh"]
            raise ConfigError(f"model.activation: expected one of {valid} with transform={transform}, "
                              f"got {activation!r}")
        if weight_init not in WEIGHT_INITS:
            raise ConfigError(f"model.weight_init: expected one of {WEIGHT_INITS}, got {weight_init!r}")
        if len(self.modes) != 2 or min(self.modes) < 1 or len(self.signal_resolution) != 2:
            raise ConfigError(f"model.modes and model.signal_resolution: expected two positive integers each, "
                              f"got {list(modes)} and {list(signal_resolution)}")
        self.transform = transform
        self.rescale_coefficients = rescale_coefficients
        self.check_grid(self.signal_resolution, key="model.modes (on model.signal_resolution)")
        self.lift = nn.Linear(in_channels + 2, width)
        points = self.signal_resolution[0] * self.signal_resolution[1]
        self.blocks = nn.ModuleList(T1Block(width, self.modes, points, transform, activation, weight_init)
                                    for _ in range(num_layers))
        dtype = torch.float32 if transform == "dct" else torch.cfloat
        self.head_1 = nn.Parameter(1e-8 * torch.randn(width, head_width, dtype=dtype))
        self.head_2 = nn.Parameter(1e-8 * torch.randn(head_width, out_channels, dtype=dtype))

    def check_grid(self, grid: tuple[int, int], key: str = "model.modes") -> None:
        """The retained modes must exist on ``grid`` (DFT: along the last axis only half the grid)."""
        available = (grid[0], grid[1]) if self.transform_is_dct else (grid[0], grid[1] // 2 + 1)
        if self.modes[0] > available[0] or self.modes[1] > available[1]:
            raise ConfigError(
                f"{key}: modes {list(self.modes)} do not fit a {grid[0]}x{grid[1]} grid with the "
                f"{'DCT' if self.transform_is_dct else 'real DFT'} (at most {list(available)})"
            )

    @property
    def transform_is_dct(self) -> bool:
        return self.transform == "dct"

    def _forward_transform(self, v: torch.Tensor) -> torch.Tensor:
        h, w = v.shape[-2:]
        m1, m2 = self.modes
        if self.transform_is_dct:
            return torch.einsum("kh,bchw,lw->bckl", dct_rows(h, m1, v), v, dct_rows(w, m2, v))
        return torch.fft.rfft2(v, norm="ortho")[..., :m1, :m2]

    def _inverse_transform(self, z: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        h, w = grid
        if self.transform_is_dct:
            return torch.einsum("kh,bckl,lw->bchw", dct_rows(h, self.modes[0], z), z, dct_rows(w, self.modes[1], z))
        full = F.pad(z, (0, w // 2 + 1 - z.shape[-1], 0, h - z.shape[-2]))
        return torch.fft.irfft2(full, s=(h, w), norm="ortho")

    def grid_scale(self, grid: tuple[int, int]) -> float:
        """sqrt(N_train / N): makes the orthonormal coefficients on ``grid`` those of the training grid."""
        if not self.rescale_coefficients:
            return 1.0
        return math.sqrt(self.signal_resolution[0] * self.signal_resolution[1] / (grid[0] * grid[1]))

    def forward_spectral(self, x: torch.Tensor) -> torch.Tensor:
        """The retained block of the output's orthonormal transform on ``x``'s grid (no inverse transform).

        The paper trains in this space: the loss against ``project(target)`` plus the energy of
        the target's dropped modes equals the spatial loss by Parseval (see ``TransformedRelativeL2``).
        """
        grid = tuple(x.shape[-2:])
        self.check_grid(grid)
        v = channelwise(self.lift, append_coordinates(x))
        scale = self.grid_scale(grid)
        z = self._forward_transform(v) * scale
        for block in self.blocks:
            z = block(z)
        z = torch.einsum("bixy,io->boxy", torch.sin(torch.einsum("bixy,io->boxy", z, self.head_1)), self.head_2)
        return z / scale

    def project(self, y: torch.Tensor) -> torch.Tensor:
        """The retained block of ``y``'s orthonormal transform, comparable with ``forward_spectral``."""
        self.check_grid(tuple(y.shape[-2:]))
        return self._forward_transform(y)

    @property
    def is_orthonormal(self) -> bool:
        """Whether the retained block is an orthonormal projection of the output (Parseval holds).

        True for the DCT. The real DFT's block keeps only the non-negative row frequencies, and
        the inverse transform symmetrises its first column, so its coefficients are not the
        output's own.
        """
        return self.transform_is_dct

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._inverse_transform(self.forward_spectral(x), tuple(x.shape[-2:]))
