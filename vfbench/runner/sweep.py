"""A sweep: what a user asked for, expanded into cells and run into a store, resumable."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Callable

from vfbench.registry import expand_methods
from vfbench.runner.record import Record
from vfbench.runner.store import RunStore
from vfbench.spec import CellSpec, MeasureSettings, _Frozen


@dataclass(frozen=True)
class SweepSpec(_Frozen):
    model: str
    methods: tuple  # canonical composition labels, in the order asked
    frames: tuple
    batch: int
    dtype: str
    device: str  # resolved: cpu | cuda
    seed: int = 0
    timeout_s: float = 900.0
    skip_after_oom: bool = True
    executor: str = "local"
    measure: MeasureSettings = field(default_factory=MeasureSettings)

    def to_dict(self) -> dict:
        d = super().to_dict()
        d["measure"] = self.measure.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "SweepSpec":
        data = dict(data)
        data["measure"] = MeasureSettings.from_dict(data.get("measure", {}))
        return super().from_dict(data)

    def cells(self) -> list[CellSpec]:
        """Method-major, frames ascending, so an OOM at T can skip the larger T of the same method."""
        return [
            CellSpec(self.model, m, t, self.batch, self.dtype, self.device, self.seed, self.measure)
            for m in self.methods
            for t in self.frames
        ]


def method_labels(text: str) -> tuple[str, ...]:
    return tuple(c.label for c in expand_methods(text))


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during a sweep; everything finished is already stored."""


@dataclass
class Progress:
    """Callbacks the sweep reports to (the CLI draws a progress bar with them)."""

    started: Callable[[int, int], None] = lambda total, done: None
    cell_started: Callable[[CellSpec], None] = lambda cell: None
    cell_finished: Callable[[CellSpec, Record, bool], None] = lambda cell, record, measured: None


def run_sweep(sweep: SweepSpec, store: RunStore, executor, progress: Progress | None = None) -> list[Record]:
    """Run every cell the store does not hold yet; returns all records of the sweep, in cell order.

    Once a method is out of memory at T frames its larger T are recorded as skipped (unless
    skip_after_oom is off): never a silent change of batch size.
    """
    progress = progress or Progress()
    existing = store.latest_by_key()
    cells = sweep.cells()
    oom_at: dict[str, int] = {}
    for r in existing.values():
        if r.status == "oom":
            oom_at[r.method] = min(oom_at.get(r.method, r.frames), r.frames)
    todo = [c for c in cells if c.key not in existing]
    progress.started(len(cells), len(cells) - len(todo))

    def on_term(signum, frame):
        raise Interrupted(signal.Signals(signum).name)

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        for cell in todo:
            progress.cell_started(cell)
            first_oom = oom_at.get(cell.method)
            if sweep.skip_after_oom and first_oom is not None and cell.frames > first_oom:
                record = Record.for_cell(
                    cell, "skipped", f"{cell.method} ran out of memory at {first_oom} frames (--no-skip-after-oom runs it)"
                )
                measured = False
            else:
                t0 = time.time()
                try:
                    record = executor.run(cell)
                except KeyboardInterrupt:
                    raise Interrupted("SIGINT") from None
                measured = True
                if record.cell_s is None:
                    record = record.replace(cell_s=round(time.time() - t0, 3))
            store.append(record)
            existing[cell.key] = record
            if record.status == "oom":
                oom_at[cell.method] = min(oom_at.get(cell.method, cell.frames), cell.frames)
            progress.cell_finished(cell, record, measured)
    except KeyboardInterrupt:
        raise Interrupted("SIGINT") from None
    finally:
        executor.cancel()
        signal.signal(signal.SIGTERM, old)
    return [existing[c.key] for c in cells if c.key in existing]
