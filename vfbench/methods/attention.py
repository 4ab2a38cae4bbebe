"""The attention axis: how space-time tokens attend to each other."""

from __future__ import annotations

import dataclasses

from vfbench.errors import UserError
from vfbench.models.factorized import DEFAULT_TEMPORAL_LAYERS
from vfbench.registry import Method, register_method
from vfbench.spec import CellSpec, ModelSpec


@register_method
class Joint(Method):
    """Joint space-time attention over all S tubelet tokens: ViViT model 1 (Arnab et al. 2021, §3.3),
    the paper's ShortViViT baseline (arXiv:2312.07395 §4). Adds no parameters over the image ViT."""

    name = "joint"
    axis = "attention"
    summary = "full attention over all space-time tokens (ViViT model 1; the baseline)"
    reference = "Arnab et al. 2021, ViViT, model 1; arXiv:2312.07395 §4"

    def configure(self, spec: ModelSpec) -> ModelSpec:
        return dataclasses.replace(spec, attention="joint")


def _grid_reasons(spec: ModelSpec, what: str) -> list[str]:
    """Encoders that reshape tokens to (B, T', N, D) need a tokenizer that yields a (T', N) grid."""
    if spec.patching != "tubelet":
        return [f"{what} needs tokens on a (T', N) grid; {spec.patching} patching yields an unstructured token set"]
    return []


@register_method
class FactorizedSelfAttention(Method):
    """Factorised self-attention in every block: ViViT model 3 (Arnab et al. 2021, §3.3) as the paper runs
    it (arXiv:2312.07395 §4, "FST"): spatial MSA within each time slice, then temporal MSA at each spatial
    position as a gated residual x + tanh(α)·MSA_t(LN_t(x)) with α = 0 at init (one per layer, [R]),
    temporal weights copied from the spatial ones; space -> time order (scenic `attention_order`), so
    the block starts as the image ViT. Adds 4D² + 6D + 1 parameters per layer (~28M ViT-B, ~101M ViT-L).

    Masking: the grid must survive. tube_mask keeps it exactly (same spatial positions in every slice).
    mask (random) is applied per slice with an equal count floor(N(1-r)) in each slice (positions differ
    between slices and are kept in raster order), so temporal attention runs across the j-th surviving
    token of each slice rather than a fixed location — the cheapest structured form with FST's cost.
    TubeViT tokens have no grid and are refused.
    """

    name = "factorized_self_attention"
    axis = "attention"
    summary = "spatial then gated temporal self-attention in every block (ViViT model 3, FST)"
    reference = "Arnab et al. 2021, ViViT, model 3; google-research/scenic vivit; arXiv:2312.07395 §4"

    def configure(self, spec: ModelSpec) -> ModelSpec:
        return dataclasses.replace(spec, attention="factorized_self_attention")

    def not_supported_reasons(self, cell: CellSpec, spec: ModelSpec) -> list[str]:
        return _grid_reasons(spec, "factorized self-attention")


@register_method
class FactorizedEncoderMethod(Method):
    """Factorised encoder: ViViT model 2 (Arnab et al. 2021, §3.3; scenic `SpaceTimeViViT`; arXiv:2312.07395 §4).
    The spatial ViT (all L layers) runs on each time slice, is mean-pooled per slice, and
    `temporal_layers` extra joint blocks run over the T' slice tokens (default 4: ViViT's ViT-B setting).
    Masking is per slice (see factorized_self_attention)."""

    name = "factorized_encoder"
    axis = "attention"
    summary = "spatial ViT per time slice, pooled, then a temporal transformer (ViViT model 2)"
    reference = "Arnab et al. 2021, ViViT, model 2; google-research/scenic vivit SpaceTimeViViT; arXiv:2312.07395 §4"
    params = {"temporal_layers": DEFAULT_TEMPORAL_LAYERS}

    def check(self) -> None:
        if self.p["temporal_layers"] < 0:
            raise UserError(f"factorized_encoder: temporal_layers={self.p['temporal_layers']} must be >= 0")

    def configure(self, spec: ModelSpec) -> ModelSpec:
        spec = dataclasses.replace(spec, attention="factorized_encoder")
        return spec.with_options(temporal_layers=self.p["temporal_layers"])

    def not_supported_reasons(self, cell: CellSpec, spec: ModelSpec) -> list[str]:
        return _grid_reasons(spec, "the factorised encoder")


class _FrameLevel(Method):
    """Shared by the frame-level baselines: 2D patches (tubelet 1), a per-frame image ViT."""

    axis = "attention"
    pool = "avg"

    def configure(self, spec: ModelSpec) -> ModelSpec:
        # The temporal table keeps spanning the same 16 frames, now one slice per frame.
        spec = dataclasses.replace(spec, attention="frame", tubelet=1, temporal_pos_len=spec.temporal_pos_len * spec.tubelet)
        return spec.with_options(pool=self.pool)

    def not_supported_reasons(self, cell: CellSpec, spec: ModelSpec) -> list[str]:
        reasons = _grid_reasons(spec, "a frame-level encoder")
        if spec.patching == "tubelet" and spec.tubelet != 1:
            reasons.append(
                f"frame-level encoders embed each frame with 2D patches (tubelet 1); the patching method set tubelet {spec.tubelet}"
            )
        return reasons


@register_method
class FrameAvg(_FrameLevel):
    """"Avg frame-level" baseline and ImageViT (arXiv:2312.07395 §4): an image ViT on every frame (2D patches,
    no temporal position table, attention never crosses frames), then the temporal average of the
    per-frame mean-pooled embeddings. Masking is per frame (equal count in each)."""

    name = "frame_avg"
    summary = "image ViT per frame, temporal average (frame-level baseline, ImageViT)"
    reference = "arXiv:2312.07395 §4 (frame-level baselines, ImageViT); ViViT model 2 with L_t = 0"
    pool = "avg"


@register_method
class FrameAttnPool(_FrameLevel):
    """"Att-pool frame-level" baseline (arXiv:2312.07395 §4): the per-frame image ViT of frame_avg, then a learned
    query attends over the T frame embeddings (multi-head attentional pooling as in CoCa/TubeViT), with
    learned temporal positions added to the frame embeddings first [R]."""

    name = "frame_attnpool"
    summary = "image ViT per frame, attention pooling over frames with a learned query"
    reference = "arXiv:2312.07395 §4 (frame-level baselines); attentional pooler of CoCa (Yu et al. 2022)"
    pool = "attnpool"
