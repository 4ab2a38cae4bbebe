"""The dual encoder trained contrastively: video tower, text tower, projections, learnable temperature.

Loss: symmetric InfoNCE (CLIP) with a learnable temperature initialised at 0.07 (arXiv:2312.07395 §3; the temperature init is an assumption).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vfbench.models.text import TextEncoder
from vfbench.spec import ModelSpec

# The attribute where the compile method (methods/runtime.py) leaves torch.compile(model), set with
# object.__setattr__ so it is not a submodule; step.compiled_or_eager calls it.
COMPILED_CALL = "compiled_call"


class DualEncoder(nn.Module):
    def __init__(self, spec: ModelSpec, video: nn.Module):
        super().__init__()
        self.spec = spec
        self.video = video
        self.text = TextEncoder(spec)
        self.video_proj = nn.Linear(spec.width, spec.embed_dim, bias=False)
        self.text_proj = nn.Linear(spec.text_width, spec.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def embed_video(self, video: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.video_proj(self.video(video)), dim=-1)

    def embed_text(self, ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_proj(self.text(ids)), dim=-1)

    def forward(self, video: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Contrastive loss of a batch of (clip, caption) pairs."""
        return contrastive_loss(self.embed_video(video), self.embed_text(ids), self.logit_scale)


def contrastive_loss(v: torch.Tensor, t: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over a batch: v, t are (B, E), L2-normalised; pair i matches pair i."""
    # Clamp at ln(100) as CLIP does, so the temperature cannot run away.
    logits = logit_scale.clamp(max=math.log(100)).exp() * v.float() @ t.float().T  # (B, B)
    target = torch.arange(v.shape[0], device=v.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
