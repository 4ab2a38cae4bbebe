"""Fault injection: a documented test hook (issue #7), not monkeypatching of internals.

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
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from vfbench.spec import CellSpec

ENV = "VFBENCH_TEST_FAULTS"
FAULTS = ("raise", "oom", "abort", "segv", "sigkill", "hang", "garbage", "exit")


def fault_for(cell: CellSpec) -> str:
    if cell.fault:
        return cell.fault
    plan = os.environ.get(ENV)
    if not plan:
        return ""
    table = json.loads(plan)
    for key in (f"{cell.method}@{cell.frames}", f"*@{cell.frames}", f"{cell.method}@*"):
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
    raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
