"""The metrics reports show and `compare` gates on: name, meaning, which direction is better, how to print.

Record keys carry their units (`peak_allocated_mib`, `step_ms_median`); accuracy results arrive as
extra keys `acc_r<k>_<gallery>` (R@k: `acc_r1_random`, `acc_r1_temporal`) and are found by that pattern.
`acc_chance_*` keys are the chance level of a gallery, a reference line rather than a result, and the
other acc_* keys say how the proxy was trained (`acc_steps`, `acc_lr`, `acc_train_s`): both stay in the
records and are never plotted or compared as accuracy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional

from vfbench.report.terminal import SHORT, format_mib, format_ms
from vfbench.record import Record

ACC_PREFIX = "acc_"
CHANCE_PREFIX = "acc_chance_"
ACC_RESULT = re.compile(r"^acc_r\d+_")  # recall@k on a gallery: the accuracy results


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    better: str  # "lower" | "higher"
    kind: str  # memory | time | rate | accuracy | count | flops: decides the printed unit

    def format(self, value: Optional[float]) -> str:
        if value is None:
            return "-"
        if self.kind == "memory":
            return format_mib(value)
        if self.kind == "time":
            return format_ms(value)
        if self.kind == "rate":
            return f"{value:.3g}/s" if value < 1e3 else f"{value / 1e3:.3g}k/s"
        if self.kind == "accuracy":
            return f"{value:.3f}"
        if self.kind == "flops":
            return _si(value, "FLOP")
        return _si(value, "")

    @property
    def is_accuracy(self) -> bool:
        return self.kind == "accuracy"


def _si(value: float, unit: str) -> str:
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}".rstrip()
    return f"{value:.4g} {unit}".rstrip()


# In the order reports show them. Memory first: it is the question vfbench answers first.
KNOWN = (
    Metric("peak_allocated_mib", "Peak memory (allocated)", "lower", "memory"),
    Metric("peak_reserved_mib", "Peak memory (reserved by the CUDA allocator)", "lower", "memory"),
    Metric("estimated_peak_mib", "Estimated peak memory (FakeTensor trace)", "lower", "memory"),
    Metric("step_ms_median", "Median train-step time", "lower", "time"),
    Metric("clips_per_s", "Throughput (clips/s)", "higher", "rate"),
    Metric("tokens_per_s", "Encoder tokens/s", "higher", "rate"),
    Metric("tokens", "Encoder tokens per clip", "lower", "count"),
    Metric("params_trainable", "Trainable parameters", "lower", "count"),
    Metric("flops_per_step", "FLOPs per step (formula)", "lower", "flops"),
)
# What `compare` checks by default: the outcome metrics (sizes and FLOPs change only with the config).
COMPARED_KINDS = ("memory", "time", "rate", "accuracy")
# Metrics whose noise is the step time's: gated by the runs' own p10-p90 spread in `compare`.
TIMED = ("step_ms_median", "clips_per_s", "tokens_per_s")


def value(record: Record, key: str) -> Optional[float]:
    """A numeric metric of a record (core field or extra key); None when absent or not a number."""
    v = getattr(record, key, None) if key != "extra" else None
    if v is None:
        v = record.extra.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def accuracy_metric(key: str) -> Metric:
    name = key[len(ACC_PREFIX):].replace("_", " ")
    return Metric(key, f"Accuracy ({name})", "higher", "accuracy")


def accuracy_keys(records: Iterable[Record]) -> tuple[str, ...]:
    """acc_r<k>_* keys holding numbers in any record (the results; settings and chance levels excluded)."""
    keys = {k for r in records for k, v in r.extra.items() if ACC_RESULT.match(k) and isinstance(v, (int, float))}
    return tuple(sorted(keys))


def metrics_in(records: Iterable[Record], kinds: Iterable[str] | None = None) -> tuple[Metric, ...]:
    """The known metrics with at least one value in `records`, then accuracy metrics; optionally by kind."""
    records = list(records)
    found = [m for m in KNOWN if any(value(r, m.key) is not None for r in records)]
    found += [accuracy_metric(k) for k in accuracy_keys(records)]
    if kinds is not None:
        found = [m for m in found if m.kind in tuple(kinds)]
    return tuple(found)


def metric_named(key: str) -> Metric:
    for m in KNOWN:
        if m.key == key:
            return m
    if key.startswith(ACC_PREFIX):
        return accuracy_metric(key)
    return Metric(key, key, "lower", "count")


def status_text(record: Optional[Record]) -> str:
    """What a cell shows instead of a number when it did not produce one."""
    if record is None:
        return "not run"
    return SHORT.get(record.status, record.status)


def budget_peak_key(records: Iterable[Record]) -> str:
    """The measured peak that decides whether a step fits: CUDA's reserved bytes (what the allocator holds,
    so what runs out first) when recorded, else the allocated / tracked peak (CPU)."""
    return "peak_reserved_mib" if any(r.peak_reserved_mib is not None for r in records) else "peak_allocated_mib"
