"""A sweep: what a user asked for, expanded into cells and run into a store, resumable."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Callable

from vfbench.errors import UserError
from vfbench.registry import expand_methods
from vfbench.runner.record import Record
from vfbench.runner.slurm import SlurmSettings
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
    estimate: bool = True  # estimate each cell's peak before running it
    skip_predicted_oom: bool = True  # skip cells whose estimate exceeds the device's free memory
    # Proxy accuracy: "on" = every cell on CUDA, the documented subset on CPU
    # (tasks/proxy.py cpu_default_subset); "all" = every cell; "off". The CLI's default is "on".
    accuracy: str = "off"
    slurm: SlurmSettings = field(default_factory=SlurmSettings)  # used by executor 'slurm' only

    def cells(self) -> list[CellSpec]:
        """Method-major, frames ascending, so an OOM at T can skip the larger T of the same method."""
        trained = self.accuracy_cells()
        return [
            CellSpec(
                self.model, m, t, self.batch, self.dtype, self.device, self.seed, self.measure,
                estimate=self.estimate, skip_predicted_oom=self.skip_predicted_oom, accuracy=(m, t) in trained,
            )
            for m in self.methods
            for t in self.frames
        ]

    def accuracy_cells(self) -> set[tuple[str, int]]:
        """(method, frames) cells whose record also gets proxy accuracy."""
        if self.accuracy == "off":
            return set()
        if self.accuracy == "all" or self.device == "cuda":
            return {(m, t) for m in self.methods for t in self.frames}
        from vfbench.tasks.proxy import cpu_default_subset

        return set(cpu_default_subset(list(self.methods), list(self.frames)))

    @classmethod
    def from_stored(cls, data, where) -> "SweepSpec":
        """The sweep of a run.json being resumed; a damaged one is a UserError, never a traceback."""
        try:
            if not isinstance(data, dict):
                raise TypeError(f"sweep is {type(data).__name__}, not an object")
            sweep = cls.from_dict(data)
            if not (isinstance(sweep.methods, tuple) and isinstance(sweep.frames, tuple)
                    and all(isinstance(t, int) and not isinstance(t, bool) and t > 0 for t in sweep.frames)):
                raise TypeError("methods and frames must be lists (frames of positive whole numbers)")
            if not (isinstance(sweep.measure, MeasureSettings) and isinstance(sweep.slurm, SlurmSettings)):
                raise TypeError("measure and slurm must be objects")
        except (TypeError, ValueError, KeyError) as exc:
            raise UserError(f"{where}: the stored sweep is damaged ({exc}); start a new run instead") from None
        return sweep


def method_labels(text: str) -> tuple[str, ...]:
    return tuple(c.label for c in expand_methods(text))


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM during a sweep; everything finished is already stored. A BaseException, like
    KeyboardInterrupt, so a cell's `except Exception` (the inline executor runs cells in this process)
    cannot take it for the cell's own failure and carry on."""


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

    def oom_skip(cell: CellSpec) -> Record | None:
        first_oom = oom_at.get(cell.method)
        if sweep.skip_after_oom and first_oom is not None and cell.frames > first_oom:
            return Record.for_cell(
                cell, "skipped", f"{cell.method} ran out of memory at {first_oom} frames (--no-skip-after-oom runs it)"
            )
        return None

    def finish(cell: CellSpec, record: Record, measured: bool) -> None:
        store.append(record)
        existing[cell.key] = record
        if record.status == "oom":
            oom_at[cell.method] = min(oom_at.get(cell.method, cell.frames), cell.frames)
        progress.cell_finished(cell, record, measured)

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        if hasattr(executor, "run_batch"):
            # Executors that run cells in parallel (a cluster) get one wave per frame count, smallest
            # first, so an OOM at T still skips the larger T of the same method.
            for frames in sweep.frames:
                wave = []
                for cell in (c for c in todo if c.frames == frames):
                    skipped = oom_skip(cell)
                    if skipped is not None:
                        finish(cell, skipped, False)
                    else:
                        wave.append(cell)
                if wave:
                    store.check_writable()
                    executor.run_batch(wave, lambda cell, record: finish(cell, record, True))
        else:
            for cell in todo:
                progress.cell_started(cell)
                record = oom_skip(cell)
                measured = record is None
                if record is None:
                    store.check_writable()  # a read-only or full store stops here, before a cell is measured
                    t0 = time.time()
                    record = executor.run(cell)
                    if record.cell_s is None:
                        record = record.replace(cell_s=round(time.time() - t0, 3))
                finish(cell, record, measured)
    except KeyboardInterrupt:
        raise Interrupted("SIGINT") from None
    finally:
        executor.cancel()
        signal.signal(signal.SIGTERM, old)
    return [existing[c.key] for c in cells if c.key in existing]
