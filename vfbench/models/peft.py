"""Parameter-efficient pieces (arXiv:2312.07395 §4): Houlsby MLP adapters, LoRA linears, and freezing.

Both start as the identity on the frozen model (zero up-projection / zero B), so the adapted model's
output at init equals the base model's.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

from vfbench.models.blocks import Attention, Mlp


class Adapter(nn.Module):
    """Houlsby et al. 2019 bottleneck adapter on a sub-layer's output h: h + W_up·GELU(W_down·h).

    W_up (weight and bias) is zero at init [R: near-identity init, as AIM]; placed in Block.post_mlp,
    i.e. after the feed-forward block and before its residual add (arXiv:2312.07395 §4).
    """

    def __init__(self, dim: int, bottleneck: int):
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.act = nn.GELU()
        self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(self.act(self.down(h)))

    def extra_flops(self, tokens: int) -> int:
        """Down and up projections: 2 · S · 2 · D · r_a."""
        return 2 * tokens * 2 * self.down.in_features * self.down.out_features


class LoRALinear(nn.Module):
    """W x + (alpha / r) · B A x with W frozen, A Kaiming-uniform (a=√5), B zero (Hu et al. 2021;
    microsoft/LoRA loralib/layers.py `Linear`, without LoRA dropout)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        self.rank, self.scaling = rank, alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        base.weight.requires_grad_(False)
        if base.bias is not None:
            base.bias.requires_grad_(False)

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scaling

    def extra_flops(self, tokens: int) -> int:
        """A then B: 2 · S · r · (in + out) on top of the frozen W x the block already counts."""
        return 2 * tokens * self.rank * (self.in_features + self.out_features)


def add_lora(root: nn.Module, rank: int, alpha: float) -> int:
    """Wrap qkv/proj of every vfbench Attention (temporal ones too) and fc1/fc2 of every Mlp under root.
    Returns the number of wrapped linears."""
    wrapped = 0
    for module in list(root.modules()):
        targets = ("qkv", "proj") if isinstance(module, Attention) else ("fc1", "fc2") if isinstance(module, Mlp) else ()
        for attr in targets:
            linear = getattr(module, attr)
            if isinstance(linear, nn.Linear):
                setattr(module, attr, LoRALinear(linear, rank, alpha))
                wrapped += 1
    return wrapped


def add_adapters(blocks: Iterable[nn.Module], dim: int, bottleneck: int) -> int:
    """Put an Adapter in the post_mlp slot of every block that has one. Returns the count."""
    count = 0
    for blk in blocks:
        if isinstance(getattr(blk, "post_mlp", None), nn.Identity):
            with torch.device(next(blk.parameters()).device):  # meta / cuda builds; no .to() copy
                blk.post_mlp = Adapter(dim, bottleneck)
            count += 1
    return count


def freeze(modules: Iterable[nn.Module]) -> None:
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(False)


def unfreeze(modules: Iterable[nn.Module]) -> None:
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(True)


def freeze_video_backbone(video: nn.Module, keep: Iterable[nn.Module] = ()) -> None:
    """Freeze the video tower except its patch embedding (the paper always trains the new 3D patch conv,
    arXiv:2312.07395 §4), a randomly initialised readout (`pool`, if any) and the given modules."""
    freeze([video])
    unfreeze([video.patch, *filter(None, [getattr(video, "pool", None)]), *keep])


def lora_parameters(root: nn.Module) -> list[nn.Parameter]:
    return [p for m in root.modules() if isinstance(m, LoRALinear) for p in (m.lora_A, m.lora_B)]
