"""The video encoder: patch embedding -> (train-time token hooks) -> pre-LN blocks -> LN -> mean pool.

Spatio-temporal mean pooling over all output tokens, no CLS token (arXiv:2312.07395 §3). Registered
as the `joint` encoder; the other towers subclass it and register under their own names.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from vfbench.models.blocks import Block
from vfbench.models.patch import build_patch
from vfbench.models.peft import freeze
from vfbench.models.registry import PATCHES, register_encoder
from vfbench.models.tower import LayerShape, TokenHook, TokenLayout
from vfbench.spec import ModelSpec


@register_encoder("joint")
class VideoEncoder(nn.Module):
    """Joint space-time ViT (ViViT model 1) with the hook points methods use (models/tower.py VideoTower):

    - `add_token_hook`: TokenHooks run after the patch and position embeddings, in training only
      (masking, FLIP/MAE style), drawing from `token_generator` (None: the global stream).
    - `freeze_prefix(k)`: the first k blocks (and everything before them) are frozen and run without an
      autograd graph, so they keep no activations for backward (the paper's frozen-prefix short->long recipe).
    - `temporal_parameters`: the modules that only mix time (empty here; factorised self-attention has some).
    - each block's `post_mlp` slot (an identity where adapters go).
    - `use_checkpoint`: activation checkpointing per block (from spec.checkpoint).

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
        self.token_generator: torch.Generator | None = None
        self.no_grad_prefix = 0
        self.use_checkpoint = spec.checkpoint
        self.last_layout: TokenLayout | None = None  # what entered the blocks in the latest forward (per clip)

    # -- construction and what a spec accepts ----------------------------------------------------
    @classmethod
    def from_spec(cls, spec: ModelSpec) -> "VideoEncoder":
        return cls(spec)

    @classmethod
    def frame_step(cls, spec: ModelSpec) -> int:
        """Frame counts must be multiples of this: the patch embedding's (a tubelet of t frames needs t)."""
        return PATCHES.get(spec.patching).frame_step(spec)

    # -- hook points -----------------------------------------------------------------------------
    def add_token_hook(self, hook: TokenHook) -> None:
        self.token_hooks.append(hook)

    def freeze_prefix(self, layers: int) -> None:
        """Freeze the patch embedding and the first `layers` blocks, and run those blocks without autograd."""
        freeze([self.patch, *self.blocks[:layers]])
        self.no_grad_prefix = layers

    def temporal_parameters(self) -> list[nn.Parameter]:
        """Parameters that only mix information across time (none in a joint encoder)."""
        return []

    # -- sizes without running -------------------------------------------------------------------
    def train_layout(self, frames: int) -> TokenLayout:
        """Tokens per clip entering the blocks in training (after the token hooks), by arithmetic."""
        layout = self.patch.layout(frames)
        for hook in self.token_hooks:
            layout = hook.layout(layout)
        return layout

    def layer_shapes(self, layout: TokenLayout) -> list[LayerShape]:
        """Per block: tokens it processes per clip and its attention sequence lengths."""
        return [blk.layer_shape(layout) for blk in self.blocks]

    @property
    def last_tokens(self) -> int:
        """Tokens that entered the blocks in the latest forward (0 before any)."""
        return self.last_layout.tokens if self.last_layout else 0

    @property
    def last_grid(self) -> tuple | None:
        return self.last_layout.grid if self.last_layout else None

    # -- forward ---------------------------------------------------------------------------------
    def tokens(self, video: torch.Tensor) -> tuple[torch.Tensor, tuple | None]:
        x, grid = self.patch(video)  # (B, S, D)
        if self.training:
            for hook in self.token_hooks:
                x, grid = hook(x, grid, self.token_generator)
        self.last_layout = TokenLayout(x.shape[1], grid)
        return x, grid

    def run_blocks(self, x: torch.Tensor, grid: tuple | None) -> torch.Tensor:
        return run_layers(self.blocks, x, grid, self.no_grad_prefix, self.use_checkpoint)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, D)."""
        x, grid = self.tokens(video)
        x = self.run_blocks(x, grid)
        return self.norm(x).mean(dim=1)  # spatio-temporal mean pool

    def forward_flops(self, frames: int, tokens: int, grid: tuple | None) -> int:
        """Per clip, the forward FLOPs of the patch embedding and the blocks (closed forms per block; the
        training step's backward is counted matmul by matmul in models/step_flops.py)."""
        grid = grid or self.flops_grid(frames, tokens)
        return self.patch.forward_flops(frames) + sum(blk.forward_flops(tokens, grid) for blk in self.blocks)

    def flops_grid(self, frames: int, tokens: int) -> tuple | None:
        """The (T', N) grid behind `tokens` when the caller has none: the latest forward's grid if it saw
        this many tokens, else the patch grid when the count splits evenly over its slices."""
        if self.last_layout is not None and self.last_layout.tokens == tokens and self.last_layout.grid is not None:
            return self.last_layout.grid
        t = self.patch.layout(frames).slices
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
