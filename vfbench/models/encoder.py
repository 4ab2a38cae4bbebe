"""The video encoder: patch embedding -> (train-time token hooks) -> pre-LN blocks -> LN -> mean pool.

Spatio-temporal mean pooling over all output tokens, no CLS token (PAPER.md §1).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from vfbench.models.blocks import Block
from vfbench.models.patch import build_patch
from vfbench.spec import ModelSpec

TokenHook = Callable[[torch.Tensor, tuple | None], tuple[torch.Tensor, tuple | None]]


class VideoEncoder(nn.Module):
    """Joint space-time ViT (ViViT model 1) with the slots methods use.

    - `token_hooks`: functions (tokens (B, S, D), grid) -> (tokens, grid) run after the patch and
      position embeddings, in training only (masking, FLIP/MAE style).
    - `no_grad_prefix`: the first k blocks run without an autograd graph, so they keep no activations
      for backward (the paper's frozen-prefix short->long recipe).
    - `use_checkpoint`: activation checkpointing per block.

    `needs_grid` is True in subclasses whose blocks reshape tokens to (B, T', N, D) (factorized and
    frame-level encoders): token hooks must then keep an equal count per time slice.
    """

    needs_grid = False

    def __init__(self, spec: ModelSpec, patch: nn.Module | None = None, blocks: list[nn.Module] | None = None):
        super().__init__()
        self.spec = spec
        self.width = spec.width
        self.patch = patch or build_patch(spec)
        if blocks is None:
            blocks = [Block(spec.width, spec.heads, spec.mlp_dim, spec.attn_kernel) for _ in range(spec.depth)]
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(spec.width)
        self.token_hooks: list[TokenHook] = []
        self.no_grad_prefix = 0
        self.use_checkpoint = spec.checkpoint
        self.last_tokens = 0  # tokens that entered the blocks in the latest forward (per clip)
        self.last_grid: tuple | None = None  # their (T', N) grid, None when unstructured

    def tokens(self, video: torch.Tensor) -> tuple[torch.Tensor, tuple | None]:
        x, grid = self.patch(video)  # (B, S, D)
        if self.training:
            for hook in self.token_hooks:
                x, grid = hook(x, grid)
        return x, grid

    def run_blocks(self, x: torch.Tensor, grid: tuple | None) -> torch.Tensor:
        return run_layers(self.blocks, x, grid, self.no_grad_prefix, self.use_checkpoint)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, D)."""
        x, grid = self.tokens(video)
        self.last_tokens, self.last_grid = x.shape[1], grid
        x = self.run_blocks(x, grid)
        return self.norm(x).mean(dim=1)  # spatio-temporal mean pool

    def forward_flops(self, frames: int, tokens: int, grid: tuple | None) -> int:
        """Per clip, the forward FLOPs of the patch embedding and the blocks (arXiv:2312.07395 §4 closed forms;
        the training step's backward is counted matmul by matmul in models/step_flops.py)."""
        grid = grid or self.flops_grid(frames, tokens)
        return self.patch.forward_flops(frames) + sum(blk.forward_flops(tokens, grid) for blk in self.blocks)

    def flops_grid(self, frames: int, tokens: int) -> tuple | None:
        """The (T', N) grid behind `tokens` when the caller has none: the latest forward's grid if it saw
        this many tokens, else the patch grid when the count splits evenly over its slices."""
        if self.last_grid is not None and self.last_tokens == tokens:
            return self.last_grid
        slices = getattr(self.patch, "slices", None)
        t = slices(frames) if slices else 0
        return (t, tokens // t) if t and tokens % t == 0 else None


def run_layers(blocks, x: torch.Tensor, grid: tuple | None, no_grad_prefix: int, use_checkpoint: bool) -> torch.Tensor:
    """Run blocks in order: the first `no_grad_prefix` without autograd, the rest optionally checkpointed."""
    for i, blk in enumerate(blocks):
        if i < no_grad_prefix:
            with torch.no_grad():
                x = blk(x, grid)
        elif use_checkpoint and torch.is_grad_enabled():
            x = checkpoint(blk, x, grid, use_reentrant=False)
        else:
            x = blk(x, grid)
    return x
