"""Step time of an option: measured by a run when it has the cell, else from the FLOP formula.

Three sources, best first, each named in the advice:
- measured: the run has this step (same model, batch, dtype, device) at this frame count;
- scaled: the run has this step at another frame count; its measured time times the FLOP ratio;
- formula: FLOPs per step / (MFU x the device's dense peak rate). The MFU is the median the run measured
  when a run is given, else ASSUMED_MFU; the peak is the run's GPU, else ASSUMED_DEVICE (the chip the
  CUDA estimate is corrected for, sm90).

The FLOP formula (step.analytic_step_flops, which the estimate records as flops_per_step) counts the
step matmul by matmul, activation checkpointing's recomputed forward included, so no factor is added here.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median
from typing import Optional

from vfbench.measure.flops import PEAK_FLOPS, device_peak_flops
from vfbench.report.load import Run
from vfbench.report.metrics import value

ASSUMED_DEVICE = "H100"  # the estimate's CUDA corrections model an sm90 chip
ASSUMED_MFU = 0.35  # a vit-b joint step at 256 frames measured 0.36 on an H100 (results/gpu-h100/joint-vitb)


@dataclass(frozen=True)
class TimeModel:
    """How step times are estimated where the run has no measurement; `text` says it in one sentence."""

    peak_flops: Optional[float]  # dense FLOP/s of the device; None: unknown (CPU), times are not estimated
    mfu: float
    text: str

    def step_ms(self, flops: float) -> Optional[float]:
        if not self.peak_flops:
            return None
        return flops / (self.mfu * self.peak_flops) * 1e3


def time_model(device: str, dtype: str, run: Optional[Run]) -> TimeModel:
    if device != "cuda":
        measured = "measured or scaled by FLOPs where the run has the step; elsewhere " if run is not None else ""
        return TimeModel(None, ASSUMED_MFU, f"{measured}no time estimate (CPU peak rates are not tabulated): "
                         "those options are ordered by FLOPs per step")
    name, mfu, source = ASSUMED_DEVICE, ASSUMED_MFU, "assumed"
    if run is not None and run.info.env.get("gpu_name"):
        name = str(run.info.env["gpu_name"])
        measured = [v for r in run.records if r.status == "ok" and (v := value(r, "mfu"))]
        if measured:
            mfu, source = median(measured), f"the median the run measured over {len(measured)} cells"
    peak = device_peak_flops(name, dtype)
    if peak is None:
        return TimeModel(None, mfu, f"no time estimate: no tabulated peak rate for {name} ({dtype}); "
                         f"known: {', '.join(PEAK_FLOPS)}")
    return TimeModel(peak, mfu, f"formula: FLOPs per step / ({mfu:.0%} MFU, {source}, x {name}'s dense {dtype} peak "
                     f"{peak / 1e12:.0f} TFLOP/s)")


@dataclass(frozen=True)
class StepTime:
    step_ms: Optional[float]
    source: str  # measured | scaled from N frames | formula | "" (unknown)


def step_time(labels: tuple[str, ...], frames: int, flops: Optional[float], setup: tuple, run: Optional[Run],
              model: TimeModel) -> StepTime:
    """The option's step time at `frames`; `labels` are its names (aliases of one step), `setup` is
    (model, batch, dtype, device) of the advice: a run's record counts only when it matches."""
    if run is not None:
        mine = [r for r in run.records if r.method in labels and r.status == "ok" and r.step_ms_median
                and (r.model, r.batch, r.dtype, r.device) == setup]
        exact = [r for r in mine if r.frames == frames]
        if exact:
            return StepTime(exact[0].step_ms_median, "measured")
        scalable = [r for r in mine if r.flops_per_step]
        if scalable and flops:
            near = min(scalable, key=lambda r: (abs(r.frames - frames), -r.frames))
            return StepTime(near.step_ms_median * flops / near.flops_per_step, f"scaled from {near.frames} frames")
    if flops is None:
        return StepTime(None, "")
    ms = model.step_ms(flops)
    return StepTime(ms, "formula" if ms is not None else "")
