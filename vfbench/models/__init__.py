"""Model construction from a (method-configured) ModelSpec."""

from __future__ import annotations

import torch
from torch import nn

from vfbench.models.dual import DualEncoder
from vfbench.models.patch import build_patch
from vfbench.models.presets import get_preset, preset_names
from vfbench.models.registry import ENCODERS
from vfbench.spec import ModelSpec


def build_video_encoder(spec: ModelSpec) -> nn.Module:
    """The video tower registered under spec.attention (set by the attention methods)."""
    return ENCODERS.get(spec.attention).from_spec(spec)


def build_model(spec: ModelSpec) -> DualEncoder:
    return DualEncoder(spec, build_video_encoder(spec))


def count_params(module: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts."""
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return total, trainable


def param_counts_without_memory(spec: ModelSpec) -> dict[str, int]:
    """Parameter counts of a spec, built on the meta device so no real weights are allocated."""
    with torch.device("meta"):
        model = build_model(spec)
    video = sum(p.numel() for p in model.video.parameters())
    text = sum(p.numel() for p in model.text.parameters())
    total, _ = count_params(model)
    return {"video": video, "text": text, "total": total}


__all__ = ["build_model", "build_patch", "build_video_encoder", "count_params", "get_preset", "preset_names", "param_counts_without_memory"]
