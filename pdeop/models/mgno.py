"""MgNO: a neural operator whose linear part is one multigrid V-cycle.

He, Liu and Xu, "MgNO: Efficient Parameterization of Linear Operators via Multigrid",
ICLR 2024. Each layer is ``u <- act(VCycle(u) + W u)`` with a 1x1 convolution ``W``; the
V-cycle is linear: smoothing ``u <- u + S(f - A u)`` with 3x3 convolutions ``A`` (u -> f) and
``S`` (f -> u), learned stride-2 restrictions of ``u`` and ``f``, and learned transposed-conv
prolongation added to the finer ``u``. There is no lifting; a bias-free 1x1 convolution
projects to the output.

The reference code's Navier-Stokes model (``MgNO_NS``) departs from this in four ways, each an
option here: ``norm`` normalises ``u`` over (channels, height, width) after every prolongation
(the reference's LayerNorm, whose per-node affine ties it to 64x64; here the affine is per
channel, so the operator stays resolution-free), ``pointwise=False`` drops ``W``,
``input_residual`` adds the latest input states to the output (the model learns the change),
and ``bias`` gives the smoothing convolutions a bias (its ``--bias`` flag).

Grids need not be powers of two: restriction maps ``n`` nodes to ``ceil(n / 2)`` (vertex-centred
for odd ``n``), and each prolongation's ``2 n`` outputs are cropped to the finer grid's size, so
one set of weights serves every resolution. With circular padding the prolongation wraps around
too (the reference code zero-pads it), so the whole operator is periodic; ``periodic_prolongation=False``
restores the reference's zero padding, only to compare outputs with it
(``tests/test_reference_outputs.py``).

``prolongation_kernels`` gives each level's transposed convolution the reference's kernel size
instead: its Darcy-smooth model (``MgNO_DC_smooth``) hard-codes 3x3 kernels where the finer grid
is odd and 4x4 where it is even ([3, 4, 3, 3, 4] for 211 -> 106 -> 53 -> 27 -> 14 -> 7), so that
each prolongation lands on the finer grid without cropping; 3x3 kernels hold 7 fewer weights per
channel pair (678,093 parameters in the 5 x 24 Darcy setting against 738,573 with 4x4 kernels).
A 3x3 kernel serves every grid too: onto an even grid it gets one extra output node (PyTorch's
``output_padding``), the 4x4 kernel's output with its last row and column zero.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pdeop.errors import ConfigError

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU}
PADDING_MODES = ("zeros", "circular")


def conv3x3(c_in: int, c_out: int, padding_mode: str, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=bias, padding_mode=padding_mode)


class Prolongation(nn.Module):
    """Learned prolongation: a ``kernel`` x ``kernel`` (4 or 3) stride-2 transposed convolution, cropped to the
    finer grid.

    With ``circular`` padding the coarse grid is wrapped by one node before the transposed
    convolution, so the prolongation, like every other part of the cycle, is periodic; with
    ``periodic=False`` it is zero-padded whatever ``padding_mode`` says, as in the reference code.
    A 3x3 kernel (the reference's onto odd grids, module docstring) maps ``n`` coarse nodes to
    ``2 n - 1``; ``output_padding`` adds the ``2 n``-th, so that it reaches an even finer grid too.
    """

    def __init__(self, channels: int, padding_mode: str, periodic: bool = True, kernel: int = 4):
        super().__init__()
        self.circular = padding_mode == "circular" and periodic
        extra = 1 if kernel == 3 and not self.circular else 0
        self.up = nn.ConvTranspose2d(channels, channels, kernel, stride=2, padding=0 if self.circular else 1,
                                     output_padding=extra, bias=False)

    def forward(self, coarse: torch.Tensor, fine_shape: torch.Size) -> torch.Tensor:
        if self.circular:
            # wrapping adds one node each side, which shifts the output by 3 against padding=1
            fine = self.up(F.pad(coarse, (1, 1, 1, 1), mode="circular"))[..., 3:, 3:]
        else:
            fine = self.up(coarse)
        return fine[..., : fine_shape[-2], : fine_shape[-1]]


def check_prolongation_kernels(kernels: list[int] | None, levels: int) -> None:
    """``model.prolongation_kernels``: None, or a size 3 or 4 for each of the ``levels - 1`` prolongations."""
    if kernels is not None and (len(kernels) != levels - 1 or any(k not in (3, 4) for k in kernels)):
        raise ConfigError(f"model.prolongation_kernels: expected {levels - 1} kernel sizes (3 or 4), one per "
                          f"prolongation of the {levels} levels, finest first, got {list(kernels)}")


class Smoother(nn.Module):
    """One smoothing step ``u <- u + S(f - A u)``; without ``A`` (the very first step) ``u <- S(f)``."""

    def __init__(self, u_channels: int, f_channels: int, padding_mode: str, initial: bool = False, bias: bool = False):
        super().__init__()
        self.A = None if initial else conv3x3(u_channels, f_channels, padding_mode, bias=bias)
        self.S = conv3x3(f_channels, u_channels, padding_mode, bias=bias)

    def forward(self, u: torch.Tensor | None, f: torch.Tensor) -> torch.Tensor:
        if self.A is None:
            return self.S(f)
        return u + self.S(f - self.A(u))


class VCycle(nn.Module):
    """MgConv: one linear V-cycle over ``len(smoothing)`` levels.

    ``smoothing[l] = [pre, post]`` smoothing steps at level ``l`` (finest first); post-smoothing
    at the coarsest level is never reached. ``residual_restriction`` restricts ``f - A u``
    instead of ``f`` (off in the paper's default). ``norm`` normalises ``u`` after each prolongation.
    ``periodic_prolongation`` and ``prolongation_kernels`` (one kernel size per prolongation, finest
    first; default 4 everywhere): see ``Prolongation``.
    """

    def __init__(self, in_channels: int, channels: int, smoothing: list[list[int]], padding_mode: str = "zeros",
                 residual_restriction: bool = False, norm: bool = False, bias: bool = False,
                 periodic_prolongation: bool = True, prolongation_kernels: list[int] | None = None):
        super().__init__()
        levels = len(smoothing)
        kernels = list(prolongation_kernels or [4] * (levels - 1))
        if smoothing[0][0] < 1:
            raise ConfigError("model.smoothing: the finest level needs at least one pre-smoothing step")
        self.pre = nn.ModuleList(
            nn.ModuleList(
                Smoother(channels, in_channels, padding_mode, initial=(level == 0 and i == 0), bias=bias)
                for i in range(pre)
            )
            for level, (pre, _) in enumerate(smoothing)
        )
        self.post = nn.ModuleList(
            nn.ModuleList(Smoother(channels, in_channels, padding_mode, bias=bias) for _ in range(post))
            for _, post in smoothing[:-1]
        )
        self.restrict_u = nn.ModuleList(conv3x3(channels, channels, padding_mode, 2) for _ in range(levels - 1))
        self.restrict_f = nn.ModuleList(conv3x3(in_channels, in_channels, padding_mode, 2) for _ in range(levels - 1))
        self.residual = nn.ModuleList(
            conv3x3(channels, in_channels, padding_mode) for _ in range(levels - 1 if residual_restriction else 0)
        )
        self.prolong = nn.ModuleList(
            Prolongation(channels, padding_mode, periodic_prolongation, kernel) for kernel in kernels
        )
        self.norms = nn.ModuleList(
            nn.GroupNorm(1, channels) if norm else nn.Identity() for _ in range(levels - 1)
        )

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        u, us, fs = None, [], []
        for level, smoothers in enumerate(self.pre):
            if level > 0:
                f = self.restrict_f[level - 1](f - self.residual[level - 1](u) if len(self.residual) else f)
                u = self.restrict_u[level - 1](u)
            for smoother in smoothers:
                u = smoother(u, f)
            us.append(u)
            fs.append(f)
        for level in reversed(range(len(self.prolong))):
            fine = us[level]
            u = self.norms[level](fine + self.prolong[level](u, fine.shape))
            for smoother in self.post[level]:
                u = smoother(u, fs[level])
        return u


class MgNO(nn.Module):
    """Multigrid neural operator: ``num_layers`` x ``act(VCycle(u) + W u)``, then a bias-free 1x1 projection.

    ``padding_mode`` follows the boundary condition: ``zeros`` for Dirichlet problems (Darcy),
    ``circular`` for periodic ones (Navier-Stokes). ``norm``, ``pointwise``, ``input_residual``
    and ``bias``: the reference's Navier-Stokes variant (module docstring); ``input_residual``
    adds the last ``out_channels`` input channels (the latest states of a rollout window). The coarsest of
    ``len(smoothing)`` levels must keep at least 2 nodes a side, which bounds the number of levels from the grid.
    ``periodic_prolongation=False`` zero-pads the prolongation under circular padding, as the
    reference's ``MgNO_NS`` does; it exists only to compare outputs with the reference code.
    ``prolongation_kernels``: one transposed-convolution kernel size (3 or 4) per prolongation, finest
    first, as the reference's Darcy-smooth model chooses them (module docstring); None: 4x4 everywhere.
    """

    spatial_dims = 2  # fields on 2-D grids (the input check, pdeop.inference.taking_inputs)

    def __init__(self, in_channels: int, out_channels: int, channels: int = 24, num_layers: int = 5,
                 smoothing: list[list[int]] = ((1, 0),) * 5 + ((2, 0),), padding_mode: str = "zeros",
                 residual_restriction: bool = False, activation: str = "gelu", norm: bool = False,
                 pointwise: bool = True, input_residual: bool = False, bias: bool = False,
                 periodic_prolongation: bool = True, prolongation_kernels: list[int] | None = None):
        super().__init__()
        smoothing = [list(s) for s in smoothing]
        if padding_mode not in PADDING_MODES:
            raise ConfigError(f"model.padding_mode: expected one of {PADDING_MODES}, got {padding_mode!r}")
        if activation not in ACTIVATIONS:
            raise ConfigError(f"model.activation: expected one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if not smoothing or any(len(s) != 2 or min(s) < 0 for s in smoothing):
            raise ConfigError(f"model.smoothing: expected a list of [pre, post] counts >= 0, one per level, "
                              f"got {smoothing}")
        check_prolongation_kernels(prolongation_kernels, len(smoothing))
        if num_layers < 1 or channels < 1:
            raise ConfigError(f"model.num_layers and model.channels: expected >= 1, got {num_layers} and {channels}")
        if input_residual and out_channels > in_channels:
            raise ConfigError(f"model.input_residual: adds the last {out_channels} input channels to the output, "
                              f"but the input has {in_channels}")
        self.levels = len(smoothing)
        self.input_residual = input_residual
        widths = [in_channels] + [channels] * (num_layers - 1)
        self.cycles = nn.ModuleList(
            VCycle(w, channels, smoothing, padding_mode, residual_restriction, norm, bias, periodic_prolongation,
                   prolongation_kernels)
            for w in widths
        )
        self.pointwise = nn.ModuleList(nn.Conv2d(w, channels, 1) if pointwise else None for w in widths)
        self.project = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.act = ACTIVATIONS[activation]()

    def coarsest_size(self, size: int) -> int:
        for _ in range(self.levels - 1):
            size = (size + 1) // 2
        return size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for size in x.shape[-2:]:
            if self.coarsest_size(size) < 2:
                fits = max(1, math.floor(math.log2(max(size - 1, 1))) + 1)
                raise ConfigError(
                    f"model.smoothing: {self.levels} multigrid levels coarsen a {size}-node grid to "
                    f"{self.coarsest_size(size)} node(s); at most {fits} levels fit it (one [pre, post] pair each), "
                    f"or train on a finer grid"
                )
        u = x
        for cycle, pointwise in zip(self.cycles, self.pointwise):
            u = self.act(cycle(u) + pointwise(u) if pointwise is not None else cycle(u))
        out = self.project(u)
        return out + x[:, x.shape[1] - out.shape[1]:] if self.input_residual else out
