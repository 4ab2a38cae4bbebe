"""What a cell's fresh process runs: measure the cell, write its record to a result file.

The result goes to a file (written to a temporary name, then renamed), never to stdout, so whatever
the cell prints cannot corrupt it. Two ways in:
- `python -m vfbench.runner.worker CELL.json RESULT.json` (a plain new interpreter);
- `forked_main(...)`, the target of a child forked from the forkserver (see isolate.py), which first
  detaches into its own session and points its stdout/stderr at the cell's log file.
"""

from __future__ import annotations

import json
import os
import sys
import time

LAUNCH_ENV = "VFBENCH_LAUNCH_TIME"
WRITE_FAILED_EXIT = 75  # EX_TEMPFAIL: the disk failed, not the cell; the sweep stops and records nothing


def execute(cell_data: dict, result_path: str, started: float) -> None:
    from vfbench.runner.cells import run_cell
    from vfbench.spec import CellSpec

    try:
        record = run_cell(CellSpec.from_dict(cell_data), started)
        tmp = result_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(record.to_dict(), f, default=str)
        os.replace(tmp, result_path)
    except OSError as exc:
        from vfbench.runner.cells import is_write_failure

        if not is_write_failure(exc):
            raise
        try:
            os.unlink(result_path + ".tmp")
        except OSError:
            pass
        os._exit(WRITE_FAILED_EXIT)


def forked_main(cell_data: dict, result_path: str, log_path: str, started: float, env: dict, cwd: str) -> None:
    from vfbench.runner.lifeline import SWEEP_PID_ENV, die_with_parent

    die_with_parent(os.getppid())  # the forkserver, which itself dies with the sweep (lifeline.py)
    sweep = env.get(SWEEP_PID_ENV, "")
    if sweep.isdigit():
        try:
            os.kill(int(sweep), 0)
        except ProcessLookupError:
            os._exit(1)  # the sweep died while this cell was being forked
        except PermissionError:
            pass
    os.setsid()  # own process group: the parent kills the whole group, and Ctrl-C reaches only the parent
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    # The forkserver was started once, earlier: take the launching process's environment and folder now.
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    execute(cell_data, result_path, started)


def main(argv: list[str]) -> int:
    from vfbench.runner.lifeline import SWEEP_PID_ENV, die_with_parent

    sweep = os.environ.get(SWEEP_PID_ENV, "")
    if sweep.isdigit():
        die_with_parent(int(sweep))  # spawned by the sweep: die with it
    cell_path, result_path = argv
    started = float(os.environ.get(LAUNCH_ENV, time.time()))
    with open(cell_path) as f:
        execute(json.load(f), result_path, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
