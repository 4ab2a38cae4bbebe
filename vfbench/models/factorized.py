"""Factorised space-time encoders from ViViT (Arnab et al. 2021): model 3 (factorised self-attention in
every block, the paper's FST) and model 2 (a spatial encoder per time slice, then a temporal encoder).

Both need tokens on a (T', N) grid, so they set `needs_grid`: masking keeps an equal count per slice.
"""

from __future__ import annotations

import torch
from torch import nn

from vfbench.models.blocks import Attention, Block, extra_flops
from vfbench.models.encoder import VideoEncoder, run_layers
from vfbench.models.frame import SliceBlock
from vfbench.models.peft import freeze
from vfbench.models.registry import register_encoder
from vfbench.models.saved_bytes import Bytes, attention_bytes, linear_input_bytes, lora_rank
from vfbench.models.tower import LayerShape, TokenLayout
from vfbench.spec import ModelSpec

DEFAULT_TEMPORAL_LAYERS = 4  # ViViT model 2 with ViT-B: 12 spatial + 4 temporal layers (Arnab et al. 2021, §4.2)


class FactorizedSelfAttentionBlock(Block):
    """ViViT model 3 as the paper runs it (arXiv:2312.07395 §4), order space -> time:

        x <- x + MSA_s(LN(x))                    over the N tokens of each slice   # (B, T', N, D)
        x <- x + tanh(alpha) · MSA_t(LN_t(x))    over the T' slices at each position # (B, N, T', D)
        x <- x + MLP(LN(x))

    alpha is one scalar per layer initialised to 0 (an assumption: the paper does not say), so at init the block is the image
    block applied per slice. MSA_t and LN_t start as copies of MSA_s and LN (the paper found copying
    beats ViViT's zero init). Extra parameters: 4D² + 4D (qkv, proj) + 2D (LN_t) + 1 per layer.
    """

    def __init__(self, dim: int, heads: int, mlp_dim: int, kernel: str = "sdpa"):
        super().__init__(dim, heads, mlp_dim, kernel)
        self.norm_t = nn.LayerNorm(dim)
        self.attn_t = Attention(dim, heads, kernel)
        self.alpha = nn.Parameter(torch.zeros(()))
        self.copy_spatial_to_temporal()

    @torch.no_grad()
    def copy_spatial_to_temporal(self) -> None:
        """Initialise the temporal MSA and its LN from the spatial ones (call again after loading weights)."""
        for src, dst in ((self.attn, self.attn_t), (self.norm1, self.norm_t)):
            for p_src, p_dst in zip(src.parameters(), dst.parameters()):
                p_dst.copy_(p_src)

    def forward(self, x: torch.Tensor, grid: tuple | None = None) -> torch.Tensor:
        if grid is None:
            raise ValueError("factorized self-attention needs the (T', N) grid of its tokens")
        B, S, D = x.shape
        x = x.reshape(B, grid[0], grid[1], D)  # (B, T', N, D)
        x = self.temporal(self.spatial(x))
        x = x + self.post_mlp(self.mlp(self.norm2(x)))
        return x.reshape(B, S, D)

    def spatial(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T', N, D): Attention attends over the second-to-last axis, the N tokens of one slice."""
        return x + self.attn(self.norm1(x))

    def temporal(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T', N, D): gated attention over the T' slices at each position."""
        xt = x.transpose(1, 2)  # (B, N, T', D)
        return x + (torch.tanh(self.alpha) * self.attn_t(self.norm_t(xt))).transpose(1, 2)

    def layer_shape(self, layout: TokenLayout) -> LayerShape:
        """Spatial attention over the N tokens of a slice, temporal over the T' slices."""
        t, n = layout.grid if layout.grid else (0, layout.tokens)
        return LayerShape(layout.tokens, (n, t))

    def saved_bytes_per_token(self, seqs: tuple, b: Bytes) -> float:
        """The joint block's share plus the temporal sub-block's: LN_t cast, qkv_t, attention, gated
        output and its residual input (the gate's product only when alpha trains), LoRA on qkv_t/proj_t."""
        D, h, at = self.norm_t.normalized_shape[0], self.attn_t.heads, self.attn_t
        total = super().saved_bytes_per_token(seqs, b)
        total += linear_input_bytes(at.qkv, b) + 3 * b.c * D + attention_bytes(D, h, seqs[1], b) + b.r * D
        total += b.c * D if self.alpha.requires_grad else 0
        return total + sum(b.c * lora_rank(m) for m in (at.qkv, at.proj))

    def temporal_parameters(self) -> list[nn.Parameter]:
        """What only mixes time: the temporal MSA, its LN and the gate."""
        return [*self.attn_t.parameters(), *self.norm_t.parameters(), self.alpha]

    def forward_flops(self, tokens: int, grid: tuple | None = None) -> int:
        """24·S·D² + 8·S·D² for the extra qkv/proj, plus attention 4·S·D·(N + T') (vfbench's analytic model, after Korthikanti et al. 2022)."""
        d, m = self.norm1.normalized_shape[0], self.mlp.fc1.out_features
        t, n = grid if grid is not None else (1, tokens)
        linear = 2 * tokens * (8 * d * d + 2 * d * m)
        return linear + 4 * tokens * d * (n + t) + extra_flops(self, tokens)


@register_encoder("factorized_self_attention")
class FactorizedSelfAttentionEncoder(VideoEncoder):
    """The video encoder with FactorizedSelfAttentionBlocks (its blocks need the (T', N) grid)."""

    needs_grid = True

    def __init__(self, spec: ModelSpec):
        blocks = [FactorizedSelfAttentionBlock(spec.width, spec.heads, spec.mlp_dim, spec.attn_kernel) for _ in range(spec.depth)]
        super().__init__(spec, blocks=blocks)

    def temporal_parameters(self) -> list[nn.Parameter]:
        return [p for blk in self.blocks for p in blk.temporal_parameters()]


@register_encoder("factorized_encoder")
class FactorizedEncoder(VideoEncoder):
    """ViViT model 2 (scenic `SpaceTimeViViT`, arXiv:2312.07395 §4): the L-layer spatial ViT runs on each slice
    (`SliceBlock`s), its normed output is mean-pooled per slice (gap, no CLS, as the rest of vfbench), and
    `temporal_layers` joint blocks run over the T' slice tokens.

    The spatial stage keeps all L layers of the (pre-trained) image ViT and the temporal stage is extra,
    as in ViViT (default 4, its ViT-B setting). `blocks` holds both stages in order, so freezing a prefix
    (`no_grad_prefix`), checkpointing and adapters treat them like any other layers.
    """

    needs_grid = True

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> "FactorizedEncoder":
        return cls(spec, spec.option("temporal_layers", DEFAULT_TEMPORAL_LAYERS))

    def __init__(self, spec: ModelSpec, temporal_layers: int = DEFAULT_TEMPORAL_LAYERS):
        spatial = [SliceBlock(spec.width, spec.heads, spec.mlp_dim, spec.attn_kernel) for _ in range(spec.depth)]
        temporal = [Block(spec.width, spec.heads, spec.mlp_dim, spec.attn_kernel) for _ in range(temporal_layers)]
        super().__init__(spec, blocks=spatial + temporal)
        self.spatial_layers = spec.depth
        self.spatial_norm = nn.LayerNorm(spec.width)

    def run_blocks(self, x: torch.Tensor, grid: tuple | None) -> torch.Tensor:
        L, prefix = self.spatial_layers, self.no_grad_prefix
        x = run_layers(self.blocks[:L], x, grid, prefix, self.use_checkpoint)  # (B, T'·N, D)
        # The per-slice pool runs without autograd when the frozen prefix reaches into the temporal stage.
        with torch.set_grad_enabled(torch.is_grad_enabled() and prefix <= L):
            x = self.spatial_norm(x).reshape(x.shape[0], grid[0], grid[1], -1).mean(dim=2)  # (B, T', D)
        return run_layers(self.blocks[L:], x, None, max(prefix - L, 0), self.use_checkpoint)

    def freeze_prefix(self, layers: int) -> None:
        super().freeze_prefix(layers)
        if layers > self.spatial_layers:  # the slice pool runs before the temporal stage: frozen with it
            freeze([self.spatial_norm])

    def layer_shapes(self, layout: TokenLayout) -> list[LayerShape]:
        """The spatial stage per slice, then the temporal stage over the T' slice tokens."""
        spatial = [b.layer_shape(layout) for b in self.blocks[: self.spatial_layers]]
        t = layout.slices
        return spatial + [LayerShape(t, (t,)) for _ in self.blocks[self.spatial_layers :]]

    def forward_flops(self, frames: int, tokens: int, grid: tuple | None) -> int:
        grid = grid or self.flops_grid(frames, tokens)
        spatial = sum(b.forward_flops(tokens, grid) for b in self.blocks[: self.spatial_layers])
        temporal = sum(b.forward_flops(grid[0], None) for b in self.blocks[self.spatial_layers :])
        return self.patch.forward_flops(frames) + spatial + temporal


def fst_extra_params(dim: int, depth: int) -> int:
    """Parameters FST adds over the joint ViT: (4D² + 4D + 2D + 1) per layer (arXiv:2312.07395 §4: ~28M ViT-B, ~101M ViT-L)."""
    return depth * (4 * dim * dim + 6 * dim + 1)


__all__ = ["FactorizedSelfAttentionBlock", "FactorizedEncoder", "FactorizedSelfAttentionEncoder", "fst_extra_params"]
