"""A small text tower: a transformer over token ids, mean-pooled (arXiv:2312.07395 §3: mean over the caption's tokens)."""

from __future__ import annotations

import torch
from torch import nn

from vfbench.models.blocks import Block
from vfbench.spec import ModelSpec


class TextEncoder(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.tok = nn.Embedding(spec.vocab_size, spec.text_width)
        self.pos = nn.Parameter(torch.zeros(spec.text_len, spec.text_width))
        # std 0.02: PyTorch's default std-1 embedding init drowns the position signal (the proxy's prototype).
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(
            Block(spec.text_width, spec.text_heads, spec.text_mlp_dim) for _ in range(spec.text_depth)
        )
        self.norm = nn.LayerNorm(spec.text_width)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids -> (B, D_text)."""
        x = self.tok(ids) + self.pos[: ids.shape[1]]  # (B, L, D_text)
        for blk in self.blocks:
            x = blk(x)
        return self.pool(self.norm(x), ids)

    def pool(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """(B, L, D_text) normalised token features -> (B, D_text): the mean over the caption's tokens."""
        return x.mean(dim=1)

    def forward_flops(self, length: int) -> int:
        return sum(blk.forward_flops(length) for blk in self.blocks)
