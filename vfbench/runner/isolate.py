"""One fresh process per cell, with a timeout: peak memory is only clean in a fresh process, and an OOM,
a crash or a hang must not poison the next cell (torchbench #423, timm #955).

By default a cell's process is forked from a forkserver that has already imported torch and vfbench
(multiprocessing's forkserver: a clean single-threaded process, never the sweep's own), which cuts a
cell's fixed cost from an interpreter start plus the torch import (~1-2 s) to a fork. Each child is
still a new process with fresh allocator state, and CUDA is never initialised before the fork.
VFBENCH_CELL_START=spawn starts a new interpreter per cell instead.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vfbench.runner.lifeline import mark_sweep
from vfbench.record import Record
from vfbench.store import StoreWriteError
from vfbench.runner.worker import LAUNCH_ENV, WRITE_FAILED_EXIT, forked_main
from vfbench.spec import CellSpec

START_ENV = "VFBENCH_CELL_START"
_forkserver = None


def _context():
    global _forkserver
    if _forkserver is None:
        _forkserver = multiprocessing.get_context("forkserver")
        # torch._dynamo is imported lazily by the first optimizer (torch.optim wraps methods with it), which
        # costs a cold process about a second: import it once here instead. lifeline first: the forkserver
        # dies with this process (and each cell with the forkserver), even after a SIGKILL.
        mark_sweep()
        _forkserver.set_forkserver_preload(["vfbench.runner.lifeline", "vfbench.runner.cells", "torch._dynamo"])
    return _forkserver


def log_tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def signal_name(code: int) -> str:
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


class CellProcess:
    """A running cell. `wait` returns its record; `kill` stops it and its children."""

    def __init__(self, cell: CellSpec, workdir: Path, start: str | None = None):
        self.cell = cell
        self.dir = Path(tempfile.mkdtemp(prefix=f"cell-{cell.key}-", dir=workdir))
        self.result_path = self.dir / "result.json"
        self.log_path = self.dir / "output.log"
        self.start = start or os.environ.get(START_ENV, "fork")
        mark_sweep()
        launched = time.time()
        if self.start == "spawn":
            cell_path = self.dir / "cell.json"
            cell_path.write_text(json.dumps(cell.to_dict()))
            with open(self.log_path, "wb") as log:
                self._popen = subprocess.Popen(
                    [sys.executable, "-m", "vfbench.runner.worker", str(cell_path), str(self.result_path)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env=dict(os.environ, **{LAUNCH_ENV: repr(launched)}), start_new_session=True,
                )
            self.pid = self._popen.pid
        else:
            self._proc = _context().Process(
                target=forked_main,
                args=(cell.to_dict(), str(self.result_path), str(self.log_path), launched, dict(os.environ), os.getcwd()),
                daemon=False,
            )
            self._proc.start()
            self.pid = self._proc.pid

    def alive(self) -> bool:
        if self.start == "spawn":
            return self._popen.poll() is None
        return self._proc.is_alive()

    def _join(self, timeout_s: float | None) -> int | None:
        """Exit code: >= 0 for an exit, -N when killed by signal N; None while still running."""
        if self.start == "spawn":
            try:
                return self._popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                return None
        self._proc.join(timeout_s)
        return self._proc.exitcode

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.alive():  # killed before it could make its own process group
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._join(None)

    def wait(self, timeout_s: float) -> Record:
        rc = self._join(timeout_s)
        if rc is None:
            self.kill()
            return Record.for_cell(self.cell, "timeout", f"no result within the cell timeout of {timeout_s:g} s; killed")
        if rc == WRITE_FAILED_EXIT and not self.result_path.exists():  # the disk, not the cell: no record at all
            raise StoreWriteError(f"cell {self.cell.method} @ {self.cell.frames} frames could not write its result "
                                  f"under {self.dir.parent} (disk full or not writable)")
        if self.result_path.exists():
            try:
                return Record.from_dict(json.loads(self.result_path.read_text()))
            except (json.JSONDecodeError, TypeError) as exc:
                return Record.for_cell(self.cell, "error", f"unreadable result file: {exc}")
        tail = log_tail(self.log_path)
        if rc < 0:
            name = signal_name(-rc)
            hint = " (possibly the kernel's out-of-memory killer)" if name == "SIGKILL" else ""
            return Record.for_cell(self.cell, "error", f"worker killed by signal {name}{hint}\n{tail}".strip())
        return Record.for_cell(self.cell, "error", f"worker exited with code {rc} without a result\n{tail}".strip())

    def cleanup(self) -> None:
        try:
            for p in self.dir.iterdir():
                p.unlink(missing_ok=True)
            self.dir.rmdir()
        except OSError:
            pass  # removed at the next resume (RunStore.clean_leftovers)


def run_isolated(cell: CellSpec, timeout_s: float, workdir: Path, start: str | None = None) -> Record:
    proc = CellProcess(cell, workdir, start)
    try:
        return proc.wait(timeout_s)
    finally:
        if proc.alive():
            proc.kill()
        proc.cleanup()
