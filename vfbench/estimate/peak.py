"""Peak memory of a cell without running it: the very same `train_step`, traced under FakeTensorMode.

No real memory is allocated, so any preset (vit-g included) is estimated on a CPU-only machine. The
model, optimizer and inputs are fake tensors; the live-storage tracker of the CPU measurement
(measure/memory.py) watches one steady step, so on CPU the estimate and the measurement count the
same tensors (they agree to the byte on `small`). For a CUDA target the trace still runs on fake CPU
tensors, with the corrections of estimate/cuda.py (allocator blocks, CUDA's autocast fp32
policy, flash-attention backward workspace, cuBLAS workspaces), labelled in `estimate_kind` /
`estimate_notes`.

Cost: building the fake model once per composition, then one traced step per frame count (the trace
costs the same at any T: shapes only). `FakeStep` keeps the model so a frame search re-traces cheaply.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from vfbench.estimate import cuda as cu
from vfbench.estimate.result import CellEstimate, PreRun
from vfbench.measure.analytic import analytic_peak
from vfbench.measure.memory import MIB, MemoryBreakdown, track_peak
from vfbench.methods.runtime import ON_THIS_MACHINE
from vfbench.models import build_model, count_params
from vfbench.models.saved_bytes import STORES_SCORES
from vfbench.spec import CellSpec
from vfbench.step import Setup, analytic_step_flops, cell_problems, configured_spec, make_optimizer, synthetic_batch, train_step

KINDS = {
    "cpu": "fake-cpu",  # the CPU measurement's own ops and tracker
    "cuda": "fake-cpu+cuda-corrections",  # traced on fake CPU tensors, corrected for the CUDA step
}
_UNAVAILABLE_HERE = ON_THIS_MACHINE  # a CUDA target is estimated whatever kernels this machine has


@dataclass(frozen=True)
class Estimate:
    """The estimated peak of one cell's steady train step (MiB), with what it is made of."""

    estimated_peak_mib: float
    breakdown: MemoryBreakdown
    workspace_mib: float  # modelled allocations that are not tensors (cuBLAS workspaces)
    peak_phase: str
    analytic_peak_mib: float
    flops_per_step: int
    params_total: int
    params_trainable: int
    tokens: int
    estimate_kind: str
    estimate_notes: str
    estimate_s: float

    def metrics(self) -> dict:
        """Flat keys for a Record (`Record.for_cell(..., **metrics)`); est_* mirror run's mem_* keys."""
        est = {f"est_{k[4:]}": v for k, v in self.breakdown.to_dict().items()}
        return {
            "estimated_peak_mib": round(self.estimated_peak_mib, 3),
            **est,
            "est_workspace_mib": round(self.workspace_mib, 3),
            "est_peak_phase": self.peak_phase,
            "analytic_peak_mib": round(self.analytic_peak_mib, 3),
            "flops_per_step": self.flops_per_step,
            "params_total": self.params_total,
            "params_trainable": self.params_trainable,
            "tokens": self.tokens,
            "estimate_kind": self.estimate_kind,
            "estimate_notes": self.estimate_notes,
            "estimate_s": round(self.estimate_s, 3),
        }


def estimate_problems(cell: CellSpec) -> list[str]:
    """Why a cell cannot be estimated (empty when it can): the run's own reasons, except that a CUDA target
    does not need its attention kernel available here (xformers, flash, ... are modelled, see notes_for)."""
    comp, spec = configured_spec(cell)
    reasons = cell_problems(cell, comp, spec)
    if cell.device == "cuda":
        reasons = [r for r in reasons if _UNAVAILABLE_HERE not in r]
    return reasons


def notes_for(cell: CellSpec, spec) -> str:
    kernel = spec.attn_kernel
    dtype = spec.precision or cell.dtype
    compiled = "; torch.compile not modelled: the eager step is traced" if spec.option("compile") else ""
    if cell.device == "cpu":
        attn = "math kernel: S x S scores kept" if kernel == "math" else "sdpa: CPU flash kernel, no S x S matrix"
        return f"traced on fake CPU tensors with the CPU measurement's tracker; {attn}; {dtype}{compiled}"
    if kernel == "math":
        attn = "attention: math kernel, (B,h,S,S) scores kept (CUDA autocast: fp32 softmax + bf16 copy)"
    elif kernel in ("efficient", "cudnn", "xformers"):
        attn = f"attention: {kernel} modelled as the CPU flash kernel's saved tensors, no S x S matrix (its backward workspace not modelled)"
    else:
        flash = "flash (bf16; + dq_accum/softmax_d backward workspace)" if dtype == "bf16" else "memory-efficient (fp32)"
        attn = f"attention: {'flash' if kernel == 'flash' else 'sdpa as ' + flash}, no S x S matrix"
    return (
        f"traced on fake CPU tensors (a CPU build cannot fake CUDA kernels); corrections: 512-B allocator blocks, "
        f"CUDA autocast fp32 ops, {attn}, cuBLAS workspaces {cu.CUBLAS_HANDLES} x 32 MiB (sm90); {dtype}"
        f"{', activation checkpointing' if spec.checkpoint else ''}; not modelled: cuDNN workspaces, CUDA context, fragmentation"
        f"{compiled}"
    )


