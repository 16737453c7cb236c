"""scOT, the scalable operator transformer of Poseidon (Herde et al., "Poseidon: Efficient Foundation
Models for PDEs", NeurIPS 2024; reference code camlab-ethz/poseidon, scOT/model.py).

A U-shaped SwinV2 transformer: patch embedding, windowed-attention stages joined by patch merging,
a mirrored decoder joined by patch unmerging, ConvNeXt blocks on the skip connections, and patch
recovery. Time (the lead time of an all-to-all pair) enters only through conditional layer norms
whose scale and shift are linear functions of it, in every normalisation of the network.

Attribute names follow the reference exactly, so that Poseidon's checkpoints (``model.safetensors``
of a Hugging Face directory, no key prefix) load strictly: ``embeddings``, ``encoder.layers``,
``decoder.layers`` (deepest stage first), ``patch_recovery``, ``residual_blocks``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pdeop.errors import ConfigError

MASKED = -200.0  # logit added between tokens of different regions of a shifted window (the reference adds -100 twice)


class ConditionalLayerNorm(nn.Module):
    """Layer norm over the last axis whose scale and shift are ``Linear(1, dim)`` of the time ``t``."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Linear(1, dim)
        self.bias = nn.Linear(1, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        variance = (x * x).mean(dim=-1, keepdim=True) - mean * mean  # E[x^2] - mean^2, as the reference
        normalised = (x - mean) / torch.sqrt(variance + self.eps)
        shape = (t.shape[0],) + (1,) * (x.ndim - 2) + (-1,)
        return self.weight(t).view(shape) * normalised + self.bias(t).view(shape)


class LayerNorm(nn.LayerNorm):
    """The unconditioned variant: a plain layer norm that takes (and ignores) the time."""

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(x)


def norm(dim: int, eps: float, conditional: bool) -> nn.Module:
    return ConditionalLayerNorm(dim, eps) if conditional else LayerNorm(dim, eps=eps)


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """``[B, H, W, d]`` -> ``[B * windows, window^2, d]``, windows row-major, tokens row-major inside."""
    b, h, w, d = x.shape
    x = x.view(b, h // window, window, w // window, window, d).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, d)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    d = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, d).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, d)


def log_spaced_coordinates(window: int) -> torch.Tensor:
    """SwinV2's continuous relative coordinates, ``sign(u) log2(1 + 8 |u| / (W - 1)) / 3``: ``[1, 2W-1, 2W-1, 2]``."""
    offsets = torch.arange(-(window - 1), window, dtype=torch.float32)
    table = torch.stack(torch.meshgrid(offsets, offsets, indexing="ij"), dim=-1)[None]
    table = table * 8 / max(window - 1, 1)
    return torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)


def relative_position_index(window: int) -> torch.Tensor:
    """Index into the ``(2W-1)^2`` table of the offset between tokens n and m of a window: ``[W^2, W^2]``."""
    rows, cols = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    rows, cols = rows.flatten(), cols.flatten()
    return ((rows[:, None] - rows[None, :] + window - 1) * (2 * window - 1)
            + (cols[:, None] - cols[None, :] + window - 1))


class SelfAttention(nn.Module):
    """Scaled cosine attention in a window with a continuous (MLP) relative position bias (SwinV2)."""

    def __init__(self, dim: int, heads: int, window: int, qkv_bias: bool, dropout: float):
        super().__init__()
        self.heads = heads
        self.logit_scale = nn.Parameter(torch.full((heads, 1, 1), math.log(10.0)))
        self.continuous_position_bias_mlp = nn.Sequential(nn.Linear(2, 512), nn.ReLU(inplace=True),
                                                          nn.Linear(512, heads, bias=False))
        self.register_buffer("relative_coords_table", log_spaced_coordinates(window), persistent=False)
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.query = nn.Linear(dim, dim, bias=qkv_bias)
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        bw, n, d = x.shape
        q, k, v = (layer(x).view(bw, n, self.heads, d // self.heads).transpose(1, 2)
                   for layer in (self.query, self.key, self.value))
        scores = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        scores = scores * torch.clamp(self.logit_scale, max=math.log(100.0)).exp()
        table = self.continuous_position_bias_mlp(self.relative_coords_table).view(-1, self.heads)
        bias = table[self.relative_position_index.view(-1)].view(n, n, self.heads).permute(2, 0, 1)
        scores = scores + 16 * torch.sigmoid(bias)[None]
        if mask is not None:
            windows = mask.shape[0]
            scores = (scores.view(bw // windows, windows, self.heads, n, n)
                      + mask[None, :, None]).view(-1, self.heads, n, n)
        attended = self.dropout(scores.softmax(dim=-1)) @ v
        return attended.transpose(1, 2).reshape(bw, n, d)


class SelfOutput(nn.Module):
    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.dense = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.dense(x))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, qkv_bias: bool, dropout: float):
        super().__init__()
        self.self = SelfAttention(dim, heads, window, qkv_bias, dropout)
        self.output = SelfOutput(dim, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(x, mask))


class Intermediate(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.dense = nn.Linear(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))


class Output(nn.Module):
    def __init__(self, hidden: int, dim: int, dropout: float):
        super().__init__()
        self.dense = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.dense(x))


