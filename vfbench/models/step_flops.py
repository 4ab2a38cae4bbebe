"""FLOPs of one training step, matmul by matmul, counting only the work autograd really does.

Forward of a matmul costs F = 2·rows·in·out (a multiply-add is 2 FLOPs). Its backward is two matmuls of
the same size (arXiv:2312.07395 §4 takes "training ≈ 3F" for a fully trained layer):

- the input-gradient matmul, run only when the input needs a gradient, i.e. when some parameter before
  it trains (the patch embedding reads the clip, so it never runs one; a frozen layer whose input needs
  no gradient runs none);
- the weight-gradient matmul, run only when the weight trains (a frozen linear skips it; LoRA runs it
  for A and B but not for W).

Attention's two batched matmuls (Q·Kᵀ and P·V) have no weights: their backward is 2F when q, k, v need
a gradient with the math kernel, and 2.5F with flash / memory-efficient kernels, which recompute the
scores in backward (PyTorch's FlopCounterMode counts them so). Blocks in the no-grad prefix run forward
only; activation checkpointing runs each checkpointed block's forward again in backward, except its last
matmul: non-reentrant checkpointing stops recomputing once the last saved tensor is back (PyTorch's
default early stop), and a matmul saves its inputs before it runs. LayerNorm,
GELU, softmax and the optimizer are elementwise and not counted (as FlopCounterMode does).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from vfbench.models.peft import Adapter, LoRALinear
from vfbench.models.tower import TokenLayout

RECOMPUTING_BACKWARD = 2.5  # flash / memory-efficient attention backward: 5 matmuls of the forward's 2


@dataclass
class StepFlops:
    """A step's FLOPs by kind of work; `total` is what `flops_per_step` records."""

    forward: int = 0
    input_grad: int = 0  # gradients w.r.t. activations (attention's included)
    weight_grad: int = 0
    recompute: int = 0  # forward run again by activation checkpointing
    grad_enabled: bool = field(default=True, repr=False)
    last_matmul: int = field(default=0, repr=False)  # forward FLOPs of the latest matmul counted

    @property
    def total(self) -> int:
        return self.forward + self.input_grad + self.weight_grad + self.recompute

    def matmul(self, flops: int, grad_in: bool, weight_trains: bool) -> bool:
        """Count one matmul; returns whether its output needs a gradient."""
        self.forward += flops
        self.last_matmul = flops
        if not self.grad_enabled:
            return False
        self.input_grad += flops if grad_in else 0
        self.weight_grad += flops if weight_trains else 0
        return grad_in or weight_trains


def _trains(module: nn.Module | None) -> bool:
    return module is not None and any(p.requires_grad for p in module.parameters(recurse=False))


def linear(f: StepFlops, lin: nn.Module, rows: int, grad_in: bool) -> bool:
    """An nn.Linear or LoRALinear applied to `rows` token rows."""
    if isinstance(lin, LoRALinear):  # W x + (x Aᵀ) Bᵀ: W frozen, A and B train
        linear(f, lin.base, rows, grad_in)
        f.matmul(2 * rows * lin.in_features * lin.rank, grad_in, True)
        return f.matmul(2 * rows * lin.rank * lin.out_features, True, True)
    return f.matmul(2 * rows * lin.in_features * lin.out_features, grad_in, _trains(lin))


def attention(f: StepFlops, attn: nn.Module, rows: int, seqs: tuple[int, int], grad_in: bool) -> bool:
    """qkv -> per-head attention over `seqs` = (sequences, length) with rows = sequences·length -> proj."""
    g = linear(f, attn.qkv, rows, grad_in)
    count, length = seqs
    attention_core(f, 4 * count * length * length * attn.qkv.in_features, g, attn.kernel)  # Q·Kᵀ and P·V, all heads
    return linear(f, attn.proj, rows, g)


def attention_core(f: StepFlops, flops: int, grad: bool, kernel: str) -> None:
    """The weightless Q·Kᵀ and P·V matmuls: backward 2x (math) or 2.5x (kernels that recompute the scores)."""
    f.forward += flops
    if grad and f.grad_enabled:
        f.input_grad += int(flops * (2 if kernel == "math" else RECOMPUTING_BACKWARD))


