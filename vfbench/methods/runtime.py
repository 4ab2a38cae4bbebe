"""The runtime axis: how the same model is executed (kernels, recomputation, precision, compilation).
Harness knobs, not the paper's variables; several compose in one cell (checkpoint+bf16+compile)."""

from __future__ import annotations

import dataclasses
import functools

import torch

from vfbench.errors import UserError
from vfbench.models.blocks import ATTN_KERNELS, attention, cpu_bf16_native, xformers_available
from vfbench.models.dual import COMPILED_CALL
from vfbench.registry import Method, register_method
from vfbench.spec import CellSpec, ModelSpec


@register_method
class Checkpoint(Method):
    """Activation checkpointing per block (Chen et al. 2016; torch.utils.checkpoint, non-reentrant): each
    block keeps only its input and recomputes the rest in backward, about +33% compute (vfbench's analytic model, after Korthikanti et al. 2022)."""

    name = "checkpoint"
    axis = "runtime"
    summary = "recompute each block's activations in backward (gradient checkpointing)"
    reference = "vfbench's analytic model, after Korthikanti et al. 2022; Chen et al. 2016, Training Deep Nets with Sublinear Memory Cost"

    def configure(self, spec: ModelSpec) -> ModelSpec:
        return dataclasses.replace(spec, checkpoint=True)


@register_method
class AttnKernel(Method):
    """Attention kernel (a harness knob: the paper does not discuss kernels): sdpa (PyTorch picks),
    flash / efficient / cudnn (one SDPBackend pinned through torch.nn.attention.sdpa_kernel; Dao 2023
    FlashAttention-2, Rabe & Staats 2021, cuDNN fused attention), math (materialises the S x S matrix;
    Korthikanti et al. 2022's c_att term) or xformers memory_efficient_attention. Every kernel but math
    stores no S x S matrix for backward."""

    name = "attn_kernel"
    axis = "runtime"
    summary = "attention kernel: " + " | ".join(ATTN_KERNELS)
    reference = "Dao 2023; Rabe & Staats 2021; Korthikanti et al. 2022; facebookresearch/xformers"
    params = {"kind": "sdpa"}

    def check(self) -> None:
        if self.p["kind"] not in ATTN_KERNELS:
            raise UserError(f"attn_kernel: kind={self.p['kind']!r} is unknown; accepted: {', '.join(ATTN_KERNELS)}")

    def configure(self, spec: ModelSpec) -> ModelSpec:
        return dataclasses.replace(spec, attn_kernel=self.p["kind"])

    def not_supported_reasons(self, cell: CellSpec, spec: ModelSpec) -> list[str]:
        kind = self.p["kind"]
        if kind in ("sdpa", "math"):
            return []
        if cell.device != "cuda":
            return [f"{kind} attention needs a CUDA device (cell device is {cell.device})"]
        if kind in HALF_ONLY and (spec.precision or cell.dtype) not in ("bf16", "fp16"):
            return [f"{kind} attention runs only in fp16/bf16 (this cell is {spec.precision or cell.dtype}; compose bf16 or use --dtype bf16)"]
        if kind == "xformers":
            return [] if xformers_available() else [f"xformers is not importable {ON_THIS_MACHINE} (pip install xformers)"]
        if not torch.cuda.is_available():  # planning a CUDA cell elsewhere (the estimate): nothing to probe
            return []
        problem = probe_kernel(kind, spec.head_dim, spec.precision or cell.dtype)
        return [f"{kind} attention is not available {ON_THIS_MACHINE}: {problem}"] if problem else []


ON_THIS_MACHINE = "on this machine"  # marks reasons about this machine, not the cell (the estimate ignores them)
HALF_ONLY = ("flash", "cudnn")


@functools.lru_cache(maxsize=None)
def probe_kernel(kind: str, head_dim: int, dtype: str) -> str:
    """Run the pinned kernel forward and backward once on small CUDA tensors of the cell's head size and
    dtype; '' when it works, else torch's first line of why (it checks compute capability, build flags
    and cuDNN version, which the availability flags alone do not)."""
    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(dtype, torch.float32)
    try:
        q, k, v = (torch.randn(1, 2, 128, head_dim, device="cuda", dtype=torch_dtype, requires_grad=True) for _ in range(3))
        attention(q, k, v, kind).sum().backward()
        torch.cuda.synchronize()
    except RuntimeError as exc:
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return ""


