"""FLOPs per step counted by PyTorch's FlopCounterMode, and the device peak rate for MFU.

FlopCounterMode does not count the CPU SDPA flash kernel (pytorch#195460), so the harness records the
analytic count (step.analytic_step_flops) next to the counted one and uses the analytic one for MFU.
"""

from __future__ import annotations

from typing import Callable

from torch.utils.flop_counter import FlopCounterMode

# Dense peak rates in FLOP/s from the vendors' data sheets (no sparsity). fp32 means TF32 tensor cores
# are not assumed: PyTorch leaves TF32 matmuls off by default.
PEAK_FLOPS = {
    "H100": {"bf16": 989e12, "fp32": 67e12},  # H100 SXM
    "H200": {"bf16": 989e12, "fp32": 67e12},
    "A100": {"bf16": 312e12, "fp32": 19.5e12},
    "L40S": {"bf16": 362e12, "fp32": 91.6e12},
    "A10": {"bf16": 125e12, "fp32": 31.2e12},
}


def counted_flops(step: Callable[[], object]) -> tuple[int, object]:
    """The FLOPs one call of `step` performs (FlopCounterMode) and what that call returned."""
    with FlopCounterMode(display=False) as counter:
        out = step()
    return int(counter.get_total_flops()), out


def device_peak_flops(device_name: str, dtype: str) -> float | None:
    for key, rates in PEAK_FLOPS.items():
        if key in device_name.upper():
            return rates.get(dtype)
    return None


def model_flops_utilization(flops_per_step: float, step_s: float, peak_flops: float | None) -> float | None:
    """MFU: the share of the device's dense peak rate one step reaches, flops / (seconds x peak).
    None where the peak rate is unknown (not tabulated) or the step took no measurable time."""
    if not peak_flops or step_s <= 0:
        return None
    return flops_per_step / (step_s * peak_flops)
