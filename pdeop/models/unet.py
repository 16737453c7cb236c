"""U-Net: the convolutional encoder-decoder baseline of the FNO and LSM tables.

Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
MICCAI 2015. The operator-learning form follows LSM's backbone (Wu et al., ICML 2023): coordinates
concatenated to the input and lifted pointwise to ``width`` channels; five scales of widths
w, 2w, 4w, 8w, 8w (double 3x3 convolution + normalisation + ReLU; max-pool down, bilinear up,
concatenated skips); a 1x1 convolution and a pointwise head (w -> 128 -> out, GELU). Batch
normalisation for steady problems, instance normalisation for time stepping (the choice of the LSM
authors' Neural-Solver-Library, "for stability"). The grid is zero-padded on the right and bottom to
a multiple of 16, for the four halvings, and cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pdeop.errors import ConfigError
from pdeop.models.layers import append_coordinates, channelwise

NORMS = {"batch": nn.BatchNorm2d, "instance": lambda c: nn.InstanceNorm2d(c, affine=True)}


def double_conv(c_in: int, c_out: int, norm: str, c_mid: int | None = None) -> nn.Sequential:
    c_mid = c_mid or c_out
    return nn.Sequential(
        nn.Conv2d(c_in, c_mid, 3, padding=1, bias=False), NORMS[norm](c_mid), nn.ReLU(inplace=True),
        nn.Conv2d(c_mid, c_out, 3, padding=1, bias=False), NORMS[norm](c_out), nn.ReLU(inplace=True),
    )


class Up(nn.Module):
    """Bilinear upsampling, concatenation with the skip, double convolution."""

    def __init__(self, c_in: int, c_out: int, norm: str):
        super().__init__()
        self.conv = double_conv(c_in, c_out, norm, c_in // 2)

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=True)
        dy, dx = skip.shape[-2] - up.shape[-2], skip.shape[-1] - up.shape[-1]
        up = F.pad(up, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([skip, up], dim=1))


class UNetBackbone(nn.Module):
    """The pointwise lift of input and coordinates to ``width`` channels, and the five-scale encoder and
    decoder; LSM puts its spectral blocks between the two."""

    spatial_dims = 2  # fields on 2-D grids (the input check, pdeop.inference.taking_inputs)

    def __init__(self, in_channels: int, width: int, norm: str = "batch"):
        super().__init__()
        if norm not in NORMS:
            raise ConfigError(f"model.norm: expected one of {', '.join(NORMS)}, got {norm!r}")
        self.lift = nn.Linear(in_channels + 2, width)
        self.widths = [width, 2 * width, 4 * width, 8 * width, 8 * width]
        self.inc = double_conv(width, width, norm)
        self.down = nn.ModuleList(double_conv(a, b, norm) for a, b in zip(self.widths[:-1], self.widths[1:]))
        self.up = nn.ModuleList([Up(16 * width, 4 * width, norm), Up(8 * width, 2 * width, norm),
                                 Up(4 * width, width, norm), Up(2 * width, width, norm)])

    def lifted(self, x: torch.Tensor) -> torch.Tensor:
        return channelwise(self.lift, append_coordinates(x))

    def encode(self, v: torch.Tensor) -> list[torch.Tensor]:
        """The feature maps of the five scales, finest first."""
        scales = [self.inc(v)]
        for down in self.down:
            scales.append(down(F.max_pool2d(scales[-1], 2)))
        return scales

    def decode(self, scales: list[torch.Tensor]) -> torch.Tensor:
        v = scales[-1]
        for up, skip in zip(self.up, reversed(scales[:-1])):
            v = up(v, skip)
        return v


def pad_to_multiple(v: torch.Tensor, multiple: tuple[int, int]) -> torch.Tensor:
    """Zero-pad ``[b, c, H, W]`` on the right and bottom to multiples of ``multiple``."""
    h, w = v.shape[-2:]
    return F.pad(v, [0, -(-w // multiple[1]) * multiple[1] - w, 0, -(-h // multiple[0]) * multiple[0] - h])


class UNet(UNetBackbone):
    """U-Net on 2D grids: ``[batch, in_channels, H, W] -> [batch, out_channels, H, W]``."""

    def __init__(self, in_channels: int, out_channels: int, width: int = 64, norm: str = "batch",
                 head_width: int = 128):
        super().__init__(in_channels, width, norm)
        self.norm = norm
        self.out_conv = nn.Conv2d(width, width, 1)
        self.head = nn.Sequential(nn.Linear(width, head_width), nn.GELU(), nn.Linear(head_width, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.norm == "instance" and max(h, w) <= 16:
            raise ConfigError(f"model.norm: instance normalisation needs more than 16 points along an axis (the "
                              f"coarsest of the five scales is 1x1 otherwise), got a {h}x{w} grid")
        v = pad_to_multiple(self.lifted(x), (16, 16))
        v = self.out_conv(self.decode(self.encode(v)))[..., :h, :w]
        return channelwise(self.head, v)
