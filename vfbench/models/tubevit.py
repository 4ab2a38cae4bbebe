"""TubeViT sparse tube tokenizer (Piergiovanni et al. 2023, arXiv 2212.03229; arXiv:2312.07395 §4).

Several sparse 3D convolutions with different kernels, strides and offsets read the same clip; their
tokens are concatenated (grid None: the set has no (T', N) structure) and get fixed 3D sin-cos position
embeddings at each token's voxel centre, so overlapping tubes agree on position.

A tube is (kernel, stride, offset), each (T, H, W). Spatial sizes are written for 16-px patches (the
TubeViT paper's ViT-B/16 at 224 px) and scaled by patch_size / 16 for a preset, so a tiny model (8-px
patches, 32 px) samples as coarsely *relative to its patches* as ViT-B does (at least 1 px each).
Kernels longer than the input along an axis are clamped to it (offset dropped to 0 if it leaves no
room); along time this depends on the clip, so the conv weight is cropped to its central k_t frames at
run time. Tokens per tube: prod_d ceil((X_d - o_d - k_d + 1) / s_d)  (arXiv:2312.07395 §4).
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

from vfbench.models.registry import register_patch
from vfbench.models.tower import TokenLayout
from vfbench.spec import ModelSpec

Tube = tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]

# TubeViT §4.1 / daniel-code/TubeViT MODEL.md: kernel T×H×W / stride / offset. For 32×224×224 the formula
# gives 98 + 147 + 98 + 196 = 539 tokens (the TubeViT paper quotes 559 for this set).
TUBEVIT_TUBES: tuple[Tube, ...] = (
    ((8, 8, 8), (16, 32, 32), (0, 0, 0)),
    ((16, 4, 4), (6, 32, 32), (4, 8, 8)),
    ((4, 12, 12), (16, 32, 32), (0, 16, 16)),
    ((1, 16, 16), (32, 16, 16), (0, 0, 0)),
)

_CUSTOM = re.compile(r"k(\d+)x(\d+)x(\d+)s(\d+)x(\d+)x(\d+)o(\d+)x(\d+)x(\d+)")
TUBES_HELP = (
    "tubes is 'tubevit' (the TubeViT paper's set) or tubes joined by '_', each written "
    "k<T>x<H>x<W>s<T>x<H>x<W>o<T>x<H>x<W> (kernel, stride, offset), e.g. k8x8x8s16x32x32o0x0x0_k1x16x16s32x16x16o0x0x0"
)


def parse_tubes(text: str) -> tuple[Tube, ...]:
    """'tubevit' or the identifier form of TUBES_HELP (an identifier so method labels re-parse)."""
    if text == "tubevit":
        return TUBEVIT_TUBES
    tubes = []
    for part in text.split("_"):
        m = _CUSTOM.fullmatch(part)
        if not m:
            raise ValueError(f"cannot read tube {part!r}; {TUBES_HELP}")
        v = [int(g) for g in m.groups()]
        if min(v[:6]) < 1:
            raise ValueError(f"tube {part!r}: kernel and stride must be >= 1; {TUBES_HELP}")
        tubes.append((tuple(v[0:3]), tuple(v[3:6]), tuple(v[6:9])))
    return tuple(tubes)


def fit(size: int, kernel: int, offset: int) -> tuple[int, int]:
    """(kernel, offset) clamped so at least one window fits in `size` samples."""
    if size - offset < 1:
        offset = 0
    return min(kernel, size - offset), offset


def tube_count(size: int, kernel: int, stride: int, offset: int) -> int:
    """ceil((X - o - k + 1) / s) windows along one axis, after clamping."""
    k, o = fit(size, kernel, offset)
    return math.ceil((size - o - k + 1) / stride)


def sincos(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """(M,) positions -> (M, dim) [sin | cos] at frequencies 1/10000^(2i/dim) (Vaswani et al. 2017)."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float32, device=pos.device) / max(dim // 2, 1))
    out = pos.float()[:, None] * omega[None]
    return torch.cat([out.sin(), out.cos()], dim=1)


