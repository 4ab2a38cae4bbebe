"""Frame-level encoders: an image ViT run on each frame, then temporal average or attention pooling.

The paper's "Avg frame-level" and "Att-pool frame-level" baselines and the ImageViT model (arXiv:2312.07395 §4:
the L_t = 0 case of ViViT's factorised encoder). Each frame is embedded with 2D patches (tubelet 1) and
no temporal position table, so the per-frame encoder is exactly an image ViT; attention never crosses
frames. `SliceBlock` (a block applied to each time slice separately) is shared with the factorised
encoder's spatial stage.
"""

from __future__ import annotations

import torch
from torch import nn

from vfbench.models.blocks import Block, attention
from vfbench.models.encoder import VideoEncoder
from vfbench.models.patch import TubeletEmbed, temporal_table
from vfbench.models.registry import register_encoder
from vfbench.models.tower import LayerShape, TokenLayout
from vfbench.spec import ModelSpec

POOLS = ("avg", "attnpool")


class SliceBlock(Block):
    """A pre-LN block whose attention stays inside each time slice: (B, T'·N, D) is viewed as
    (B, T', N, D) and Attention attends over its second-to-last axis (N). Same parameters as Block, so
    adapters and LoRA find the same attribute names."""

    def forward(self, x: torch.Tensor, grid: tuple | None = None) -> torch.Tensor:
        if grid is None:
            raise ValueError("a per-slice block needs the (T', N) grid; tokens without one cannot be split by time")
        B, S, D = x.shape
        x = x.reshape(B, grid[0], grid[1], D)  # (B, T', N, D)
        return super().forward(x, grid).reshape(B, S, D)

    def layer_shape(self, layout: TokenLayout) -> LayerShape:
        """Attention within each slice: sequences of N tokens."""
        return LayerShape(layout.tokens, (layout.grid[1] if layout.grid else layout.tokens,))

    def forward_flops(self, tokens: int, grid: tuple | None = None) -> int:
        """T' independent sequences of N tokens: attention is T'·4·N²·D instead of 4·S²·D (vfbench's
        analytic model, after Korthikanti et al. 2022)."""
        if grid is None:
            return super().forward_flops(tokens)
        return grid[0] * super().forward_flops(grid[1])


class AttentionPool(nn.Module):
    """A learned query attends over the T frame embeddings with multi-head attention (the attentional
    pooler of CoCa / TubeViT). Learned temporal positions (interpolated like the tubelet table) are added
    to the frame embeddings first so the pool can weigh frames by time [R: the paper does not say]."""

    def __init__(self, dim: int, heads: int, temporal_pos_len: int, kernel: str = "sdpa"):
        super().__init__()
        self.heads, self.kernel = heads, kernel
        self.query = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_time = nn.Parameter(torch.randn(temporal_pos_len, dim) * 0.02)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, D)."""
        B, T, D = frames.shape
        kv = self.kv(frames + temporal_table(self.pos_time, T)[None])  # (B, T, 2D)
        k, v = kv.reshape(B, T, 2, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # each (B, h, T, d)
        q = self.q(self.query).reshape(1, self.heads, 1, D // self.heads).expand(B, -1, -1, -1)  # (B, h, 1, d)
        out = attention(q, k, v, self.kernel)  # (B, h, 1, d)
        return self.proj(out.reshape(B, D))

    def forward_flops(self, slices: int) -> int:
        """Per clip: k/v projections of T tokens, q/out projections of one, and the (1 x T) attention.
        (The query projection does not depend on the clip; counted once per clip for simplicity.)"""
        d = self.proj.in_features
        return 2 * slices * 2 * d * d + 2 * 2 * d * d + 4 * slices * d


@register_encoder("frame")
class FrameEncoder(VideoEncoder):
    """Per-frame image ViT (`SliceBlock`s over a (T, N) grid) with `pool` = avg | attnpool.

    avg: the spatio-temporal mean of the normed tokens, which equals the temporal mean of per-frame means
    because every frame keeps the same token count (masking is per frame for this encoder).
    """

    needs_grid = True

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> "FrameEncoder":
        return cls(spec, spec.option("pool", "avg"))

    @classmethod
    def frame_step(cls, spec: ModelSpec) -> int:
        return 1  # its own 2D patches (tubelet 1): any frame count

    def __init__(self, spec: ModelSpec, pool: str = "avg"):
        if pool not in POOLS:
            raise ValueError(f"unknown frame pool {pool!r}; accepted: {', '.join(POOLS)}")
        patch = TubeletEmbed(
            spec.channels, spec.width, 1, spec.patch_size, spec.image_size, spec.temporal_pos_len, temporal_pos=False
        )
        blocks = [SliceBlock(spec.width, spec.heads, spec.mlp_dim, spec.attn_kernel) for _ in range(spec.depth)]
        super().__init__(spec, patch=patch, blocks=blocks)
        self.pool = AttentionPool(spec.width, spec.heads, spec.temporal_pos_len, spec.attn_kernel) if pool == "attnpool" else None

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, D)."""
        if self.pool is None:
            return super().forward(video)
        x, grid = self.tokens(video)
        x = self.norm(self.run_blocks(x, grid))
        frames = x.reshape(x.shape[0], grid[0], grid[1], -1).mean(dim=2)  # (B, T, D) per-frame embeddings
        return self.pool(frames)

    def forward_flops(self, frames: int, tokens: int, grid: tuple | None) -> int:
        pool_f = self.pool.forward_flops(frames) if self.pool is not None else 0
        return super().forward_flops(frames, tokens, grid) + pool_f
