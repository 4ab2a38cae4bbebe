"""Executors run cells one after another and return records; the cell function is the same in all.

- inline: in this process (debugging; memory figures are not clean across cells).
- local: one fresh process per cell with a timeout (the default).
- slurm: one Slurm job array per wave of cells, through submitit (slurm.py; the `slurm` extra).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from vfbench.errors import UserError
from vfbench.runner.cells import is_write_failure, run_cell
from vfbench.runner.isolate import CellProcess
from vfbench.record import Record
from vfbench.store import StoreWriteError
from vfbench.spec import CellSpec

EXECUTORS = ("local", "inline", "slurm")


class InlineExecutor:
    name = "inline"

    def run(self, cell: CellSpec) -> Record:
        try:
            return run_cell(cell)
        except OSError as exc:
            if is_write_failure(exc):  # the disk, not the cell (run_cell lets only this through)
                raise StoreWriteError(f"cell {cell.method} @ {cell.frames} frames: {exc.strerror or exc}") from None
            raise

    def cancel(self) -> None:
        pass


class LocalExecutor:
    name = "local"

    def __init__(self, timeout_s: float, workdir: Path | None = None):
        self.timeout_s = timeout_s
        self.workdir = Path(workdir or tempfile.gettempdir())
        self.current: CellProcess | None = None

    def run(self, cell: CellSpec) -> Record:
        try:
            self.current = CellProcess(cell, self.workdir)
        except OSError as exc:  # its scratch folder could not be made: the disk, not the cell
            raise StoreWriteError(f"cannot start cell {cell.method} @ {cell.frames} frames in {self.workdir}: "
                                  f"{exc.strerror or exc}") from None
        try:
            return self.current.wait(self.timeout_s)
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stop the running cell (on Ctrl-C or SIGTERM) and clean up its files."""
        proc, self.current = self.current, None
        if proc is not None:
            if proc.alive():
                proc.kill()
            proc.cleanup()


def make_executor(name: str, timeout_s: float, workdir: Path | None = None, slurm=None):
    """`slurm` (a SlurmSettings) is used by the slurm executor only; its files go to `<workdir>/slurm/`."""
    if name == "slurm":
        from vfbench.runner.slurm import SlurmExecutor

        return SlurmExecutor(timeout_s, Path(workdir or tempfile.gettempdir()), slurm)
    if name == "local":
        return LocalExecutor(timeout_s, workdir)
    if name == "inline":
        return InlineExecutor()
    raise UserError(f"unknown executor {name!r}; accepted: {', '.join(EXECUTORS)}")
