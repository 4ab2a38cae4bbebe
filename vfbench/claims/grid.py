"""The cells the memory claims need, estimated with `vfbench estimate`'s engine, and a lookup into them.

A claim names (model role, method, frames); the grid crosses them with the attention kernels and the
per-device batches, and estimates every cell once (estimate/sweep.estimate_grid: the same traced
train_step, CUDA target, bf16, as `vfbench estimate`). The math kernel is the method composed with
`attn_kernel(kind=math)`.
"""

from __future__ import annotations

from dataclasses import dataclass

from vfbench.registry import compose
from vfbench.record import Record
from vfbench.spec import CellSpec

KERNELS = ("sdpa", "math")
BATCHES = (1, 2, 4, 8, 16, 32)


@dataclass(frozen=True)
class GridSettings:
    """What every claim cell shares: the models in each role, dtype and target device."""

    models: tuple  # (role, preset) pairs, e.g. (("base", "vit-b-paper"), ("large", "vit-l-paper"))
    kernels: tuple = KERNELS
    batches: tuple = BATCHES
    dtype: str = "bf16"
    device: str = "cuda"  # the device whose step is modelled (estimates run on any CPU)

    def model(self, role: str) -> str | None:
        return dict(self.models).get(role)


def method_label(method: str, kernel: str) -> str:
    """The canonical label of a method run with the given attention kernel."""
    return compose(method if kernel == "sdpa" else f"{method}+attn_kernel(kind={kernel})").label


def cell(g: GridSettings, role: str, method: str, frames: int, kernel: str, batch: int) -> CellSpec:
    return CellSpec(g.model(role), method_label(method, kernel), frames, batch, g.dtype, g.device, 0)


class Lookup:
    """Records by cell key; `peak_gib` / `params` at one (kernel, batch) setting. The records may come from
    estimates (what `vfbench claims` computes) or from measurements of the same cells (`vfbench run` records
    carry the same keys): the rules do not care which."""

    def __init__(self, g: GridSettings, records: list[Record], kernel: str = "sdpa", batch: int = 1):
        self.g, self.kernel, self.batch = g, kernel, batch
        self.by_key = {r.key: r for r in records}

    def at(self, kernel: str, batch: int) -> "Lookup":
        out = Lookup(self.g, [], kernel, batch)
        out.by_key = self.by_key
        return out

    def record(self, role: str, method: str, frames: int) -> Record:
        r = self.by_key.get(cell(self.g, role, method, frames, self.kernel, self.batch).key)
        if r is None or r.status != "ok":
            why = "not estimated" if r is None else f"{r.status}: {r.reason}"
            raise LookupError(f"{role} {method} {frames} frames ({self.kernel}, batch {self.batch}): {why}")
        return r

    def peak_gib(self, role: str, method: str, frames: int) -> float:
        """The measured peak when the record was measured (a `vfbench run` record), else the estimate."""
        r = self.record(role, method, frames)
        return (r.peak_allocated_mib if r.peak_allocated_mib is not None else r.extra["estimated_peak_mib"]) / 1024

    def params(self, role: str, method: str, frames: int = 16) -> int:
        return self.record(role, method, frames).params_total


def _estimate_group(cells: tuple) -> list[Record]:
    """Cells that differ only in frames and batch: one fake build (estimate/peak.FakeStep, the engine of
    `vfbench estimate`), one trace per cell; a cell that cannot run or fails is a record, as there."""
    from vfbench.estimate.peak import FakeStep, estimate_problems
    from vfbench.estimate.sweep import _error

    out, fake = [], None
    for c in cells:
        reasons = estimate_problems(c)
        if reasons:
            out.append(Record.for_cell(c, "skipped", "; ".join(reasons)))
            continue
        try:
            fake = fake or FakeStep(c)
            out.append(Record.for_cell(c, "ok", **fake.trace(c.frames, c.batch).metrics()))
        except Exception as exc:  # one failed trace is a record, never the end of the check
            out.append(Record.for_cell(c, "error", f"estimate failed: {_error(exc)}"))
    return out


def estimate_cells(cells: list[CellSpec], jobs: int = 1) -> list[Record]:
    """Every distinct cell once; cells sharing a composition share one build (in `jobs` processes)."""
    groups: dict[tuple, list[CellSpec]] = {}
    for c in {c.key: c for c in cells}.values():
        groups.setdefault((c.model, c.method, c.dtype, c.device, c.seed), []).append(c)
    from vfbench.estimate.sweep import map_jobs

    return [r for recs in map_jobs(_estimate_group, [tuple(g) for g in groups.values()], jobs) for r in recs]
