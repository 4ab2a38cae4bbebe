"""A progress bar with an ETA on stderr (a line per cell when stderr is not a terminal)."""

from __future__ import annotations

import sys
import time

from vfbench.report.terminal import cell_text
from vfbench.runner.sweep import Progress


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class TerminalProgress:
    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.total = self.done = 0
        self.t0 = time.time()
        self.measured_s: list[float] = []

    def callbacks(self) -> Progress:
        return Progress(self.started, self.cell_started, self.cell_finished)

    def started(self, total: int, done: int) -> None:
        self.total, self.done = total, done
        if done:
            self._line(f"resuming: {done} of {total} cells already recorded")

    def _bar(self) -> str:
        width = 20
        filled = int(width * self.done / max(self.total, 1))
        remaining = self.total - self.done
        if self.measured_s:
            eta = _clock(remaining * sum(self.measured_s) / len(self.measured_s))
        else:
            eta = "--:--"
        return f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {_clock(time.time() - self.t0)} ETA {eta}"

    def cell_started(self, cell) -> None:
        if self.tty:
            self.stream.write(f"\r\033[K{self._bar()}  running {cell.method} @ {cell.frames} frames")
            self.stream.flush()

    def cell_finished(self, cell, record, measured: bool) -> None:
        self.done += 1
        if measured and record.cell_s is not None:
            self.measured_s.append(record.cell_s)
        detail = cell_text(record) if record.status == "ok" else f"{record.status}: {record.reason.splitlines()[0] if record.reason else ''}"
        self._line(f"{self._bar()}  {cell.method} @ {cell.frames} frames: {detail}")

    def _line(self, text: str) -> None:
        prefix = "\r\033[K" if self.tty else ""
        self.stream.write(prefix + text + "\n")
        self.stream.flush()