def block_seqs(blk: nn.Module, rows: int, grid: tuple | None) -> list[tuple[int, int]]:
    """(sequences, length) of each attention in the block, from the lengths the block declares
    (`layer_shape`): joint over all tokens, per slice, FST's temporal attention over the T' slices."""
    return [(rows // length, length) for length in blk.layer_shape(TokenLayout(rows, grid)).seqs]


def block(f: StepFlops, blk: nn.Module, rows: int, grid: tuple | None, grad_in: bool, length: int) -> bool:
    """A pre-LN block (joint, per-slice or FST) over rows = batch · tokens; `length` tokens per clip."""
    seqs = block_seqs(blk, length, grid)
    batch = rows // length
    x = grad_in
    h = attention(f, blk.attn, rows, (batch * seqs[0][0], seqs[0][1]), x or _trains(blk.norm1))
    x = x or h
    if hasattr(blk, "attn_t"):  # FST: x + tanh(alpha)·MSA_t(LN_t(x))
        ht = attention(f, blk.attn_t, rows, (batch * seqs[1][0], seqs[1][1]), x or _trains(blk.norm_t))
        x = x or ht or (blk.alpha.requires_grad and f.grad_enabled)
    m = linear(f, blk.mlp.fc1, rows, x or _trains(blk.norm2))
    m = linear(f, blk.mlp.fc2, rows, m)
    if isinstance(blk.post_mlp, Adapter):
        m = linear(f, blk.post_mlp.up, rows, linear(f, blk.post_mlp.down, rows, m)) or m
    return (x or m) and f.grad_enabled


def patch(f: StepFlops, embed: nn.Module, frames: int, batch: int) -> bool:
    """The tokenizer's convolutions read the clip, which needs no gradient: forward and, when the conv
    trains, its weight gradient. Returns whether the tokens need a gradient (any patch parameter trains)."""
    convs = getattr(embed, "convs", None) or [embed.proj]  # TubeViT: one conv per tube
    f.matmul(batch * embed.forward_flops(frames), False, any(_trains(c) for c in convs))
    return any(p.requires_grad for p in embed.parameters())


def layers(f: StepFlops, blocks, rows_grids: list, grad_in: bool, prefix: int, checkpoint: bool, batch: int) -> bool:
    """Blocks in order: the first `prefix` without autograd, the rest checkpointed when asked."""
    for i, (blk, (length, grid)) in enumerate(zip(blocks, rows_grids)):
        f.grad_enabled = i >= prefix
        before = f.forward
        grad_in = block(f, blk, batch * length, grid, grad_in, length)
        if checkpoint and grad_in and f.grad_enabled:
            f.recompute += f.forward - before - f.last_matmul
    f.grad_enabled = True
    return grad_in


def video_tower(f: StepFlops, video: nn.Module, frames: int, batch: int, tokens: int, grid: tuple | None) -> bool:
    g = patch(f, video.patch, frames, batch)
    spatial = getattr(video, "spatial_layers", None)  # factorised encoder: temporal blocks see T' tokens
    shapes = [(tokens, grid) if spatial is None or i < spatial else (grid[0], None) for i in range(len(video.blocks))]
    prefix = video.no_grad_prefix
    if spatial is None:
        g = layers(f, video.blocks, shapes, g, prefix, video.use_checkpoint, batch)
    else:
        g = layers(f, video.blocks[:spatial], shapes[:spatial], g, prefix, video.use_checkpoint, batch)
        g = (g or _trains(video.spatial_norm)) and prefix <= spatial
        g = layers(f, video.blocks[spatial:], shapes[spatial:], g, max(prefix - spatial, 0), video.use_checkpoint, batch)
    pool = getattr(video, "pool", None)
    if pool is not None:  # attention pool: k/v of T frame embeddings, one query for the batch, 1 x T attention
        kv = linear(f, pool.kv, batch * frames, g or pool.pos_time.requires_grad)
        q = linear(f, pool.q, 1, pool.query.requires_grad)
        attention_core(f, 4 * batch * frames * pool.proj.in_features, kv or q, pool.kernel)
        g = linear(f, pool.proj, batch, kv or q)
    return g or _trains(video.norm)


def step_flops(model: nn.Module, frames: int, batch: int, text_len: int, tokens: int, grid: tuple | None) -> StepFlops:
    """FLOPs of one contrastive step of the dual encoder: both towers, projections and the B x B logits."""
    f = StepFlops()
    gv = video_tower(f, model.video, frames, batch, tokens, grid)
    text = model.text
    gt = any(p.requires_grad for p in (*text.tok.parameters(), text.pos))
    gt = layers(f, text.blocks, [(text_len, None)] * len(text.blocks), gt, 0, False, batch)
    ev = linear(f, model.video_proj, batch, gv)
    et = linear(f, model.text_proj, batch, gt)
    logits = 2 * batch * batch * model.video_proj.out_features  # v·tᵀ, (B, E) x (E, B)
    f.forward += logits
    f.input_grad += logits * (int(ev) + int(et))
    return f
