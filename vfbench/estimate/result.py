"""What `vfbench run` records before measuring a cell, typed: the cell's estimate (flat keys in the record,
`to_dict`, exactly as they have always been written) and, when the estimated peak exceeds the device's
free memory, why the cell is skipped instead."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class CellEstimate:
    """The estimate's record keys. A failed estimate has only estimate_kind="failed" and estimate_error."""

    estimate_kind: str
    estimated_peak_mib: Optional[float] = None
    analytic_peak_mib: Optional[float] = None
    estimate_s: Optional[float] = None
    estimate_error: str = ""

    @classmethod
    def failed(cls, exc: BaseException) -> "CellEstimate":
        return cls("failed", estimate_error=f"{type(exc).__name__}: {str(exc)[:200]}")

    def to_dict(self) -> dict:
        if self.estimate_kind == "failed":
            return {"estimate_kind": self.estimate_kind, "estimate_error": self.estimate_error}
        return {"estimated_peak_mib": self.estimated_peak_mib, "analytic_peak_mib": self.analytic_peak_mib,
                "estimate_kind": self.estimate_kind, "estimate_s": self.estimate_s}

    @classmethod
    def from_dict(cls, data: dict) -> "CellEstimate":
        return cls(data["estimate_kind"], data.get("estimated_peak_mib"), data.get("analytic_peak_mib"),
                   data.get("estimate_s"), data.get("estimate_error", ""))


@dataclass(frozen=True)
class PreRun:
    estimate: CellEstimate
    skip_reason: str = ""  # non-empty: the cell is predicted not to fit and is recorded as skipped
