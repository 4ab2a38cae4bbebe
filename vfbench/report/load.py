"""A run as reports see it: its records plus what was run where, loaded from a path.

Reports and `compare` never read a store directly: they call `load_run(path)`, which asks each loader in
`LOADERS` in turn. A loader returns a `Run` when the path is its format and None otherwise, so another
format (a pytest-benchmark JSON file, issue #6) is one more function appended to `LOADERS`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping, Optional

from vfbench.errors import UserError
from vfbench.runner.record import Record
from vfbench.runner.store import RUN, RunStore


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
    """A run folder: run.json + records.jsonl (runner/store.py)."""
    if not (p.is_dir() and (p / RUN).exists()):
        return None
    store = RunStore(p)
    latest = store.latest_by_key()  # a resumed cell may appear twice; the last record is the answer
    return Run(records=tuple(latest.values()), info=RunInfo.from_dict(str(p), store.run_info()), home=p)


# Tried in order; each returns a Run or None (not its format).
LOADERS: tuple[Callable[[Path], Optional[Run]], ...] = (_store_run,)
