"""Tubelet patch embedding with separable learned position tables.

A 3D convolution with kernel = stride = (t, p, p) turns a clip (B, C, T, H, W) into T' = T/t slices of
N = (H/p)(W/p) tokens (arXiv:2312.07395 §3, default 2 x 16 x 16). Position embeddings are a learned spatial
table (N, D) plus a learned temporal table (L_t, D), linearly interpolated when T' differs from L_t,
so one model runs at any frame count (as ViViT/TimeSformer extend 16-frame models to longer clips).
With `temporal_pos=False` there is no temporal table: the per-frame 2D path of frame-level encoders,
which see each frame as an image (arXiv:2312.07395 §4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vfbench.models.registry import PATCHES, register_patch
from vfbench.models.tower import TokenLayout
from vfbench.spec import ModelSpec


@register_patch("tubelet")
class TubeletEmbed(nn.Module):
    clip_reads = 1
    fp32_positions = True

    def __init__(
        self, channels: int, dim: int, tubelet: int, patch: int, image_size: int, temporal_pos_len: int,
        temporal_pos: bool = True,
    ):
        super().__init__()
        self.tubelet, self.patch = tubelet, patch
        self.proj = nn.Conv3d(channels, dim, kernel_size=(tubelet, patch, patch), stride=(tubelet, patch, patch))
        n = (image_size // patch) ** 2
        # std 0.1 for the video position tables: small enough not to drown the patch signal, large enough
        # that temporal order is learnable early (the proxy's measured prototype).
        self.pos_space = nn.Parameter(torch.randn(n, dim) * 0.1)
        self.pos_time = nn.Parameter(torch.randn(temporal_pos_len, dim) * 0.1) if temporal_pos else None

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> "TubeletEmbed":
        return cls(spec.channels, spec.width, spec.tubelet, spec.patch_size, spec.image_size, spec.temporal_pos_len)

    @classmethod
    def frame_step(cls, spec: ModelSpec) -> int:
        return spec.tubelet

    def slices(self, frames: int) -> int:
        return frames // self.tubelet

    def layout(self, frames: int) -> TokenLayout:
        return TokenLayout(self.num_tokens(frames), (self.slices(frames), self.pos_space.shape[0]))

    def num_tokens(self, frames: int) -> int:
        return (frames // self.tubelet) * self.pos_space.shape[0]

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """(B, C, T, H, W) -> tokens (B, S, D) with position embeddings added, and grid (T', N)."""
        x = self.proj(video)  # (B, D, T', H/p, W/p)
        B, D, Tp, Hp, Wp = x.shape
        x = x.flatten(3).permute(0, 2, 3, 1)  # (B, T', N, D)
        x = x + self.pos_space[None, None]
        if self.pos_time is not None:
            x = x + temporal_table(self.pos_time, Tp)[None, :, None]
        return x.reshape(B, Tp * Hp * Wp, D), (Tp, Hp * Wp)

    def forward_flops(self, frames: int) -> int:
        """Per clip: a (C·t·p²) x D matmul for each of the S tokens, 2 FLOPs per multiply-add."""
        c, d = self.proj.in_channels, self.proj.out_channels
        return 2 * self.num_tokens(frames) * c * self.tubelet * self.patch**2 * d


def temporal_table(table: torch.Tensor, length: int) -> torch.Tensor:
    """(L, D) -> (length, D), linear interpolation when the lengths differ."""
    if table.shape[0] == length:
        return table
    return F.interpolate(table.T[None], size=length, mode="linear", align_corners=True)[0].T


def build_patch(spec: ModelSpec) -> nn.Module:
    """The tokenizer registered under spec.patching (set by the patching methods; coarse tubelets only change sizes)."""
    return PATCHES.get(spec.patching).from_spec(spec)
