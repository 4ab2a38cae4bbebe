"""Cells and helper processes die with the sweep that started them.

A SIGKILLed sweep runs no cleanup, so the kernel does it: on Linux each cell process, and the forkserver
the cells are forked from, asks for SIGKILL when its parent exits (prctl PR_SET_PDEATHSIG). The chain is
sweep -> forkserver -> cell; multiprocessing's resource tracker then sees its pipe close and exits too.
Elsewhere (no prctl) a killed sweep may leave a cell running until its own end; the scratch folders
(`cell-*`) are removed when the run is resumed either way.

The forkserver imports this module as a preload (isolate.py), which is where it asks: SWEEP_PID_ENV names
the process that started it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

SWEEP_PID_ENV = "VFBENCH_SWEEP_PID"
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> bool:
    """Ask for SIGKILL when the parent exits (Linux). If `parent` is already gone (it died before the
    request was made, and this process was handed to init), exit now. True when the kernel took it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:
        os._exit(1)
    return True


def mark_sweep() -> None:
    """Called by the process that launches cells: its children (and the forkserver) will know it."""
    os.environ[SWEEP_PID_ENV] = str(os.getpid())


def _as_preload() -> None:
    """In the forkserver (a `python -c` running multiprocessing.forkserver.main), a child of the sweep."""
    sweep = os.environ.get(SWEEP_PID_ENV, "")
    in_forkserver = sys.argv[:1] == ["-c"] and "multiprocessing.forkserver" in sys.modules
    if in_forkserver and sweep.isdigit() and int(sweep) != os.getpid():
        die_with_parent(int(sweep))


_as_preload()
