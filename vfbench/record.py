"""The outcome of one cell. Flat JSON on disk; units in field names.

Keys that reports and other tools rely on: status, reason, method, model, frames, batch,
dtype, device, peak_allocated_mib (on CPU the tracked live-tensor peak), peak_reserved_mib (CUDA),
step_ms_median, step_ms_p10, step_ms_p90, clips_per_s, params_total, params_trainable, tokens,
flops_per_step. Metrics that later capabilities add (estimates, accuracy) go to `extra` and are
flattened into the same JSON object.

cpu_others_frac (0..1, every device): the share of the machine's CPU other processes used while the steps
were timed (measure/contention.py); above OTHERS_WARN_FRAC the step times may be inflated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Optional

from vfbench.spec import SCHEMA_VERSION, CellSpec

STATUSES = ("ok", "oom", "skipped", "timeout", "error")


@dataclass(frozen=True)
class Record:
    key: str
    status: str
    method: str
    model: str
    frames: int
    batch: int
    dtype: str
    device: str
    seed: int = 0
    reason: str = ""
    schema_version: int = SCHEMA_VERSION
    # memory
    peak_allocated_mib: Optional[float] = None
    peak_reserved_mib: Optional[float] = None
    nvml_peak_used_mib: Optional[float] = None
    alloc_retries: Optional[int] = None
    tracked_peak_mib: Optional[float] = None
    peak_phase: Optional[str] = None
    peak_rss_mib: Optional[float] = None
    mem_parameters_mib: Optional[float] = None
    mem_gradients_mib: Optional[float] = None
    mem_optimizer_mib: Optional[float] = None
    mem_inputs_mib: Optional[float] = None
    mem_activations_mib: Optional[float] = None
    mem_temporaries_mib: Optional[float] = None
    # time
    step_ms_median: Optional[float] = None
    step_ms_p10: Optional[float] = None
    step_ms_p90: Optional[float] = None
    step_ms_cv: Optional[float] = None
    step_repeats: Optional[int] = None
    cpu_others_frac: Optional[float] = None  # other processes' share of the CPU while timed (contention.py)
    clips_per_s: Optional[float] = None
    tokens_per_s: Optional[float] = None
    # size and work
    params_total: Optional[int] = None
    params_trainable: Optional[int] = None
    tokens: Optional[int] = None
    flops_per_step: Optional[int] = None
    flops_per_step_counted: Optional[int] = None
    flops_per_step_analytic: Optional[int] = None
    mfu: Optional[float] = None
    # bookkeeping
    loss: Optional[float] = None
    setup_s: Optional[float] = None  # process start (or cell start, in-process) to the first step
    cell_s: Optional[float] = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def for_cell(cls, cell: CellSpec, status: str, reason: str = "", **metrics) -> "Record":
        known = {f.name for f in fields(cls)}
        extra = {k: v for k, v in metrics.items() if k not in known}
        core = {k: v for k, v in metrics.items() if k in known}
        return cls(
            key=cell.key, status=status, reason=reason, method=cell.method, model=cell.model, frames=cell.frames,
            batch=cell.batch, dtype=cell.dtype, device=cell.device, seed=cell.seed, extra=extra, **core,
        )

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "Record":
        known = {f.name for f in fields(cls)}
        core = {k: v for k, v in data.items() if k in known and k != "extra"}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**core, extra=extra)

    def replace(self, **changes) -> "Record":
        return dataclasses.replace(self, **changes)