@register_method
class BF16(Method):
    """bfloat16 autocast for the whole step (mixed precision; weights and optimizer state stay fp32)."""

    name = "bf16"
    axis = "runtime"
    summary = "autocast the step to bfloat16"
    reference = "a harness knob; Micikevicius et al. 2018, mixed precision"

    def configure(self, spec: ModelSpec) -> ModelSpec:
        return dataclasses.replace(spec, precision="bf16")

    @classmethod
    def left_out_of_all(cls, device: str) -> str:
        if device == "cpu" and not cpu_bf16_native():
            return ("this CPU has no native bfloat16, so torch emulates it and a step takes 10-50x the fp32 one "
                    "(minutes per cell at 256 frames); such a time says nothing about bf16 on hardware that has it")
        return ""


@register_method
class Compile(Method):
    """torch.compile of the dual encoder's forward (video tower, text tower, loss); AOTAutograd compiles
    its backward too, the fused AdamW step stays eager. The first step pays for tracing and code
    generation: the record keeps it apart as `compile_s`, and it is never a timed step. Steps under a
    Python dispatch mode (the CPU live-tensor tracker, FlopCounterMode, the estimate's FakeTensorMode) run
    the eager model (step.compiled_or_eager), so those figures are the eager step's; the proxy trains
    eagerly too (same math, same accuracy)."""

    name = "compile"
    axis = "runtime"
    summary = "torch.compile the encoders' forward and backward (mode: default | reduce_overhead | max_autotune ...)"
    reference = "Ansel et al. 2024, PyTorch 2 (TorchDynamo, TorchInductor)"
    params = {"mode": "default", "backend": "inductor"}

    @classmethod
    def left_out_of_all(cls, device: str) -> str:
        return "code generation takes minutes per cell (each cell is a fresh process)"

    def check(self) -> None:
        backends = compile_backends()
        if self.p["backend"] not in backends:
            raise UserError(f"compile: backend={self.p['backend']!r} is unknown; accepted: {', '.join(backends)}")
        modes = compile_modes()
        if self.p["mode"] not in modes:
            raise UserError(f"compile: mode={self.p['mode']!r} is unknown; accepted: {', '.join(modes)}")
        if self.p["mode"] != "default" and self.p["backend"] != "inductor":
            raise UserError(f"compile: mode={self.p['mode']} is an inductor mode; accepted with backend={self.p['backend']}: default")

    def configure(self, spec: ModelSpec) -> ModelSpec:
        return spec.with_options(compile=self.p["mode"])  # tells the cell (compile_s) and the estimate's notes

    def apply(self, model) -> None:
        # Kept beside the eager model, not in place: steps under a dispatch mode must run eagerly
        # (step.compiled_or_eager); object.__setattr__ so it is no submodule (it wraps the model).
        mode = None if self.p["mode"] == "default" else torch_mode(self.p["mode"])
        object.__setattr__(model, COMPILED_CALL, torch.compile(model, mode=mode, backend=self.p["backend"]))

    def not_supported_reasons(self, cell: CellSpec, spec: ModelSpec) -> list[str]:
        if cell.device != "cuda" and uses_cuda_graphs(self.p["mode"]):
            return [f"mode={self.p['mode']} captures CUDA graphs, which need a CUDA device (cell device is {cell.device}); "
                    "on CPU use mode=default or max_autotune_no_cudagraphs"]
        return []


def compile_modes() -> tuple[str, ...]:
    """The inductor modes this torch knows (the list changes between releases), spelt with '_' for '-'
    so that a method label parses back (compile(mode=max_autotune))."""
    import torch._inductor

    return tuple(m.replace("-", "_") for m in torch._inductor.list_mode_options())


def torch_mode(mode: str) -> str:
    return mode.replace("_", "-")


def uses_cuda_graphs(mode: str) -> bool:
    import torch._inductor

    return bool(torch._inductor.list_mode_options().get(torch_mode(mode), {}).get("triton.cudagraphs"))


def compile_backends() -> tuple[str, ...]:
    """Registered torch.compile backends, debugging ones (eager, aot_eager) included."""
    import torch._dynamo

    return tuple(torch._dynamo.list_backends(exclude_tags=()))
