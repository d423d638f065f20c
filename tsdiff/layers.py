"""Layers shared by the denoiser and the learned prior."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer position encoding of ``pos`` (any shape) → ``(*pos.shape, dim)``."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=pos.device) / half
    )
    ang = pos.float()[..., None] * freqs
    return torch.cat([ang.sin(), ang.cos()], dim=-1)


class AxialAttention(nn.Module):
    """Pre-norm transformer layer over the middle axis of ``(N, S, C)``."""

    def __init__(self, channels: int, heads: int, ff_mult: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.norm1 = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.norm2 = nn.LayerNorm(channels)
        self.ff = nn.Sequential(
            nn.Linear(channels, ff_mult * channels),
            nn.GELU(),
            nn.Linear(ff_mult * channels, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, s, c = x.shape
        qkv = self.qkv(self.norm1(x)).view(n, s, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (N, H, S, d)
        p = self.dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # (N, H, S, d)
        x = x + self.proj(a.transpose(1, 2).reshape(n, s, c))
        return x + self.ff(self.norm2(x))