@register_patch("tubevit")
class TubeViTEmbed(nn.Module):
    """(B, C, T, H, W) -> tokens (B, S, D) with fixed 3D sin-cos positions, and grid None."""

    fp32_positions = False  # the sin-cos positions are cast to the conv output's dtype

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> "TubeViTEmbed":
        return cls(spec.channels, spec.width, spec.image_size, spec.patch_size, spec.option("tubes", "tubevit"))

    @classmethod
    def frame_step(cls, spec: ModelSpec) -> int:
        return 1  # kernels longer than the clip are cropped: any frame count runs

    @property
    def clip_reads(self) -> int:
        return len(self.convs)

    def __init__(self, channels: int, dim: int, image_size: int, patch_size: int, tubes: str = "tubevit"):
        super().__init__()
        self.dim, self.image_size = dim, image_size
        scale = patch_size / 16
        self.tubes: list[Tube] = []
        for k, s, o in parse_tubes(tubes):
            k = (k[0],) + tuple(max(1, round(v * scale)) for v in k[1:])
            s = (s[0],) + tuple(max(1, round(v * scale)) for v in s[1:])
            o = (o[0],) + tuple(round(v * scale) for v in o[1:])
            kh, oh = fit(image_size, k[1], o[1])
            kw, ow = fit(image_size, k[2], o[2])
            self.tubes.append(((k[0], kh, kw), s, (o[0], oh, ow)))
        self.convs = nn.ModuleList(nn.Conv3d(channels, dim, kernel_size=k, stride=s) for k, s, _ in self.tubes)

    def slices(self, frames: int) -> int:
        return 0  # tubes overlap in time: no (T', N) grid

    def layout(self, frames: int) -> TokenLayout:
        return TokenLayout(self.num_tokens(frames), None)

    def tube_shapes(self, frames: int) -> list[tuple[int, int, int]]:
        """Per tube, the (T, H, W) count of windows; their products sum to num_tokens."""
        sizes = (frames, self.image_size, self.image_size)
        return [tuple(tube_count(x, kd, sd, od) for x, kd, sd, od in zip(sizes, k, s, o)) for k, s, o in self.tubes]

    def num_tokens(self, frames: int) -> int:
        return sum(math.prod(shape) for shape in self.tube_shapes(frames))

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, None]:
        T = video.shape[2]
        out = []
        for conv, (k, s, o) in zip(self.convs, self.tubes):
            kt, ot = fit(T, k[0], o[0])
            start = (k[0] - kt) // 2  # central k_t frames of the kernel when the clip is shorter than it
            weight = conv.weight[:, :, start : start + kt]
            clip = video[:, :, ot:, o[1]:, o[2]:]
            x = F.conv3d(clip, weight, conv.bias, stride=s)  # (B, D, t, h, w)
            pos = self.positions((kt, k[1], k[2]), s, (ot, o[1], o[2]), x.shape[2:], x.device)  # (t·h·w, D)
            out.append(x.flatten(2).transpose(1, 2) + pos.to(x.dtype))  # (B, t·h·w, D)
        return torch.cat(out, dim=1), None

    def positions(self, k, s, o, shape, device) -> torch.Tensor:
        """Sin-cos of voxel centres o + i·s + (k-1)/2 per axis: D/3 (even) dims each for t, y, x, zero-padded."""
        part = (self.dim // 3) // 2 * 2
        axes = [o[d] + s[d] * torch.arange(shape[d], device=device) + (k[d] - 1) / 2 for d in range(3)]
        t, y, x = torch.meshgrid(*axes, indexing="ij")  # each (t, h, w)
        emb = [sincos(a.reshape(-1), part) for a in (t, y, x)]
        pad = self.dim - 3 * part
        if pad:
            emb.append(torch.zeros(t.numel(), pad, device=device))
        return torch.cat(emb, dim=1)

    def forward_flops(self, frames: int) -> int:
        """Per clip: each token of a tube is a (C·k_t·k_h·k_w) x D matmul."""
        c = self.convs[0].in_channels
        total = 0
        for shape, (k, _, o) in zip(self.tube_shapes(frames), self.tubes):
            kt, _ = fit(frames, k[0], o[0])
            total += 2 * math.prod(shape) * c * kt * k[1] * k[2] * self.dim
        return total
