"""Pre-LN transformer pieces: attention with selectable kernels, the MLP, and the block.

Tokens are (B, S, D); `grid` is (T', N) when the S tokens still form T' time slices of N tokens each,
or None once masking has made them an unstructured set.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vfbench.models.saved_bytes import Bytes, block_saved_bytes
from vfbench.models.tower import LayerShape, TokenLayout

# sdpa: PyTorch picks; flash / efficient / cudnn: one SDPBackend pinned; math: the S x S formulation written
# out; xformers: memory_efficient_attention. Only `math` stores an S x S matrix for backward.
ATTN_KERNELS = ("sdpa", "flash", "efficient", "cudnn", "math", "xformers")
PINNED_BACKENDS = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "cudnn": "CUDNN_ATTENTION"}


def xformers_available() -> bool:
    try:
        import xformers.ops  # noqa: F401
    except Exception:
        return False
    return True


def cpu_bf16_native() -> bool:
    """Whether this CPU computes bfloat16 in hardware: oneDNN's own check (x86 AVX-512 core or AVX-NE-CONVERT,
    Arm BF16), else the avx512_bf16 / amx_bf16 / bf16 flags of /proc/cpuinfo. Without it torch emulates bf16,
    and an autocast step runs 10-50x slower than fp32 (AVX2-only x86)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        pass
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = {f for line in text.splitlines() if line.startswith(("flags", "Features")) for f in line.split(":", 1)[1].split()}
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel: str) -> torch.Tensor:
    """q, k, v: (B, h, S, d) -> (B, h, S, d).

    sdpa lets PyTorch pick flash / memory-efficient / cuDNN / math kernels; flash, efficient and cudnn pin
    one SDPBackend through torch.nn.attention.sdpa_kernel (no fallback: an unsupported input raises);
    math materialises the (S, S) matrix and keeps it for backward (Korthikanti et al. 2022's c_att term;
    the computation of SDPBackend.MATH, written out so trackers and the estimate see every tensor);
    xformers calls memory_efficient_attention, which stores only the log-sum-exp (Rabe & Staats 2021).
    """
    if kernel == "sdpa":
        return F.scaled_dot_product_attention(q, k, v)
    if kernel in PINNED_BACKENDS:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel(getattr(SDPBackend, PINNED_BACKENDS[kernel])):  # traced by dynamo under compile too
            return F.scaled_dot_product_attention(q, k, v)
    if kernel == "math":
        scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (B, h, S, S)
        return scores.softmax(dim=-1) @ v
    if kernel == "xformers":
        import xformers.ops as xops

        out = xops.memory_efficient_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2)  # xformers works in (B, S, h, d)
    raise ValueError(f"unknown attention kernel {kernel!r}; accepted: {', '.join(ATTN_KERNELS)}")


class Attention(nn.Module):
    """Multi-head self-attention over the second-to-last axis of (..., S, D)."""

    def __init__(self, dim: int, heads: int, kernel: str = "sdpa"):
        super().__init__()
        self.heads = heads
        self.kernel = kernel
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *lead, S, D = x.shape
        x = x.reshape(-1, S, D)  # (B', S, D)
        qkv = self.qkv(x).reshape(x.shape[0], S, 3, self.heads, D // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B', h, S, d)
        out = attention(q, k, v, self.kernel)
        out = out.transpose(1, 2).reshape(x.shape[0], S, D)
        return self.proj(out).reshape(*lead, S, D)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-LN ViT block, joint attention over all S tokens (ViViT model 1).

    `post_mlp` is an identity slot where adapters go (Houlsby adapter after the feed-forward block).
    """

    def __init__(self, dim: int, heads: int, mlp_dim: int, kernel: str = "sdpa"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, kernel)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_dim)
        self.post_mlp = nn.Identity()

    def forward(self, x: torch.Tensor, grid: tuple | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.post_mlp(self.mlp(self.norm2(x)))

    def layer_shape(self, layout: TokenLayout) -> LayerShape:
        """Joint attention: one sequence of all the tokens."""
        return LayerShape(layout.tokens, (layout.tokens,))

    def saved_bytes_per_token(self, seqs: tuple, b: Bytes) -> float:
        return block_saved_bytes(self, seqs, b)

    def forward_flops(self, tokens: int, grid: tuple | None = None) -> int:
        """Per sequence, forward: linears 2·S·(4D² + 2DM) plus attention 4·S²·D (vfbench's analytic model, after Korthikanti et al. 2022)."""
        d, m = self.norm1.normalized_shape[0], self.mlp.fc1.out_features
        return 2 * tokens * (4 * d * d + 2 * d * m) + 4 * tokens * tokens * d + extra_flops(self, tokens)


def extra_flops(block: nn.Module, tokens: int) -> int:
    """FLOPs of pieces methods add inside a block (adapters, LoRA): each such module has `extra_flops(tokens)`."""
    return sum(m.extra_flops(tokens) for m in block.modules() if hasattr(m, "extra_flops"))


def block_param_count(dim: int, mlp_dim: int) -> int:
    """qkv 3D²+3D, proj D²+D, fc1 D·M+M, fc2 M·D+D, two LayerNorms 4D (= 12D²+13D when M = 4D)."""
    return 4 * dim * dim + 4 * dim + 2 * dim * mlp_dim + mlp_dim + dim + 4 * dim
