"""Fault injection: a documented test hook, not monkeypatching of internals.

A cell fails on purpose when `CellSpec.fault` is set (Python API), or when the environment variable
VFBENCH_TEST_FAULTS holds a JSON object mapping "<method>@<frames>" (or "*@<frames>", "<method>@*")
to a fault. The CLI never sets faults itself. Faults:

  raise        a Python exception               -> status error
  oom          torch.OutOfMemoryError            -> status oom
  abort        os.abort() (SIGABRT)              -> status error, "killed by signal SIGABRT"
  segv         SIGSEGV sent to itself            -> status error, "killed by signal SIGSEGV"
  sigkill      SIGKILL sent to itself            -> status error, "killed by signal SIGKILL"
  hang         sleeps forever                    -> status timeout
  garbage      prints junk to stdout and stderr, then runs normally -> status ok
  exit         exits with code 3 and no result   -> status error
  cell_full    OSError(ENOSPC) as the cell runs (its disk is full) -> no record: the sweep stops with
               exit code 1 and a resume measures the cell (never a false `error` record)
  fill_disk    fills the file named by VFBENCH_TEST_FILL until its disk is full, then runs normally:
               a real full disk (tests mount a small tmpfs), same outcome as cell_full
  store_full   the cell runs normally; appending its record writes half the line, then fails with
               ENOSPC (the store's own write fault): the half line is rolled back, the sweep stops
               with exit code 1, and a resume measures the cell
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
import time

from vfbench.spec import CellSpec

ENV = "VFBENCH_TEST_FAULTS"
FILL_ENV = "VFBENCH_TEST_FILL"
FAULTS = ("raise", "oom", "abort", "segv", "sigkill", "hang", "garbage", "exit", "cell_full", "fill_disk", "store_full")


def fault_for(cell: CellSpec) -> str:
    return cell.fault or _planned(cell.method, cell.frames)


def store_fault(method: str, frames: int) -> str:
    """The fault planned for the store's append of this cell's record ('store_full' or '')."""
    fault = _planned(method, frames)
    return fault if fault == "store_full" else ""


def _planned(method: str, frames: int) -> str:
    plan = os.environ.get(ENV)
    if not plan:
        return ""
    table = json.loads(plan)
    for key in (f"{method}@{frames}", f"*@{frames}", f"{method}@*"):
        if key in table:
            return table[key]
    return ""


def inject(fault: str) -> None:
    if not fault:
        return
    if fault == "raise":
        raise RuntimeError("injected fault: raise")
    if fault == "oom":
        import torch

        raise torch.OutOfMemoryError("injected fault: out of memory")
    if fault == "abort":
        os.abort()
    if fault == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if fault == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault == "hang":
        while True:
            time.sleep(3600)
    if fault == "garbage":
        sys.stdout.write("\x00\xff garbage {not json\n" * 100)
        sys.stdout.flush()
        sys.stderr.write("more garbage\n")
        return
    if fault == "exit":
        os._exit(3)
    if fault == "cell_full":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if fault == "fill_disk":
        _fill(os.environ[FILL_ENV])
        return
    if fault == "store_full":
        return  # acts in the store (store_fault), not in the cell
    raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")


def _fill(path: str) -> None:
    try:
        with open(path, "ab") as f:
            while True:
                f.write(b"\0" * (64 << 10))
                f.flush()
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
