"""Analytic peak memory of a train step (vfbench's analytic model, after Korthikanti et al. 2022), recorded next to the traced estimate.

    M_peak ≈ M_static + max(L_train·M_layer + M_embed + M_head + W_top,  G)

- M_static: fp32 parameters (4 B each), AdamW m and v (8 B per trainable parameter), the inputs.
- M_layer: bytes a layer keeps for backward, per token: our pre-LN block's saved-tensor list (below),
  the c_lin·S·D + c_att·h·S² of Korthikanti et al. 2022 with c_lin worked out for this code: 36 B·D
  per token in bf16 autocast (x 4, LN1 cast 2, qkv 6, attention out 2, x1 4, LN2 cast 2, fc1 out 8,
  GELU out 8) and 68 in fp32; flash/memory-efficient attention adds only a 4·h B log-sum-exp, the
  math kernel h·S scores per token (2 or 4 B; 6 B on CUDA bf16: fp32 softmax + bf16 copy).
  PEFT: a frozen linear keeps no input (autograd saves mat1 only for a weight gradient), but LN and
  GELU inputs stay, and the bf16 copy of each weight on the gradient path is kept (2 B/param).
  Method scaling (vfbench's analytic model, after Korthikanti et al. 2022): masking shrinks S, coarse patches shrink S, frame-level and
  factorised attention shorten the attention sequence (N, T'), FST adds a temporal sub-block
  (6c + r B·D per token), checkpointing keeps only each block's input plus one layer's working set,
  last_k keeps k layers (the no-grad prefix stores nothing).
- M_embed: the bf16 copy of the clip the patch conv keeps for its weight gradient (when it trains).
- M_head: the text tower's activations, or its gradients, whichever is larger (its backward runs
  first and trades one for the other), plus the projections' gradients.
- W_top: the top layer's backward working set, B·S·(r·D + 2·c·M).
- G: all gradients at the end of backward, the other candidate for the peak when S is small.

It ignores the small tensors (LayerNorm statistics, per-parameter step counters, the loss) and
allocator rounding, and treats each peak candidate as a sum, not a timeline; the traced estimate is the
number to use, this one is a cross-check and the per-method scaling made explicit.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from vfbench.measure.memory import MIB
from vfbench.models.saved_bytes import Bytes, trains
from vfbench.models.tower import TokenLayout
from vfbench.spec import CellSpec, ModelSpec


@dataclass(frozen=True)
class AnalyticPeak:
    static_mib: float  # parameters + optimizer state + inputs
    activations_mib: float  # L_train·M_layer + M_embed (+ text tower)
    gradients_mib: float
    total_mib: float


def block_bytes(blk: nn.Module, seqs: tuple, b: Bytes) -> float:
    """Bytes per token a block keeps for backward (the block reports it: models/saved_bytes.py). seqs: its
    attention sequence length(s), from the encoder's `layer_shapes`."""
    return blk.saved_bytes_per_token(seqs, b)


def kept_tokens(video: nn.Module, frames: int) -> TokenLayout:
    """Tokens entering the blocks in training and their grid: the patch embedding's layout after the
    methods' token hooks (masking), each of which declares its layout by arithmetic."""
    return video.train_layout(frames)


def analytic_peak(spec: ModelSpec, model: nn.Module, cell: CellSpec) -> AnalyticPeak:
    video, text = model.video, model.text
    bf16 = (spec.precision or cell.dtype) == "bf16"
    c = 2 if bf16 else 4
    score = (6 if bf16 else 4) if cell.device == "cuda" else c
    b = Bytes(c=c, r=2 if (bf16 and not video.patch.fp32_positions) else 4, score=score, kernel=spec.attn_kernel)
    B, T = cell.batch, cell.frames
    params = list(model.parameters())
    n_all = sum(p.numel() for p in params)
    n_train = sum(p.numel() for p in params if p.requires_grad)
    clip = B * spec.channels * T * spec.image_size**2
    static = 4 * n_all + 8 * n_train + 4 * clip + 8 * B * spec.text_len

    prefix = video.no_grad_prefix
    layers = video.layer_shapes(kept_tokens(video, T))[prefix:]
    per_layer = [B * lay.tokens * block_bytes(blk, lay.seqs, b) for lay, blk in zip(layers, video.blocks[prefix:])]
    if video.use_checkpoint and per_layer:  # each block keeps its input; backward recomputes one layer at a time
        acts = sum(B * lay.tokens * b.r * video.width for lay in layers) + max(per_layer)
    else:
        acts = sum(per_layer)
    if bf16:  # the bf16 copy of every weight on the gradient path is kept for backward (2 B/param)
        acts += 2 * sum(m.weight.numel() for blk in video.blocks[prefix:] for m in blk.modules() if isinstance(m, nn.Linear))
    if bf16 and trains(video.patch):  # M_embed: each conv reading the clip keeps a bf16 copy of it
        acts += 2 * clip * video.patch.clip_reads
    text_b = Bytes(c=c, r=4, score=score, kernel="sdpa")
    text_acts = sum(B * spec.text_len * block_bytes(blk, (spec.text_len,), text_b) for blk in text.blocks)
    text_acts += 2 * sum(m.weight.numel() for m in text.modules() if isinstance(m, nn.Linear)) if bf16 else 0
    text_grads = 4 * sum(p.numel() for p in text.parameters() if p.requires_grad)
    head_grads = 4 * sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and n.split(".")[0] not in ("video", "text"))
    top = B * layers[-1].tokens * (b.r * video.width + 2 * c * spec.mlp_dim) if layers else 0
    grads = 4 * n_train
    start = acts + max(text_acts, text_grads + head_grads) + top
    total = static + max(start, grads)
    return AnalyticPeak(static / MIB, (acts + text_acts) / MIB, grads / MIB, total / MIB)


__all__ = ["AnalyticPeak", "analytic_peak", "block_bytes", "kept_tokens"]
