"""Bytes per token a pre-LN block keeps for backward: the per-layer term of vfbench's analytic memory
model (measure/analytic.py), the c_lin·S·D + c_att·h·S² of Korthikanti et al. 2022 worked out for this
code. Blocks report it through `saved_bytes_per_token`; a block type that keeps more (factorised
self-attention's temporal sub-block) adds its own share in its own file.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

# Kernels whose backward keeps the (B, h, S, S) score matrix (the memory models key on this).
STORES_SCORES = ("math",)


@dataclass(frozen=True)
class Bytes:
    c: int  # compute dtype: 2 in bf16 autocast, else 4
    r: int  # residual stream: 4 (fp32 position tables promote it), 2 when the tokens are cast (TubeViT)
    score: int  # bytes kept per attention score by the math kernel
    kernel: str


def trains(m: nn.Module | None) -> bool:
    return m is not None and any(p.requires_grad for p in m.parameters())


def lora_rank(linear: nn.Module) -> int:
    return linear.rank if hasattr(linear, "lora_A") else 0


def linear_input_bytes(m: nn.Module, b: Bytes) -> int:
    """A linear keeps its input (c·D per token) only for a weight gradient: when it trains or has LoRA."""
    return b.c * m.in_features if (trains(m) or lora_rank(m)) else 0


def attention_bytes(D: int, h: int, seq: int, b: Bytes) -> float:
    """Per token, besides q, k, v (3·c·D, counted by the block): sdpa keeps its output and an fp32
    log-sum-exp per head; math keeps the reshaped output and h·seq scores (Korthikanti et al. 2022's
    c_att). Its matmuls keep contiguous copies of q·scale, k and v instead of the qkv storage: the same 3·c·D."""
    if b.kernel in STORES_SCORES:
        return b.c * D + h * seq * b.score
    return b.c * D + 4 * h


def block_saved_bytes(blk: nn.Module, seqs: tuple, b: Bytes) -> float:
    """The pre-LN block's saved tensors per token: x, LN1 cast, qkv, attention, x1, LN2 cast, fc1 out,
    GELU out (36 B·D per token in bf16 autocast, 68 in fp32 at M = 4D), plus LoRA's rank-r activations
    and a Houlsby adapter's input and bottleneck. seqs[0] is its attention sequence length."""
    attn, mlp = blk.attn, blk.mlp
    D, M, h = blk.norm1.normalized_shape[0], mlp.fc1.out_features, attn.heads
    lora = sum(b.c * lora_rank(m) for m in (attn.qkv, attn.proj, mlp.fc1, mlp.fc2))
    total = b.r * D + linear_input_bytes(attn.qkv, b) + 3 * b.c * D + attention_bytes(D, h, seqs[0], b)
    total += b.r * D + linear_input_bytes(mlp.fc1, b) + b.c * M + (b.c * M if (trains(mlp.fc2) or lora_rank(mlp.fc2)) else 0)
    if trains(blk.post_mlp):  # Houlsby adapter: its input, its bottleneck and the GELU of it
        total += b.c * D + 2 * b.c * blk.post_mlp.down.out_features
    return total + lora
