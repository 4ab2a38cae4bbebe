"""A CLIP-shaped dual encoder built from vfbench's own pieces, so that an image-text checkpoint (open_clip's
ViT-CLIP layout) can be loaded into it and every method that acts on vfbench's model still applies.

Video tower (`ClipVideoEncoder`, the joint encoder with CLIP's extras): the tubelet patch embedding
(`ClipTubelet`) plus CLIP's class token and `ln_pre`; pre-LN blocks (vfbench's `Block`, QuickGELU where the
checkpoint was trained with it); `ln_post` (the encoder's `norm`) on the class tokens. The paper inflates the
2D patch kernel to the 3D tubelet and starts the temporal position table at zero (arXiv:2312.07395 §3), so
a static clip gives T' identical time slices.

One class token per time slice, pooled by the mean (a choice of vfbench's, not the paper's, which pools
by the mean over all tokens): with ONE class token and joint attention over T'·N patch tokens, a static
clip would not reproduce the image model, because the class key is seen once and every patch key T'
times. With a class token per slice every key appears T' times, the softmax weights are those of the
image model, and `embed_video(static clip)` equals the image model's `encode_image(frame)` at init
(tests/test_video_folder.py checks it in fp32). The class tokens are added after the token hooks, so
masking drops patch tokens only; each carries the class embedding, the class position and its slice's
temporal position (zero at init).

Text tower (`ClipTextEncoder`): CLIP's causal transformer: token and position embeddings, causal
self-attention, `ln_final`, the features at the end-of-text token (the largest token id, as open_clip's
`argmax` pooling), then the projection (the dual encoder's `text_proj`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vfbench.models.blocks import Attention
from vfbench.models.dual import DualEncoder
from vfbench.models.encoder import VideoEncoder
from vfbench.models.patch import TubeletEmbed, temporal_table
from vfbench.models.text import TextEncoder
from vfbench.models.tower import TokenLayout
from vfbench.spec import ModelSpec

QUICK_GELU = "clip_quick_gelu"  # spec option: the checkpoint's MLPs use QuickGELU (OpenAI's weights)


class QuickGELU(nn.Module):
    """x·sigmoid(1.702x): the activation OpenAI's CLIP weights were trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ClipTubelet(TubeletEmbed):
    """Tubelet embedding with CLIP's class embedding, its position and `ln_pre`. The conv keeps vfbench's
    bias (zero when loaded from a bias-free CLIP conv); the temporal table starts at zero."""

    def __init__(self, spec: ModelSpec):
        super().__init__(spec.channels, spec.width, spec.tubelet, spec.patch_size, spec.image_size, spec.temporal_pos_len)
        nn.init.zeros_(self.pos_time)
        self.cls = nn.Parameter(torch.zeros(spec.width))
        self.pos_cls = nn.Parameter(torch.zeros(spec.width))
        self.ln_pre = nn.LayerNorm(spec.width)

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> "ClipTubelet":
        return cls(spec)

    def cls_tokens(self, batch: int, slices: int) -> torch.Tensor:
        """(B, T', D): one class token per time slice, with its slice's temporal position."""
        tokens = self.cls + self.pos_cls + temporal_table(self.pos_time, slices)  # (T', D)
        return tokens[None].expand(batch, -1, -1)


class ClipVideoEncoder(VideoEncoder):
    """The joint encoder with a class token per time slice (see the module docstring)."""

    def __init__(self, spec: ModelSpec):
        super().__init__(spec, patch=ClipTubelet(spec))
        if spec.option(QUICK_GELU):
            for blk in self.blocks:
                blk.mlp.act = QuickGELU()

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> "ClipVideoEncoder":
        return cls(spec)

    def tokens(self, video: torch.Tensor) -> tuple[torch.Tensor, tuple | None]:
        """Patch tokens (token hooks in training), then the T' class tokens in front, then ln_pre."""
        x, grid = self.patch(video)
        if self.training:
            for hook in self.token_hooks:
                x, grid = hook(x, grid, self.token_generator)
        slices = self.patch.slices(video.shape[2])
        x = torch.cat([self.patch.cls_tokens(x.shape[0], slices).to(x.dtype), x], dim=1)
        self.last_layout = TokenLayout(x.shape[1], None)
        return self.patch.ln_pre(x), None

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, D): ln_post on each slice's class token, averaged over the slices."""
        slices = self.patch.slices(video.shape[2])
        x, grid = self.tokens(video)
        x = self.run_blocks(x, grid)
        return self.norm(x[:, :slices]).mean(dim=1)


class CausalAttention(Attention):
    """Self-attention where each position sees itself and the positions before it (CLIP's text tower)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, S, D = x.shape
        q, k, v = self.qkv(x).reshape(B, S, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(out.transpose(1, 2).reshape(B, S, D))


class ClipTextEncoder(TextEncoder):
    """CLIP's causal text transformer: vfbench's text tower with causal attention (QuickGELU where the
    checkpoint used it), pooled at the end-of-text token (the largest id) instead of the mean."""

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        with torch.no_grad():
            self.pos.mul_(0.5)  # position init std 0.01, as CLIP's (weights usually come from the checkpoint)
        for blk in self.blocks:
            blk.attn = CausalAttention(spec.text_width, spec.text_heads)
            if spec.option(QUICK_GELU):
                blk.mlp.act = QuickGELU()

    def pool(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return x[torch.arange(x.shape[0], device=x.device), ids.argmax(dim=-1)]


def clip_problems(spec: ModelSpec) -> list[str]:
    """Why a (method-configured) spec cannot be built as the CLIP-shaped model: it runs joint attention
    over tubelets only (methods that change the attention or the tokenizer need their own towers)."""
    if spec.attention == "joint" and spec.patching == "tubelet":
        return []
    return [f"the CLIP-shaped model (--init open_clip:...) runs joint attention over tubelets; this composition asks "
            f"for attention {spec.attention!r} with {spec.patching!r} patching"]


def build_clip_model(spec: ModelSpec) -> DualEncoder:
    """The CLIP-shaped dual encoder of a configured spec (randomly initialised; tasks/clip_init.py loads weights)."""
    problems = clip_problems(spec)
    if problems:
        raise ValueError(problems[0])
    model = DualEncoder(spec, ClipVideoEncoder(spec))
    model.text = ClipTextEncoder(spec)
    return model