class FakeStep:
    """One composition (model, methods, batch, dtype, target device) built once under FakeTensorMode.

    `trace(frames)` runs one steady `train_step` on fake inputs of that many frames and returns its
    tracked peak. The model has no frame-dependent state, so one build serves every frame count.
    """

    def __init__(self, cell: CellSpec):
        t0 = time.perf_counter()
        self.cell = cell
        self.cuda = cell.device == "cuda"
        self.comp, spec = configured_spec(cell)
        self.notes = notes_for(cell, spec)
        # Kernels that store no S x S matrix are traced as sdpa (the CPU flash kernel saves what CUDA flash
        # and memory-efficient attention save); only flash, or sdpa picking it, adds flash's backward scratch.
        self.flash_scratch = self.cuda and spec.attn_kernel in ("sdpa", "flash")
        if spec.attn_kernel not in STORES_SCORES:
            spec = dataclasses.replace(spec, attn_kernel="sdpa")
        self.spec = spec
        self.mode = FakeTensorMode()
        with self.mode:
            torch.manual_seed(cell.seed)
            # build_setup's steps without `model.to(device)`: under FakeTensorMode Module._apply must swap
            # every parameter, which fails ("Cannot swap t1 because it has weakref associated with it").
            self.model = build_model(spec)
            self.comp.apply(self.model)
            self.model.train()
            self.optimizer = make_optimizer(self.model, "cpu")
            _create_optimizer_state(self.model, self.optimizer)
        self.counts = count_params(self.model)
        self.build_s = time.perf_counter() - t0

    def _policy(self):
        return cu.CudaAutocastPolicy() if self.cuda else contextlib.nullcontext()

    def setup(self, frames: int, batch: int | None = None) -> Setup:
        cell = dataclasses.replace(self.cell, frames=frames, batch=batch or self.cell.batch)
        video, ids = synthetic_batch(self.spec, frames, cell.batch, cell.seed, "cpu")
        return Setup(cell, self.spec, self.comp, self.model, self.optimizer, video, ids)

    def trace(self, frames: int, batch: int | None = None) -> Estimate:
        """The estimate at `frames` (and `batch`, default the cell's: the model and optimizer state do not
        depend on the batch either, so one build serves every batch too)."""
        t0 = time.perf_counter()
        tracker = cu.FakeStepTracker(cu.CUDA_BLOCK_BYTES if self.cuda else 1, cuda_flash=self.flash_scratch)
        with self.mode:
            setup = self.setup(frames, batch)
            breakdown, phase = _traced_peak(setup, tracker, self._policy())
            flops = analytic_step_flops(setup)
            tokens = self.model.video.last_tokens
        workspace = cu.CUBLAS_HANDLES * cu.CUBLAS_WORKSPACE_BYTES / MIB if self.cuda else 0.0
        peak = tracker.peak / MIB + workspace
        return Estimate(
            estimated_peak_mib=peak, breakdown=breakdown, workspace_mib=workspace, peak_phase=phase,
            analytic_peak_mib=analytic_peak(self.spec, self.model, setup.cell).total_mib + workspace,
            flops_per_step=flops, params_total=self.counts[0], params_trainable=self.counts[1], tokens=tokens,
            estimate_kind=KINDS[self.cell.device], estimate_notes=self.notes, estimate_s=time.perf_counter() - t0,
        )


def estimate_cell(cell: CellSpec) -> Estimate:
    """The estimate of one cell on its own device (cuda or cpu); build cost included in estimate_s."""
    step = FakeStep(cell)
    est = step.trace(cell.frames)
    return dataclasses.replace(est, estimate_s=est.estimate_s + step.build_s)


def free_memory_mib(device: str) -> float | None:
    """Free memory a cell can use: CUDA `mem_get_info` (free bytes on the device, after this process's
    context), CPU `MemAvailable` from /proc/meminfo. None where unknown."""
    try:
        if device == "cuda":
            return torch.cuda.mem_get_info()[0] / MIB
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 / MIB
    except Exception:  # no CUDA build or device, no /proc: unknown, never an error
        return None
    return None


def estimate_before_run(cell: CellSpec, skip_predicted_oom: bool = True) -> PreRun:
    """The estimate `run_cell` records next to the measurement (never raises: a failed estimate is a key)."""
    try:
        est = estimate_cell(cell)
    except Exception as exc:  # the measurement must not depend on the estimate working
        return PreRun(CellEstimate.failed(exc))
    keys = CellEstimate(est.estimate_kind, round(est.estimated_peak_mib, 3), round(est.analytic_peak_mib, 3),
                        round(est.estimate_s, 3))
    free = free_memory_mib(cell.device) if skip_predicted_oom else None
    if free is not None and est.estimated_peak_mib > free:
        return PreRun(keys, (
            f"predicted out of memory: estimated peak {est.estimated_peak_mib:.0f} MiB > {free:.0f} MiB free on "
            f"{cell.device} (--no-skip-predicted-oom runs it)"
        ))
    return PreRun(keys)


def _create_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """AdamW state exactly as the run's warm-up step leaves it (step, exp_avg, exp_avg_sq per trainable
    parameter, and gradients held until the next step's zero_grad), without tracing a whole step."""
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.zeros_like(p)
    optimizer.step()


def _traced_peak(setup: Setup, tracker: cu.FakeStepTracker, policy) -> tuple[MemoryBreakdown, str]:
    """measure.memory.track_peak with a given tracker: register the static state, trace one step,
    attribute what is live at the peak."""
    params = list(setup.model.parameters()) + list(setup.model.buffers())
    peak = track_peak(lambda phase: train_step(setup, phase), params, setup.optimizer, [setup.video, setup.ids],
                      tracker=tracker, context=policy)
    tracker.detach()
    return peak.breakdown, peak.peak_phase
