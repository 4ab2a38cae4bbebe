"""The runtime axis: how the same model is executed. Harness knobs, not paper variables (PAPER.md §2f)."""

from __future__ import annotations

import dataclasses

from vfbench.errors import UserError
from vfbench.models.blocks import ATTN_KERNELS, xformers_available
from vfbench.registry import Method, register_method
from vfbench.spec import CellSpec, ModelSpec


@register_method
class Checkpoint(Method):
    """Activation checkpointing per block (Chen et al. 2016; torch.utils.checkpoint, non-reentrant): each
    block keeps only its input and recomputes the rest in backward, about +33% compute (PAPER.md §4)."""

    name = "checkpoint"
    axis = "runtime"
    summary = "recompute each block's activations in backward (gradient checkpointing)"
    reference = "PAPER.md §4; Chen et al. 2016, Training Deep Nets with Sublinear Memory Cost"

    def configure(self, spec: ModelSpec) -> ModelSpec:
        return dataclasses.replace(spec, checkpoint=True)


@register_method
class AttnKernel(Method):
    """Attention kernel: sdpa (PyTorch picks flash / memory-efficient / math), math (materialises the
    S x S matrix; Korthikanti et al. 2022's c_att term) or xformers memory_efficient_attention (Rabe &
    Staats 2021; stores only the log-sum-exp). PAPER.md §4."""

    name = "attn_kernel"
    axis = "runtime"
    summary = "attention kernel: sdpa | math | xformers"
    reference = "PAPER.md §4; Korthikanti et al. 2022; facebookresearch/xformers"
    params = {"kind": "sdpa"}

    def check(self) -> None:
        if self.p["kind"] not in ATTN_KERNELS:
            raise UserError(f"attn_kernel: kind={self.p['kind']!r} is unknown; accepted: {', '.join(ATTN_KERNELS)}")

    def configure(self, spec: ModelSpec) -> ModelSpec:
        return dataclasses.replace(spec, attn_kernel=self.p["kind"])

    def not_supported_reasons(self, cell: CellSpec, spec: ModelSpec) -> list[str]:
        if self.p["kind"] != "xformers":
            return []
        if cell.device != "cuda":
            return [f"xformers attention needs a CUDA device (cell device is {cell.device})"]
        if not xformers_available():
            return ["xformers is not importable here (pip install xformers)"]
        return []


@register_method
class BF16(Method):
    """bfloat16 autocast for the whole step (mixed precision; weights and optimizer state stay fp32)."""

    name = "bf16"
    axis = "runtime"
    summary = "autocast the step to bfloat16"
    reference = "PAPER.md §2f (harness knob); Micikevicius et al. 2018, mixed precision"

    def configure(self, spec: ModelSpec) -> ModelSpec:
        return dataclasses.replace(spec, precision="bf16")
