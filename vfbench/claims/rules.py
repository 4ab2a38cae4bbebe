"""Verdicts: from where a claim holds over the settings tried to one word and the region it holds in.

- reproduced: it holds at every setting tried;
- holds only under <region>: it holds at some settings, and the region says which;
- contradicted: it holds at none;
- cannot check: nothing vfbench can compute decides it here.
"""

from __future__ import annotations

from dataclasses import dataclass

REPRODUCED, CONTRADICTED, CANNOT = "reproduced", "contradicted", "cannot check"
HOLDS_ONLY = "holds only under"
KERNEL_NAMES = {"sdpa": "flash-style sdpa", "math": "math attention"}


@dataclass(frozen=True)
class Setting:
    """Where a claim is evaluated: model preset, attention kernel (sdpa | math), per-device batch."""

    model: str
    kernel: str
    batch: int


@dataclass(frozen=True)
class Outcome:
    setting: Setting
    value: float  # the vfbench figure at this setting (a ratio, GiB, millions of parameters)
    holds: bool


def batch_region(held: list[int], tried: list[int]) -> str:
    """'every batch', 'no batch', 'batch >= 8', 'batch <= 4', 'batch 2-8' or a list, over the batches tried."""
    tried, held = sorted(tried), sorted(held)
    if held == tried:
        return "every batch" if len(tried) > 1 else f"batch {tried[0]}"
    if not held:
        return "no batch"
    lo, hi = tried.index(held[0]), tried.index(held[-1])
    if hi - lo + 1 == len(held):  # contiguous in the tried list
        if hi == len(tried) - 1:
            return f"batch >= {held[0]}"
        if lo == 0:
            return f"batch <= {held[-1]}"
        return f"batch {held[0]}-{held[-1]}"
    return "batch " + ", ".join(map(str, held))


def region(outcomes: list[Outcome]) -> str:
    """Where the claim holds, per model and kernel, e.g. 'batch >= 8 with flash-style sdpa; every batch with math attention'."""
    models = list(dict.fromkeys(o.setting.model for o in outcomes))
    parts = []
    for model in models:
        for kernel in dict.fromkeys(o.setting.kernel for o in outcomes if o.setting.model == model):
            mine = [o for o in outcomes if (o.setting.model, o.setting.kernel) == (model, kernel)]
            where = batch_region([o.setting.batch for o in mine if o.holds], [o.setting.batch for o in mine])
            parts.append(f"{where} with {KERNEL_NAMES.get(kernel, kernel)}" + (f" ({model})" if len(models) > 1 else ""))
    return "; ".join(parts)


def verdict(outcomes: list[Outcome]) -> tuple[str, str]:
    """(verdict, region where the claim holds) over the settings tried."""
    if not outcomes:
        return CANNOT, "no setting could be evaluated"
    held = sum(o.holds for o in outcomes)
    if held == len(outcomes):
        return REPRODUCED, "at every setting tried"
    if held == 0:
        return CONTRADICTED, "at no setting tried"
    return HOLDS_ONLY, region(outcomes)


def in_range(low: float, high: float):
    """A rule: the figure, rounded to one decimal, lies in [low, high] (the paper's '2-3x' reads 2.0 to 3.0)."""
    return lambda v: low <= round(v, 1) <= high


def above(threshold: float):
    return lambda v: v > threshold


def below(threshold: float):
    return lambda v: v < threshold


def at_most(threshold: float):
    return lambda v: v <= threshold
