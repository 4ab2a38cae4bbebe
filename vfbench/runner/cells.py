"""The cell function: build, warm up, measure memory, FLOPs and time; return a Record. The same
function runs in-process, in a local worker process, or on a cluster node."""

from __future__ import annotations

import errno
import json
import os
import time
import traceback

import torch

from vfbench.estimate.peak import estimate_before_run
from vfbench.estimate.result import CellEstimate
from vfbench.measure.flops import counted_flops, device_peak_flops, model_flops_utilization
from vfbench.measure.gpu_busy import busy_keys
from vfbench.measure.memory import cuda_peak, peak_rss_mib, track_step_memory
from vfbench.measure.timing import first_step_s, time_steps
from vfbench.models import count_params
from vfbench.faults import fault_for, inject
from vfbench.record import Record
from vfbench.spec import CellSpec
from vfbench.step import analytic_step_flops, build_setup, cell_problems, configured_spec, train_step
from vfbench.tasks.result import AccuracyOutcome


PROXY_BUDGET_ENV = "VFBENCH_PROXY_BUDGET"  # JSON of ProxyBudget fields that replace the defaults


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    # The CPU allocator raises a plain RuntimeError.
    return isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)


_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def is_write_failure(exc: BaseException) -> bool:
    """A full or read-only disk anywhere in the exception's chain: the machine's failure, not the cell's,
    so it must stop the sweep rather than become an `error` record (which a resume would never retry)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def error_tail(exc: BaseException, lines: int = 12) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).strip().splitlines()
    return "\n".join(text[-lines:])


def run_cell(cell: CellSpec, started: float | None = None) -> Record:
    """Measure one cell. Never raises for a cell's own failure: OOM and errors become records.

    `started` is the wall time (time.time()) the cell's process was launched, so setup_s includes the
    interpreter and import cost of a fresh process.
    """
    started = time.time() if started is None else started
    try:
        inject(fault_for(cell))
        comp, spec = configured_spec(cell)
        reasons = cell_problems(cell, comp, spec)
        if reasons:
            return Record.for_cell(cell, "skipped", "; ".join(reasons))
        # Estimate first (FakeTensorMode, nothing allocated); skip a cell predicted not to fit.
        pre = estimate_before_run(cell, cell.skip_predicted_oom) if cell.estimate else None
        if pre is not None and pre.skip_reason:
            return Record.for_cell(cell, "skipped", pre.skip_reason, **pre.estimate.to_dict())
        record = _measure(cell, comp, started, pre.estimate if pre else None)
        if cell.accuracy and record.status == "ok":
            acc = _accuracy(cell).to_dict()
            record = record.replace(extra={**record.extra, **acc}, cell_s=round(time.time() - started, 3))
        return record
    except Exception as exc:  # the cell's own failure is data, not a crash of the sweep
        if is_write_failure(exc):
            raise
        if is_oom(exc):
            return Record.for_cell(cell, "oom", f"out of memory: {str(exc).splitlines()[0][:300]}")
        return Record.for_cell(cell, "error", error_tail(exc), cell_s=round(time.time() - started, 3))


def _accuracy(cell: CellSpec) -> AccuracyOutcome:
    """Proxy accuracy next to memory and time. Its failure is recorded, never fatal to the
    measurement already made: acc_reason when the methods cannot train on the proxy, acc_error otherwise.
    A cell with a video-folder task trains and evaluates on that folder instead (tasks/real_eval.py)."""
    from vfbench.tasks.proxy import ProxyBudget, ProxyUnsupported, default_budget, measure_accuracy

    try:
        if cell.task:
            from vfbench.tasks.real_eval import budget_from_env, measure_video_accuracy

            return AccuracyOutcome(measure_video_accuracy(cell, budget_from_env()))
        budget = default_budget(cell.device)
        override = os.environ.get(PROXY_BUDGET_ENV)
        if override:  # smaller budgets for tests and quick looks; the record carries the budget used (acc_*)
            budget = ProxyBudget.from_dict({**budget.to_dict(), **json.loads(override)})
        return AccuracyOutcome(measure_accuracy(cell, budget))
    except ProxyUnsupported as exc:
        return AccuracyOutcome(reason=str(exc))
    except Exception as exc:
        if is_oom(exc):
            return AccuracyOutcome(reason=f"out of memory while training the proxy: {str(exc).splitlines()[0][:200]}")
        return AccuracyOutcome(error=error_tail(exc))


def _measure(cell: CellSpec, comp, started: float, estimate: CellEstimate | None) -> Record:
    setup = build_setup(cell, comp)
    device = setup.device
    on_cuda = device.type == "cuda"
    step = lambda: train_step(setup)  # noqa: E731
    estimate_s = (estimate.estimate_s if estimate else None) or 0.0
    setup_s = time.time() - started - estimate_s  # the estimate is reported on its own
    # Warm-up: `warmup_steps` untimed steps. The first creates the optimizer state (and, compiled, pays for
    # the compilation: compile_s, never a timed step). With 0 the memory below is that of the very first
    # step, before the optimizer state exists (lower than a steady step's), and timing starts right after.
    mode = setup.spec.option("compile")
    compiled = {"compile_mode": mode} if mode else {}
    for i in range(cell.measure.warmup_steps):
        if i > 0:
            step()
            continue
        first_s = first_step_s(step, device if on_cuda else None)
        if mode:
            compiled["compile_s"] = round(first_s, 3)
    # Memory of a steady step (once warmup_steps >= 1): the tracked live-tensor peak (with its breakdown) on every device,
    # plus the caching allocator's own peaks on CUDA in a separate, untracked step.
    tracked = track_step_memory(setup)
    metrics = {
        "tracked_peak_mib": round(tracked.peak_allocated_mib, 4),
        "peak_phase": tracked.peak_phase,
        **tracked.breakdown.to_dict(),
    }
    if on_cuda:
        cp = cuda_peak(step, device)
        metrics.update(
            peak_allocated_mib=round(cp.peak_allocated_mib, 3),
            peak_reserved_mib=round(cp.peak_reserved_mib, 3),
            alloc_retries=cp.alloc_retries,
            nvml_peak_used_mib=None if cp.nvml_peak_used_mib is None else round(cp.nvml_peak_used_mib, 1),
        )
    else:
        metrics["peak_allocated_mib"] = round(tracked.peak_allocated_mib, 4)
    m = cell.measure
    timing = time_steps(
        step, warmup=min(1, m.warmup_steps), min_repeats=m.min_repeats, min_seconds=m.min_seconds, max_repeats=m.max_repeats,
        max_seconds=m.max_seconds, cuda_device=device if on_cuda else None,
    )
    busy = busy_keys(step, device) if on_cuda else {}  # after timing: the profiler slows the host
    # FLOPs of one step, counted (FlopCounterMode) after the measured steps so the warm-up count is exact;
    # its loss is the record's (a dispatch mode only watches: the step computes the same).
    flops_counted, loss = counted_flops(step)
    tokens = setup.model.video.last_tokens
    flops_analytic = analytic_step_flops(setup)
    loss = float(loss)
    total, trainable = count_params(setup.model)
    seconds = timing.step_ms_median / 1e3
    mfu = None
    if on_cuda:
        peak = device_peak_flops(torch.cuda.get_device_name(device), setup.spec.precision or cell.dtype)
        util = model_flops_utilization(flops_analytic, seconds, peak)
        mfu = None if util is None else round(util, 4)
    return Record.for_cell(
        cell, "ok",
        **metrics,
        **timing.to_dict(),
        clips_per_s=round(cell.batch / seconds, 4),
        tokens_per_s=round(cell.batch * tokens / seconds, 1),
        params_total=total,
        params_trainable=trainable,
        tokens=tokens,
        flops_per_step=flops_analytic,
        flops_per_step_counted=flops_counted,
        flops_per_step_analytic=flops_analytic,
        mfu=mfu,
        **busy,
        **compiled,
        loss=round(loss, 5),
        peak_rss_mib=round(peak_rss_mib(), 1),
        setup_s=round(setup_s, 3),
        cell_s=round(time.time() - started, 3),
        **(estimate.to_dict() if estimate else {}),
    )