def shift_mask(size: int, window: int, shift: int) -> torch.Tensor:
    """Which tokens of a cyclically shifted window came from the same region: 0 or ``MASKED``,
    ``[windows, W^2, W^2]``."""
    labels = torch.zeros(1, size, size, 1)
    bounds = (slice(0, size - window), slice(size - window, size - shift), slice(size - shift, size))
    for i, rows in enumerate(bounds):
        for j, cols in enumerate(bounds):
            labels[:, rows, cols, :] = 3 * i + j
    windows = window_partition(labels, window).squeeze(-1)
    return torch.where(windows[:, :, None] == windows[:, None, :], 0.0, MASKED)


class ScOTLayer(nn.Module):
    """One SwinV2 block on a ``resolution``-square token grid: (shifted) window attention and an MLP,
    each followed by its (conditional) layer norm before the residual sum (res-post-norm)."""

    def __init__(self, dim: int, heads: int, resolution: int, window_size: int, shifted: bool, mlp_ratio: float,
                 qkv_bias: bool, dropout: float, eps: float, conditional: bool):
        super().__init__()
        self.resolution = resolution
        self.window = min(resolution, window_size)
        self.shift = window_size // 2 if shifted and resolution > window_size else 0
        self.attention = Attention(dim, heads, self.window, qkv_bias, dropout)
        self.layernorm_before = norm(dim, eps, conditional)
        self.intermediate = Intermediate(dim, int(mlp_ratio * dim))
        self.output = Output(int(mlp_ratio * dim), dim, dropout)
        self.layernorm_after = norm(dim, eps, conditional)
        padded = math.ceil(resolution / self.window) * self.window
        mask = shift_mask(padded, self.window, self.shift) if self.shift else None
        self.register_buffer("attention_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        res, window = self.resolution, self.window
        grid = x.view(b, res, res, d)
        padding = math.ceil(res / window) * window - res
        if padding:
            grid = F.pad(grid, (0, 0, 0, padding, 0, padding))
        if self.shift:
            grid = torch.roll(grid, shifts=(-self.shift, -self.shift), dims=(1, 2))
        size = grid.shape[1]
        attended = window_reverse(self.attention(window_partition(grid, window), self.attention_mask),
                                  window, size, size)
        if self.shift:
            attended = torch.roll(attended, shifts=(self.shift, self.shift), dims=(1, 2))
        attended = attended[:, :res, :res].reshape(b, length, d)
        x = x + self.layernorm_before(attended, t)
        return x + self.layernorm_after(self.output(self.intermediate(x)), t)


class PatchMerging(nn.Module):
    """Halve the token grid: concatenate each 2x2 neighbourhood (4d channels) and reduce to 2d, then norm."""

    def __init__(self, dim: int, eps: float, conditional: bool):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = norm(2 * dim, eps, conditional)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        side = math.isqrt(length)
        grid = x.view(b, side, side, d)
        if side % 2:
            grid = F.pad(grid, (0, 0, 0, 1, 0, 1))
        merged = torch.cat([grid[:, 0::2, 0::2], grid[:, 1::2, 0::2], grid[:, 0::2, 1::2], grid[:, 1::2, 1::2]], dim=-1)
        return self.norm(self.reduction(merged.view(b, -1, 4 * d)), t)


class PatchUnmerging(nn.Module):
    """Double the token grid: expand to 2d channels, spread them over a 2x2 neighbourhood of d/2, norm, mix."""

    def __init__(self, dim: int, eps: float, conditional: bool):
        super().__init__()
        self.upsample = nn.Linear(dim, 2 * dim, bias=False)
        self.mixup = nn.Linear(dim // 2, dim // 2, bias=False)
        self.norm = norm(dim // 2, eps, conditional)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        side = math.isqrt(length)
        expanded = self.upsample(x).view(b, side, side, 2, 2, d // 2).permute(0, 1, 3, 2, 4, 5)
        return self.mixup(self.norm(expanded.reshape(b, 4 * length, d // 2), t))


class EncodeStage(nn.Module):
    def __init__(self, blocks: list[ScOTLayer], downsample: PatchMerging | None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample


class DecodeStage(nn.Module):
    def __init__(self, blocks: list[ScOTLayer], upsample: PatchUnmerging | None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.upsample = upsample


class Encoder(nn.Module):
    def __init__(self, stages: list[EncodeStage]):
        super().__init__()
        self.layers = nn.ModuleList(stages)


class Decoder(nn.Module):
    def __init__(self, stages: list[DecodeStage]):
        super().__init__()
        self.layers = nn.ModuleList(stages)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block on a skip connection: 7x7 depthwise conv, (conditional) norm, 4x MLP, layer scale, residual."""

    def __init__(self, dim: int, eps: float, conditional: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.full((dim,), 1e-6))  # layer scale; the reference's name
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = norm(dim, eps, conditional)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        side = math.isqrt(length)
        y = self.dwconv(x.view(b, side, side, d).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        y = self.weight * self.pwconv2(F.gelu(self.pwconv1(self.norm(y, t))))
        return x + y.reshape(b, length, d)


class PatchEmbeddings(nn.Module):
    def __init__(self, in_channels: int, dim: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.projection = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        x = F.pad(x, (0, (-x.shape[-1]) % p, 0, (-x.shape[-2]) % p))
        return self.projection(x).flatten(2).transpose(1, 2)


class Embeddings(nn.Module):
    def __init__(self, in_channels: int, dim: int, patch_size: int, eps: float, conditional: bool, dropout: float):
        super().__init__()
        self.patch_embeddings = PatchEmbeddings(in_channels, dim, patch_size)
        self.norm = norm(dim, eps, conditional)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.norm(self.patch_embeddings(x), t))


class PatchRecovery(nn.Module):
    def __init__(self, dim: int, out_channels: int, patch_size: int):
        super().__init__()
        self.projection = nn.ConvTranspose2d(dim, out_channels, kernel_size=patch_size, stride=patch_size)
        self.mixup = nn.Conv2d(out_channels, out_channels, kernel_size=5, padding=2, bias=False)

    def forward(self, x: torch.Tensor, grid: int, size: int) -> torch.Tensor:
        b, _, d = x.shape
        image = self.projection(x.transpose(1, 2).reshape(b, d, grid, grid))
        return self.mixup(image[..., :size, :size])


def fourier_resample(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resample a periodic field ``[..., H, W]`` to ``[..., size, size]`` (or ``size``'s two axes) by truncating or
    zero-padding its spectrum, each axis on its own.

    Along an axis going to ``m`` nodes, frequencies -m//2 .. (m - 1)//2 survive (the centred spectrum is cut or
    padded around the zero frequency, at index ``n // 2`` of ``n`` samples), so odd grids (Darcy's 85) and
    rectangular ones resample as even squares do.
    """
    target = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(x.shape[-2:]) == target:
        return x
    spectrum = torch.fft.fftshift(torch.fft.fft2(x, norm="forward"), dim=(-2, -1))
    for axis, n, m in zip((-2, -1), x.shape[-2:], target):
        if m < n:
            spectrum = spectrum.narrow(axis, n // 2 - m // 2, m)
        elif m > n:
            before = m // 2 - n // 2
            pad = (before, m - n - before) if axis == -1 else (0, 0, before, m - n - before)
            spectrum = F.pad(spectrum, pad)
    return torch.fft.ifft2(torch.fft.ifftshift(spectrum, dim=(-2, -1)), norm="forward").real.to(x.dtype)


class ScOT(nn.Module):
    """Poseidon's scOT: ``[B, in_channels, H, W]`` (and lead time ``t`` ``[B]``) -> ``[B, out_channels, H, W]``.

    The network runs at ``image_size`` squared; other grids (odd, rectangular) are resampled in Fourier space on the
    way in and out. Sizes of the paper: T (embed_dim 48, depths [4, 4, 4, 4],
    ~21M parameters), B (96, [8, 8, 8, 8]), L (192, [8, 8, 8, 8]); all with num_heads
    [3, 6, 12, 24], skip_connections [2, 2, 2, 0], window_size 16, patch_size 4. Without ``t``
    a conditioned model uses t = 1, Poseidon's time for time-independent tasks.
    """

    spatial_dims = 2  # fields on 2-D grids (the input check, pdeop.inference.taking_inputs)

    def __init__(self, in_channels: int, out_channels: int, image_size: int = 128, patch_size: int = 4,
                 embed_dim: int = 48, depths: list[int] = (4, 4, 4, 4), num_heads: list[int] = (3, 6, 12, 24),
                 skip_connections: list[int] = (2, 2, 2, 0), window_size: int = 16, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, use_conditioning: bool = True, learn_residual: bool = False,
                 layer_norm_eps: float = 1e-5, hidden_dropout_prob: float = 0.0,
                 attention_probs_dropout_prob: float = 0.0):
        super().__init__()
        stages = len(depths)
        if len(num_heads) != stages or len(skip_connections) != stages:
            raise ConfigError(f"model.num_heads and model.skip_connections: expected one entry per stage "
                              f"({stages}, as depths), got {list(num_heads)} and {list(skip_connections)}")
        step = patch_size * 2 ** (stages - 1)
        if image_size % step:
            up, down = -(-image_size // step) * step, max(step, image_size // step * step)
            raise ConfigError(f"model.image_size: {image_size} / patch_size {patch_size} must be divisible by "
                              f"2^(stages - 1) = {2 ** (stages - 1)}; scOT runs at image_size (by default the data's "
                              f"grid) and resamples other grids to it: set model.image_size={up}"
                              + (f" (or {down})" if down != up else ""))
        for i, heads in enumerate(num_heads):
            if (embed_dim * 2**i) % heads:
                raise ConfigError(f"model.num_heads[{i}]: {heads} does not divide the stage width {embed_dim * 2**i}")
        self.image_size, self.patch_size, self.grid = image_size, patch_size, image_size // patch_size
        self.out_channels = out_channels
        self.use_conditioning = use_conditioning
        self.learn_residual = learn_residual and use_conditioning  # as the reference: residual only when conditioned
        eps, cond, drop = layer_norm_eps, use_conditioning, hidden_dropout_prob
        attention_drop = attention_probs_dropout_prob

        def blocks(i: int, shifted: list[bool]) -> list[ScOTLayer]:
            return [ScOTLayer(embed_dim * 2**i, num_heads[i], self.grid // 2**i, window_size, s, mlp_ratio, qkv_bias,
                              attention_drop, eps, cond) for s in shifted]

        self.embeddings = Embeddings(in_channels, embed_dim, patch_size, 1e-5, cond, drop)
        self.encoder = Encoder([
            EncodeStage(blocks(i, [j % 2 == 1 for j in range(depths[i])]),
                        PatchMerging(embed_dim * 2**i, 1e-5, cond) if i < stages - 1 else None)
            for i in range(stages)])
        self.decoder = Decoder([
            DecodeStage(blocks(i, [(depths[i] - 1 - j) % 2 == 1 for j in range(depths[i])]),
                        PatchUnmerging(embed_dim * 2**i, 1e-5, cond) if i > 0 else None)
            for i in reversed(range(stages))])
        self.patch_recovery = PatchRecovery(embed_dim, out_channels, patch_size)
        self.residual_blocks = nn.ModuleList(
            nn.ModuleList([ConvNeXtBlock(embed_dim * 2**i, eps, cond) for _ in range(count)]) if count
            else nn.ModuleList([nn.Identity()])
            for i, count in enumerate(skip_connections))
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """The reference's initialisation: N(0, 0.02) for linear and conv weights, zero biases."""
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def skip(self, i: int, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        for block in self.residual_blocks[i]:
            x = x if isinstance(block, nn.Identity) else block(x, t)
        return x

    @property
    def takes_time(self) -> bool:
        """Whether the lead time reaches the network: only through the conditional norms."""
        return self.use_conditioning

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        size = tuple(x.shape[-2:])
        if t is None:
            t = torch.ones(x.shape[0], device=x.device, dtype=x.dtype)
        t = t.reshape(x.shape[0], 1).to(x.dtype)
        x = fourier_resample(x, self.image_size)
        h = self.embeddings(x, t)
        skips = []
        for stage in self.encoder.layers:
            stage_input = h
            for block in stage.blocks:
                h = block(h, t)
            skips.append(h)
            if stage.downsample is not None:
                h = stage.downsample(h + stage_input, t)
        stages = len(skips)
        for k, stage in enumerate(self.decoder.layers):
            i = stages - 1 - k
            h = self.skip(i, skips[i], t) if k == 0 else h + self.skip(i, skips[i], t)
            for block in stage.blocks:
                h = block(h, t)
            if stage.upsample is not None:
                h = stage.upsample(h, t)
        out = self.patch_recovery(h, self.grid, self.image_size)
        if self.learn_residual:
            out = out + x[:, : self.out_channels]
        return fourier_resample(out, size)
