"""The one measured thing: a contrastive training step of the dual encoder on a batch of clips.

Video forward, text forward, symmetric InfoNCE, backward, AdamW step. The same function runs on
CUDA (measured), on CPU (measured) and under FakeTensorMode (estimated), so the numbers mean the same.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

from vfbench.errors import UserError
from vfbench.models import DualEncoder, build_model, get_preset
from vfbench.models.dual import COMPILED_CALL
from vfbench.models.step_flops import step_flops
from vfbench.models.tower import frames_problems
from vfbench.registry import Composition, compose
from vfbench.spec import CellSpec, ModelSpec

Phase = Callable[[str], None]

AUTOCAST = {"fp32": None, "bf16": torch.bfloat16}


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is visible; accepted here: auto, cpu")
    if name not in ("cpu", "cuda"):
        raise UserError(f"unknown device {name!r}; accepted: auto, cpu, cuda")
    return name


@dataclass
class Setup:
    """Everything a train step needs (mutable: it holds the model and optimizer)."""

    cell: CellSpec
    spec: ModelSpec  # after the methods configured it
    composition: Composition
    model: DualEncoder
    optimizer: torch.optim.Optimizer
    video: torch.Tensor  # (B, C, T, H, W)
    ids: torch.Tensor  # (B, L)

    @property
    def device(self) -> torch.device:
        return self.video.device

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return AUTOCAST[self.spec.precision or self.cell.dtype]


def configured_spec(cell: CellSpec, composition: Composition | None = None) -> tuple[Composition, ModelSpec]:
    comp = composition or compose(cell.method)
    return comp, comp.configure(get_preset(cell.model))


def cell_problems(cell: CellSpec, comp: Composition, spec: ModelSpec) -> list[str]:
    """Why a cell cannot run (empty when it can): shape constraints, then what the methods declare."""
    reasons = []
    if cell.dtype not in AUTOCAST:
        reasons.append(f"dtype {cell.dtype!r} is not supported; accepted: {', '.join(AUTOCAST)}")
    reasons += frames_problems(spec, cell.frames)
    if cell.device == "cpu" and (spec.precision or cell.dtype) == "fp16":
        reasons.append("fp16 autocast is CUDA-only")
    return reasons + comp.not_supported_reasons(cell, spec)


def synthetic_batch(spec: ModelSpec, frames: int, batch: int, seed: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded random clips (B, C, T, H, W) and captions (B, L): step cost does not depend on content."""
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(batch, spec.channels, frames, spec.image_size, spec.image_size, generator=g)
    ids = torch.randint(0, spec.vocab_size, (batch, spec.text_len), generator=g)
    return video.to(device), ids.to(device)


def make_optimizer(model: torch.nn.Module, device: str) -> torch.optim.Optimizer:
    """AdamW over trainable parameters only: frozen ones get no gradient and no optimizer state.

    The fused kernel updates in place without foreach temporaries, so the optimizer adds no transient peak.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        return torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05, foreach=False)


def build_setup(cell: CellSpec, composition: Composition | None = None) -> Setup:
    comp, spec = configured_spec(cell, composition)
    torch.manual_seed(cell.seed)
    model = build_model(spec)
    comp.apply(model)
    model.to(cell.device).train()
    video, ids = synthetic_batch(spec, cell.frames, cell.batch, cell.seed, cell.device)
    return Setup(cell, spec, comp, model, make_optimizer(model, cell.device), video, ids)


def _noop(_: str) -> None:
    pass


def autocast(device_type: str, dtype: torch.dtype | None):
    """torch.autocast to `dtype` on the device, or no context where dtype is None (plain fp32)."""
    return torch.autocast(device_type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def compiled_or_eager(model: torch.nn.Module):
    """The compiled model where the compile method made one, else the model. Under a Python dispatch mode
    (the CPU live-tensor tracker, FlopCounterMode, the estimate's FakeTensorMode) the eager model: dynamo
    skips frames there and marks their code as never to be compiled again in this process."""
    compiled = getattr(model, COMPILED_CALL, None)
    if compiled is None or _get_current_dispatch_mode_stack():
        return model
    return compiled


def train_step(s: Setup, phase: Phase = _noop) -> torch.Tensor:
    """One training step; returns the loss (not synchronised). `phase` is told 'forward', 'backward',
    'optimizer' and 'idle' as the step moves on (the memory tracker attributes tensors with it)."""
    phase("forward")
    s.optimizer.zero_grad(set_to_none=True)
    with autocast(s.device.type, s.autocast_dtype):
        loss = compiled_or_eager(s.model)(s.video, s.ids)
    phase("backward")
    loss.backward()
    phase("optimizer")
    s.optimizer.step()
    phase("idle")
    return loss.detach()


def analytic_step_flops(s: Setup) -> int:
    """FLOPs of one step by formula (arXiv:2312.07395 §4, refined per matmul in models/step_flops.py): forward,
    the input- and weight-gradient matmuls autograd actually runs, checkpointing's recomputed forward."""
    return model_step_flops(s.model, s.cell.frames, s.cell.batch, s.spec.text_len)


def model_step_flops(model, frames: int, batch: int, text_len: int, layout=None) -> int:
    """`analytic_step_flops` of a built model: at `layout` (a TokenLayout), else the tokens its last forward
    kept, else every token."""
    video = model.video
    layout = layout or video.last_layout or video.patch.layout(frames)
    grid = video.flops_grid(frames, layout.tokens)
    return step_flops(model, frames, batch, text_len, layout.tokens, grid).total
