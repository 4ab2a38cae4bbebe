"""What a video tower and its patch embedding declare, so that nothing outside them compares names.

The cell checks ask `frames_problems` which frame counts a configured spec accepts; the analytic
memory model asks the built encoder for its token layout in training (`train_layout`, after the
methods' token hooks) and, per layer, the tokens it processes and its attention sequence lengths
(`layer_shapes`); each block reports its forward FLOPs and the bytes per token it keeps for backward.
Methods reach into the encoder only through its declared hook points (`add_token_hook`,
`freeze_prefix`, `temporal_parameters`, each block's `post_mlp` slot).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch

if TYPE_CHECKING:
    from vfbench.spec import ModelSpec

Grid = tuple[int, int]  # (T', N): time slices, tokens per slice


@dataclass(frozen=True)
class TokenLayout:
    """Tokens per clip and their (T', N) grid, None once they are an unstructured set (masked, TubeViT)."""

    tokens: int
    grid: Grid | None

    @property
    def slices(self) -> int:
        return self.grid[0] if self.grid else 0


@dataclass(frozen=True)
class LayerShape:
    """One layer of the tower: tokens it processes per clip, and the length of each attention sequence it
    runs (one entry per attention sub-layer: spatial, then temporal for factorised self-attention)."""

    tokens: int
    seqs: tuple[int, ...]


@runtime_checkable
class TokenHook(Protocol):
    """A train-time change of the token set after the patch embedding (masking). Pure: the tokens, their
    grid and an explicit generator (None = the global stream) in, the kept tokens and their grid out;
    `layout` says the same by arithmetic, for the models that size a step without running it."""

    def __call__(self, x: torch.Tensor, grid: Grid | None, generator: torch.Generator | None) -> tuple[torch.Tensor, Grid | None]: ...

    def layout(self, layout: TokenLayout) -> TokenLayout: ...


class PatchEmbedding(Protocol):
    """A registered tokenizer (models/registry.py PATCHES): (B, C, T, H, W) -> (B, S, D) tokens and a grid."""

    clip_reads: int  # convolutions that read (and, when they train under autocast, keep a copy of) the clip
    fp32_positions: bool  # fp32 position tables add to the tokens, so the residual stream stays fp32

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> PatchEmbedding: ...

    @classmethod
    def frame_step(cls, spec: ModelSpec) -> int:
        """Frame counts this embedding accepts are the multiples of this."""
        ...

    def layout(self, frames: int) -> TokenLayout: ...

    def num_tokens(self, frames: int) -> int: ...

    def forward_flops(self, frames: int) -> int: ...


class VideoTower(Protocol):
    """A registered video encoder (models/registry.py ENCODERS)."""

    patch: PatchEmbedding
    width: int
    blocks: torch.nn.ModuleList
    no_grad_prefix: int
    use_checkpoint: bool
    last_layout: TokenLayout | None  # the token layout that entered the blocks in the latest forward

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> VideoTower: ...

    @classmethod
    def frame_step(cls, spec: ModelSpec) -> int: ...

    def add_token_hook(self, hook: TokenHook) -> None: ...

    def freeze_prefix(self, layers: int) -> None: ...

    def temporal_parameters(self) -> list[torch.nn.Parameter]: ...

    def train_layout(self, frames: int) -> TokenLayout: ...

    def layer_shapes(self, layout: TokenLayout) -> list[LayerShape]: ...

    def forward_flops(self, frames: int, tokens: int, grid: Grid | None) -> int: ...


def frame_step(spec: ModelSpec) -> int:
    """The frame counts a configured spec accepts are the multiples of this (its encoder decides, usually
    by asking its patch embedding: a tubelet of t frames needs multiples of t)."""
    from vfbench.models.registry import ENCODERS

    return ENCODERS.get(spec.attention).frame_step(spec)


def frames_problems(spec: ModelSpec, frames: int) -> list[str]:
    step = frame_step(spec)
    return [f"{frames} frames is not a multiple of the tubelet depth {step}"] if frames % step else []
