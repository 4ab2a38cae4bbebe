"""A run as reports see it: its records plus what was run where, loaded from a path.

Reports and `compare` never read a store directly: they call `load_run(path)`, which asks each loader in
`LOADERS` in turn. A loader returns a `Run` when the path is its format and None otherwise, so another
format (a pytest-benchmark JSON file) is one more function appended to `LOADERS`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping, Optional

from vfbench.errors import UserError
from vfbench.record import Record
from vfbench.store import RUN, RunStore


def _frozen_map(data: Mapping | None) -> Mapping:
    return MappingProxyType(dict(data or {}))


@dataclass(frozen=True)
class RunInfo:
    """What was run, where and how (run.json), with the few facts reports print on top."""

    source: str  # the path the run was loaded from, as given
    command: Optional[str] = None  # the exact command line, when it was recorded
    started: Optional[str] = None
    finished: Optional[str] = None
    env: Mapping = field(default_factory=lambda: _frozen_map({}))  # measure/env.py's collect_env()
    sweep: Mapping = field(default_factory=lambda: _frozen_map({}))  # SweepSpec.to_dict()

    @classmethod
    def from_dict(cls, source: str, data: dict) -> "RunInfo":
        return cls(
            source=source, command=data.get("command"), started=data.get("started"), finished=data.get("finished"),
            env=_frozen_map(data.get("env")), sweep=_frozen_map(data.get("sweep")),
        )

    @property
    def device_name(self) -> str:
        """The chip the numbers belong to: the GPU name on CUDA, else the CPU model."""
        return str(self.env.get("gpu_name") or self.env.get("cpu") or "unknown device")


@dataclass(frozen=True)
class Run:
    """Records (one per cell: the latest when a cell was recorded twice) and the run's info."""

    records: tuple[Record, ...]
    info: RunInfo
    home: Path  # where a report of this run is written by default

    @property
    def name(self) -> str:
        return self.home.name

    @property
    def methods(self) -> tuple[str, ...]:
        """Methods in the order the sweep asked for them (an unfinished run shows its missing cells as
        'not run'), then any others in order of appearance."""
        asked = list(self.info.sweep.get("methods", ())) if self.records else []
        return tuple(dict.fromkeys([*asked, *(r.method for r in self.records)]))

    @property
    def frames(self) -> tuple[int, ...]:
        asked = set(self.info.sweep.get("frames", ())) if self.records else set()
        return tuple(sorted(asked | {r.frames for r in self.records}))

    def cell(self, method: str, frames: int) -> Optional[Record]:
        return self._cells.get((method, frames))

    @cached_property  # frozen: computed once, kept in the instance dict
    def _cells(self) -> dict:
        return {(r.method, r.frames): r for r in self.records}

    def describe(self, key: str) -> Optional[str]:
        """A fact of the run's setup (model, batch, dtype, device) from the sweep, else from the records."""
        value = self.info.sweep.get(key)
        if value is None:
            values = list(dict.fromkeys(str(getattr(r, key)) for r in self.records))
            value = ", ".join(values) if values else None
        return None if value is None else str(value)


def load_run(path: str | os.PathLike) -> Run:
    """The run at `path` (a folder made by `vfbench run`, or any format a loader in LOADERS knows)."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"no run at {p}: give a run folder (one holding {RUN}), e.g. results/<run-id>")
    for loader in LOADERS:
        run = loader(p)
        if run is not None:
            return run
    raise UserError(f"{p} is not a vfbench run (no {RUN} in it); give a folder made by 'vfbench run'")


def _store_run(p: Path) -> Optional[Run]:
    """A run folder: run.json + records.jsonl (vfbench/store.py)."""
    if not (p.is_dir() and (p / RUN).exists()):
        return None
    store = RunStore(p)
    latest = store.latest_by_key()  # a resumed cell may appear twice; the last record is the answer
    return Run(records=tuple(latest.values()), info=RunInfo.from_dict(str(p), store.run_info()), home=p)


def _pytest_benchmark_run(p: Path) -> Optional[Run]:
    """A pytest-benchmark JSON file written by `pytest --benchmark --benchmark-json FILE`.

    Each benchmark's extra_info holds the cell and its memory (benchmarks/test_bench_methods.py); time
    comes from pytest-benchmark's own statistics (median, and stddev/mean as the spread). Its report goes
    to a folder beside the file, `<file>-report/`.
    """
    if not (p.is_file() and p.suffix == ".json"):
        return None
    try:
        data = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not (isinstance(data, dict) and isinstance(data.get("benchmarks"), list) and "machine_info" in data):
        return None
    from vfbench.spec import CellSpec

    records = []
    for bench in data["benchmarks"]:
        info = dict(bench.get("extra_info") or {})
        if "method" not in info or "frames" not in info:
            continue  # a benchmark that is not one of vfbench's
        stats = bench.get("stats") or {}
        cell = CellSpec(info.pop("model"), info.pop("method"), int(info.pop("frames")), int(info.pop("batch")),
                        info.pop("dtype"), info.pop("device"))
        median_s, mean_s = stats.get("median"), stats.get("mean")
        timing = {}
        if median_s:
            timing = dict(step_ms_median=median_s * 1e3, step_ms_p10=stats.get("q1", median_s) * 1e3,
                          step_ms_p90=stats.get("q3", median_s) * 1e3, step_repeats=stats.get("rounds"),
                          step_ms_cv=(stats.get("stddev", 0.0) / mean_s) if mean_s else None,
                          clips_per_s=cell.batch / median_s)
        records.append(Record.for_cell(cell, "ok", **info, **timing, benchmark_name=bench.get("name")))
    machine = data.get("machine_info") or {}
    env = dict(machine.get("vfbench") or {"cpu": (machine.get("cpu") or {}).get("brand_raw"), "python": machine.get("python_version")})
    commit = (data.get("commit_info") or {}).get("id")
    if commit and not env.get("git_commit"):
        env["git_commit"] = commit
    info = RunInfo(source=str(p), command="pytest --benchmark (pytest-benchmark JSON; quartiles stand in for p10/p90)",
                   started=data.get("datetime"), env=_frozen_map(env))
    return Run(records=tuple(records), info=info, home=p.with_name(p.stem + "-report"))


# Tried in order; each returns a Run or None (not its format).
LOADERS: tuple[Callable[[Path], Optional[Run]], ...] = (_store_run, _pytest_benchmark_run)
