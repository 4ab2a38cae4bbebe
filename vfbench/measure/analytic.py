"""Analytic peak memory of a train step (PAPER.md §4), recorded next to the traced estimate.

    M_peak ≈ M_static + max(L_train·M_layer + M_embed + M_head + W_top,  G)

- M_static: fp32 parameters (4 B each), AdamW m and v (8 B per trainable parameter), the inputs.
- M_layer: bytes a layer keeps for backward, per token: our pre-LN block's saved-tensor list (below),
  the c_lin·S·D + c_att·h·S² of Korthikanti et al. 2022 with c_lin worked out for this code: 36 B·D
  per token in bf16 autocast (x 4, LN1 cast 2, qkv 6, attention out 2, x1 4, LN2 cast 2, fc1 out 8,
  GELU out 8) and 68 in fp32; flash/memory-efficient attention adds only a 4·h B log-sum-exp, the
  math kernel h·S scores per token (2 or 4 B; 6 B on CUDA bf16: fp32 softmax + bf16 copy).
  PEFT: a frozen linear keeps no input (autograd saves mat1 only for a weight gradient), but LN and
  GELU inputs stay, and the bf16 copy of each weight on the gradient path is kept (2 B/param).
  Method scaling (PAPER.md §4 table): masking shrinks S, coarse patches shrink S, frame-level and
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
from vfbench.models.blocks import STORES_SCORES
from vfbench.spec import CellSpec, ModelSpec


@dataclass(frozen=True)
class AnalyticPeak:
    static_mib: float  # parameters + optimizer state + inputs
    activations_mib: float  # L_train·M_layer + M_embed (+ text tower)
    gradients_mib: float
    total_mib: float


def _trains(m: nn.Module | None) -> bool:
    return m is not None and any(p.requires_grad for p in m.parameters())


def _lora_rank(linear: nn.Module) -> int:
    return linear.rank if hasattr(linear, "lora_A") else 0


@dataclass(frozen=True)
class Bytes:
    c: int  # compute dtype: 2 in bf16 autocast, else 4
    r: int  # residual stream: 4 (fp32 position tables promote it), 2 when the tokens are cast (TubeViT)
    score: int  # bytes kept per attention score by the math kernel
    kernel: str


def attention_bytes(D: int, h: int, seq: int, b: Bytes) -> float:
    """Per token, besides q, k, v (3·c·D, counted by the block): sdpa keeps its output and an fp32
    log-sum-exp per head; math keeps the reshaped output and h·seq scores (PAPER.md §4, c_att). Its
    matmuls keep contiguous copies of q·scale, k and v instead of the qkv storage: the same 3·c·D."""
    if b.kernel in STORES_SCORES:
        return b.c * D + h * seq * b.score
    return b.c * D + 4 * h


def block_bytes(blk: nn.Module, seqs: tuple, b: Bytes) -> float:
    """Bytes per token a pre-LN block keeps for backward. seqs: attention sequence length(s) of its
    spatial (and temporal, for FST) attention."""
    attn, mlp = blk.attn, blk.mlp
    D, M, h = blk.norm1.normalized_shape[0], mlp.fc1.out_features, attn.heads
    lin = lambda m: b.c * D if (_trains(m) or _lora_rank(m)) else 0  # noqa: E731  input copy of a linear
    lora = sum(b.c * _lora_rank(m) for m in (attn.qkv, attn.proj, mlp.fc1, mlp.fc2))
    total = b.r * D + lin(attn.qkv) + 3 * b.c * D + attention_bytes(D, h, seqs[0], b)
    total += b.r * D + lin(mlp.fc1) + b.c * M + (b.c * M if (_trains(mlp.fc2) or _lora_rank(mlp.fc2)) else 0)
    if _trains(blk.post_mlp):  # Houlsby adapter: its input, its bottleneck and the GELU of it
        total += b.c * D + 2 * b.c * blk.post_mlp.down.out_features
    if hasattr(blk, "attn_t"):  # FST temporal sub-block: LN_t cast, qkv_t, attention, gated output, residual
        at = blk.attn_t
        total += lin(at.qkv) + 3 * b.c * D + attention_bytes(D, h, seqs[1], b) + b.r * D
        total += b.c * D if blk.alpha.requires_grad else 0
        lora += sum(b.c * _lora_rank(m) for m in (at.qkv, at.proj))
    return total + lora


def _layer_seqs(video: nn.Module, spec: ModelSpec, tokens: int, slices: int) -> list[tuple[int, tuple]]:
    """(tokens, attention sequence lengths) per video block."""
    per_slice = tokens // slices if slices else tokens
    out = []
    for i in range(len(video.blocks)):
        if spec.attention == "factorized_self_attention":
            out.append((tokens, (per_slice, slices)))
        elif spec.attention == "frame" or (spec.attention == "factorized_encoder" and i < video.spatial_layers):
            out.append((tokens, (per_slice,)))
        elif spec.attention == "factorized_encoder":
            out.append((slices, (slices,)))
        else:
            out.append((tokens, (tokens,)))
    return out


def kept_tokens(spec: ModelSpec, video: nn.Module, frames: int) -> tuple[int, int]:
    """(tokens entering the blocks, time slices) by formula (PAPER.md §4 'Tokens')."""
    from vfbench.methods.masking import keep_count

    total = video.patch.num_tokens(frames)
    slices_of = getattr(video.patch, "slices", None)
    slices = slices_of(frames) if slices_of else 0
    if spec.mask_kind == "none" or spec.mask_ratio <= 0:
        return total, slices
    if spec.mask_kind == "tube" or getattr(video, "needs_grid", False):
        return slices * keep_count(total // slices, spec.mask_ratio), slices
    return keep_count(total, spec.mask_ratio), 0


def analytic_peak(spec: ModelSpec, model: nn.Module, cell: CellSpec) -> AnalyticPeak:
    video, text = model.video, model.text
    bf16 = (spec.precision or cell.dtype) == "bf16"
    c = 2 if bf16 else 4
    score = (6 if bf16 else 4) if cell.device == "cuda" else c
    b = Bytes(c=c, r=2 if (bf16 and spec.patching == "tubevit") else 4, score=score, kernel=spec.attn_kernel)
    B, T = cell.batch, cell.frames
    params = list(model.parameters())
    n_all = sum(p.numel() for p in params)
    n_train = sum(p.numel() for p in params if p.requires_grad)
    clip = B * spec.channels * T * spec.image_size**2
    static = 4 * n_all + 8 * n_train + 4 * clip + 8 * B * spec.text_len

    tokens, slices = kept_tokens(spec, video, T)
    prefix = video.no_grad_prefix
    layers = _layer_seqs(video, spec, tokens, slices)[prefix:]
    per_layer = [B * n * block_bytes(blk, seqs, b) for (n, seqs), blk in zip(layers, video.blocks[prefix:])]
    if video.use_checkpoint and per_layer:  # each block keeps its input; backward recomputes one layer at a time
        acts = sum(B * n * b.r * video.width for n, _ in layers) + max(per_layer)
    else:
        acts = sum(per_layer)
    if bf16:  # the bf16 copy of every weight on the gradient path is kept for backward (2 B/param)
        acts += 2 * sum(m.weight.numel() for blk in video.blocks[prefix:] for m in blk.modules() if isinstance(m, nn.Linear))
    if bf16 and _trains(video.patch):  # M_embed: the conv keeps a bf16 copy of the clip (per tube for TubeViT)
        acts += 2 * clip * len(getattr(video.patch, "convs", [None]))
    text_b = Bytes(c=c, r=4, score=score, kernel="sdpa")
    text_acts = sum(B * spec.text_len * block_bytes(blk, (spec.text_len,), text_b) for blk in text.blocks)
    text_acts += 2 * sum(m.weight.numel() for m in text.modules() if isinstance(m, nn.Linear)) if bf16 else 0
    text_grads = 4 * sum(p.numel() for p in text.parameters() if p.requires_grad)
    head_grads = 4 * sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and n.split(".")[0] not in ("video", "text"))
    top = B * layers[-1][0] * (b.r * video.width + 2 * c * spec.mlp_dim) if layers else 0
    grads = 4 * n_train
    start = acts + max(text_acts, text_grads + head_grads) + top
    total = static + max(start, grads)
    return AnalyticPeak(static / MIB, (acts + text_acts) / MIB, grads / MIB, total / MIB)


__all__ = ["AnalyticPeak", "analytic_peak", "block_bytes", "kept_tokens"]
