"""Estimate a grid of cells (methods x frames) and answer budgets, the engine of `vfbench estimate`.

Cells whose configured model and step are identical share one fake build and one trace per frame
count (e.g. joint, shortvivit and attn_kernel(kind=sdpa); bf16 when the cell is already bf16): the
trace key is the method-configured spec (precision resolved) plus the methods that act on the built
model. Each distinct composition is one job: build once, trace the listed frames, then search each
budget; jobs run in worker processes when asked (`jobs` > 1), since a trace is pure Python dispatch.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from vfbench.estimate.budget import Fit, largest_fitting
from vfbench.estimate.peak import Estimate, FakeStep, estimate_problems
from vfbench.models.tower import frame_step as tower_frame_step
from vfbench.registry import Method
from vfbench.record import Record
from vfbench.spec import CellSpec
from vfbench.step import configured_spec


@dataclass(frozen=True)
class Budget:
    nbytes: int
    text: str  # as the user wrote it, e.g. 16GiB
    reading: str  # parse_size's reading, e.g. '16 GiB (binary, 2^30-based)'

    @property
    def mib(self) -> float:
        return self.nbytes / 2**20


@dataclass(frozen=True)
class BudgetAnswer:
    method: str
    budget: Budget
    fit: Fit | None
    frame_step: int
    max_frames: int
    reason: str = ""  # why there is no answer (the method cannot run, or the trace failed)

    def to_dict(self, cell: CellSpec) -> dict:
        f = self.fit
        return {
            "record": "budget", "method": self.method, "model": cell.model, "batch": cell.batch, "dtype": cell.dtype,
            "device": cell.device, "budget": self.budget.text, "budget_bytes": self.budget.nbytes,
            "budget_reading": self.budget.reading, "largest_frames": f.largest_frames if f else None,
            "estimated_peak_mib": None if not f or f.peak_mib is None else round(f.peak_mib, 3),
            "next_frames": f.next_frames if f else None,
            "next_estimated_peak_mib": None if not f or f.next_peak_mib is None else round(f.next_peak_mib, 3),
            "capped": f.capped if f else None, "max_frames": self.max_frames, "frame_step": self.frame_step,
            "probes": f.probes if f else 0, "reason": self.reason,
        }


@dataclass(frozen=True)
class Job:
    cells: tuple  # CellSpec per (method label, frames) sharing one trace, frames ascending
    budgets: tuple  # Budget
    max_frames: int


@dataclass(frozen=True)
class JobResult:
    records: tuple  # Record per cell of the job
    answers: tuple  # BudgetAnswer per (method, budget)
    traces: int
    probes: int
    seconds: float


def _error(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:]
    where = f" ({last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}{where}"


def trace_key(cell: CellSpec) -> tuple:
    """Cells with equal keys run the same step: same configured spec, same model-changing methods."""
    comp, spec = configured_spec(cell)
    spec = dataclasses.replace(spec, precision=spec.precision or cell.dtype)
    applied = tuple(sorted(m.label for m in comp.methods if type(m).apply is not Method.apply))
    return spec, applied, cell.batch, cell.seed, cell.device


def frame_step(cell: CellSpec) -> int:
    """Frame counts must be multiples of this (the configured encoder says: models/tower.py)."""
    return tower_frame_step(configured_spec(cell)[1])


def plan(cells: list[CellSpec], budgets: tuple, max_frames: int) -> list[Job]:
    groups: dict[tuple, list[CellSpec]] = {}
    for c in cells:
        groups.setdefault(trace_key(c), []).append(c)
    return [Job(tuple(g), budgets, max_frames) for g in groups.values()]


def run_job(job: Job) -> JobResult:
    """Build once, trace every distinct frame count, answer each budget for each method of the job."""
    t0 = time.perf_counter()
    records, peaks, fake, traces, probes = [], {}, None, 0, 0
    by_frames: dict[int, Estimate | str] = {}
    for cell in job.cells:
        reasons = estimate_problems(cell)
        if reasons:
            records.append(Record.for_cell(cell, "skipped", "; ".join(reasons)))
            continue
        try:
            if fake is None:
                fake = FakeStep(cell)
            if cell.frames not in by_frames:
                by_frames[cell.frames] = fake.trace(cell.frames)
                traces += 1
            est = by_frames[cell.frames]
        except Exception as exc:  # a trace that fails is a record, never a crash of the whole estimate
            by_frames[cell.frames] = est = f"estimate failed: {_error(exc)}"
        if isinstance(est, str):
            records.append(Record.for_cell(cell, "error", est))
        else:
            peaks[cell.frames] = est.estimated_peak_mib
            records.append(Record.for_cell(cell, "ok", **est.metrics()))
    answers = []
    methods = list(dict.fromkeys(c.method for c in job.cells))
    first = job.cells[0]
    for budget in job.budgets:
        fit, reason = None, ""
        fs = frame_step(first)
        problems = estimate_problems(dataclasses.replace(first, frames=fs))
        if problems:
            reason = "; ".join(problems)
        else:
            try:
                fake = fake or FakeStep(first)

                def traced(t: int) -> float:  # shared by the budgets: a frame count is traced once
                    if t not in peaks:
                        peaks[t] = fake.trace(t).estimated_peak_mib  # noqa: B023 (called in this iteration only)
                    return peaks[t]

                fit = largest_fitting(traced, budget.mib, fs, job.max_frames, dict(peaks))
                probes += fit.probes
            except Exception as exc:
                reason = f"search failed: {_error(exc)}"
        answers += [BudgetAnswer(m, budget, fit, fs, job.max_frames, reason) for m in methods]
    return JobResult(tuple(records), tuple(answers), traces, probes, time.perf_counter() - t0)


def map_jobs(fn, work: list, jobs: int) -> list:
    """fn over work, in order: here, or in up to `jobs` spawned processes (no fork after torch's thread
    pools exist). A trace is pure Python dispatch, so processes are what make it parallel."""
    if jobs <= 1 or len(work) < 2:
        return [fn(w) for w in work]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(work)), mp_context=ctx) as pool:
        return list(pool.map(fn, work))


def estimate_grid(cells: list[CellSpec], budgets: tuple = (), max_frames: int = 16384, jobs: int = 1) -> list[JobResult]:
    """Estimate every cell (and answer every budget per method); results in job order. jobs > 1 runs the
    jobs in that many spawned processes (each pays ~2 s of imports, so small grids run here)."""
    work = plan(cells, budgets, max_frames)
    small = len(cells) < 10 and not budgets
    return map_jobs(run_job, work, 1 if small else jobs)
