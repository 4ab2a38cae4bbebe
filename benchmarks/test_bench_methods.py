"""`pytest --benchmark`: one benchmark per registered method and frame count (see conftest.py)."""

from __future__ import annotations

import pytest
import torch

from benchmarks.conftest import BATCH, FRAMES, MODEL, ON_CUDA, ROUNDS
from vfbench.measure.memory import cuda_peak, track_step_memory
from vfbench.models import count_params
from vfbench.registry import compose, list_methods
from vfbench.spec import CellSpec
from vfbench.step import analytic_step_flops, build_setup, cell_problems, configured_spec, train_step

DEVICE = "cuda" if ON_CUDA else "cpu"
DTYPE = "bf16" if ON_CUDA else "fp32"


@pytest.mark.parametrize("frames", FRAMES, ids=lambda t: f"T{t}")
@pytest.mark.parametrize("method", list_methods())
def test_method_step(benchmark, memory_rows, method, frames):
    label = compose(method).label
    cell = CellSpec(MODEL, label, frames, BATCH, DTYPE, DEVICE)
    comp, spec = configured_spec(cell)
    reasons = cell_problems(cell, comp, spec)
    if reasons:
        memory_rows.append({"method": label, "frames": frames, "status": "skipped"})
        pytest.skip("; ".join(reasons))
    benchmark.group = f"{MODEL} T={frames}"
    try:
        setup = build_setup(cell, comp)
        train_step(setup)  # optimizer state exists from here on: steady-state steps

        def step():
            train_step(setup)
            if ON_CUDA:
                torch.cuda.synchronize()

        tracked = track_step_memory(setup)
        peak = cuda_peak(step, setup.device).peak_allocated_mib if ON_CUDA else tracked.peak_allocated_mib
    except torch.OutOfMemoryError as exc:
        memory_rows.append({"method": label, "frames": frames, "status": "oom"})
        pytest.skip(f"out of memory: {exc}")
    total, trainable = count_params(setup.model)
    info = {
        "method": label, "model": MODEL, "frames": frames, "batch": BATCH, "dtype": DTYPE, "device": DEVICE,
        "peak_allocated_mib": round(peak, 3), "tracked_peak_mib": round(tracked.peak_allocated_mib, 3),
        **tracked.breakdown.to_dict(), "params_total": total, "params_trainable": trainable,
        "tokens": setup.model.video.last_tokens, "flops_per_step": analytic_step_flops(setup),
    }
    benchmark.extra_info.update(info)
    benchmark.pedantic(step, rounds=ROUNDS, iterations=1, warmup_rounds=2)
    stats = getattr(benchmark, "stats", None)
    median_ms = stats.stats.median * 1e3 if stats is not None and getattr(stats, "stats", None) else None
    memory_rows.append({**info, "status": "ok", "step_ms_median": median_ms})
