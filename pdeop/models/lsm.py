"""LSM: Latent Spectral Models.

Wu et al., "Solving High-Dimensional PDEs with Latent Spectral Models", ICML 2023. Coordinates are
concatenated to the input and lifted pointwise to ``width`` channels; a five-scale U-Net
(widths w, 2w, 4w, 8w, 8w; double 3x3 conv + batch norm + ReLU; max-pool down, bilinear up)
carries the features, and every skip connection and the bottleneck pass through a Neural
Spectral Block: the map is cut into patches, each patch is attended into ``num_tokens`` learnable
latent tokens (8 heads), the tokens move by a spectral transition
``z <- z + sum_k W_k [sin(k pi z / K), cos(k pi z / K)]`` with ``K = num_basis``, and the pixels
attend back to them with a residual. A pointwise head (w -> 128 -> out, GELU) follows.

The grid is zero-padded on the right and bottom to the next multiple of ``16 * patch_size``, so
that every scale splits into whole patches (the paper's Darcy setting pads 85 to 96 with 6x6
patches), and cropped back at the end.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pdeop.errors import ConfigError
from pdeop.models.layers import channelwise
from pdeop.models.unet import UNetBackbone, pad_to_multiple

HEADS = 8


class NeuralSpectralBlock(nn.Module):
    """Patchify, attend into latent tokens, spectral transition of the tokens, attend back, de-patchify."""

    def __init__(self, width: int, num_basis: int, patch_size: tuple[int, int], num_tokens: int):
        super().__init__()
        if width % HEADS:
            raise ConfigError(f"model.width: expected a multiple of {HEADS} (attention heads), got {width}")
        self.patch_size = patch_size
        self.num_tokens = num_tokens
        self.register_buffer("frequencies", torch.arange(num_basis, dtype=torch.float32) / num_basis, persistent=False)
        self.basis_weights = nn.Parameter(torch.rand(width, 2 * num_basis) / width)
        self.latent = nn.Parameter(torch.rand(HEADS, num_tokens, width // HEADS) / width)
        self.to_keys_values = nn.Conv2d(width, 2 * width, 1)
        self.to_queries = nn.Conv2d(width, width, 1)

    @staticmethod
    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # unscaled dot-product attention, as in the reference code; [batch, heads, length, dim]
        return torch.softmax(torch.einsum("bhlc,bhsc->bhls", q, k), dim=-1) @ v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        ph, pw = self.patch_size
        patches = (x.view(b, c, h // ph, ph, w // pw, pw).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, ph, pw))
        n, length = patches.shape[0], ph * pw
        # (1) pixels -> latent tokens
        kv = self.to_keys_values(patches).view(n, 2, HEADS, c // HEADS, length).transpose(-1, -2)
        tokens = self.latent.expand(n, -1, -1, -1)
        tokens = self.attend(tokens, kv[:, 0], kv[:, 1]) + tokens                      # [n, heads, T, c/h]
        tokens = tokens.transpose(-1, -2).reshape(n, c, self.num_tokens)
        # (2) spectral transition with sin/cos basis operators
        angles = math.pi * self.frequencies * tokens[..., None]
        basis = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)              # [n, c, T, 2K]
        tokens = torch.einsum("bctm,cm->bct", basis, self.basis_weights) + tokens
        # (3) latent tokens -> pixels, residual
        tokens = tokens.view(n, HEADS, c // HEADS, self.num_tokens).transpose(-1, -2)
        queries = self.to_queries(patches).view(n, HEADS, c // HEADS, length).transpose(-1, -2)
        out = self.attend(queries, tokens, tokens).transpose(-1, -2).reshape(n, c, ph, pw) + patches
        return out.view(b, h // ph, w // pw, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


class LSM(UNetBackbone):
    """Latent Spectral Model on 2D grids: ``[batch, in_channels, H, W] -> [batch, out_channels, H, W]``."""

    def __init__(self, in_channels: int, out_channels: int, width: int = 64, num_tokens: int = 4,
                 num_basis: int = 12, patch_size: list[int] = (6, 6), head_width: int = 128):
        super().__init__(in_channels, width, norm="batch")
        self.patch_size = tuple(int(p) for p in patch_size)
        if len(self.patch_size) != 2 or min(self.patch_size) < 1:
            raise ConfigError(f"model.patch_size: expected two positive integers, got {list(patch_size)}")
        self.spectral = nn.ModuleList(NeuralSpectralBlock(c, num_basis, self.patch_size, num_tokens)
                                      for c in self.widths)
        self.out_conv = nn.Conv2d(width, width, 1)
        self.head = nn.Sequential(nn.Linear(width, head_width), nn.GELU(), nn.Linear(head_width, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        v = pad_to_multiple(self.lifted(x), (16 * self.patch_size[0], 16 * self.patch_size[1]))
        scales = [block(s) for block, s in zip(self.spectral, self.encode(v))]
        v = self.out_conv(self.decode(scales))[..., :h, :w]
        return channelwise(self.head, v)
