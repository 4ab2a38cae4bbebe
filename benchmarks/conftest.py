"""The method suite as pytest-benchmark benchmarks: every registered method (third parties' included,
through the entry-point group) x a few frame counts, on `small` on CPU and `vit-b` on CUDA.

Time comes from pytest-benchmark (pedantic mode with warm-up rounds; the step synchronises on CUDA).
Memory, parameters, tokens, FLOPs and the device go to each benchmark's `extra_info`, measured exactly
as `vfbench run` measures them, and a memory table is printed after the run, because
pytest-benchmark cannot show extra_info as columns (pytest-benchmark#233).

Environment knobs: VFBENCH_BENCH_MODEL (preset), VFBENCH_BENCH_FRAMES (e.g. '16,32'),
VFBENCH_BENCH_BATCH, VFBENCH_BENCH_ROUNDS.
"""

from __future__ import annotations

import os

import pytest
import torch
from tabulate import tabulate

ON_CUDA = torch.cuda.is_available()
MODEL = os.environ.get("VFBENCH_BENCH_MODEL", "vit-b" if ON_CUDA else "small")
FRAMES = tuple(int(t) for t in os.environ.get("VFBENCH_BENCH_FRAMES", "16,32,64").split(","))
BATCH = int(os.environ.get("VFBENCH_BENCH_BATCH", "4" if ON_CUDA else "2"))
ROUNDS = int(os.environ.get("VFBENCH_BENCH_ROUNDS", "10" if ON_CUDA else "5"))

_ROWS_KEY = pytest.StashKey[list]()


def pytest_configure(config):
    config.stash[_ROWS_KEY] = []


@pytest.fixture
def memory_rows(request):
    return request.config.stash[_ROWS_KEY]


def pytest_benchmark_update_machine_info(config, machine_info):
    from vfbench.measure.env import collect_env

    machine_info["vfbench"] = collect_env("cuda" if ON_CUDA else "cpu")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    rows = config.stash.get(_ROWS_KEY, [])
    if not rows:
        return
    terminalreporter.write_sep("-", f"vfbench memory next to time ({MODEL}, batch {BATCH})")
    table = [
        [r["method"], r["frames"], r["status"], r.get("peak_allocated_mib"), r.get("step_ms_median"),
         r.get("params_trainable"), r.get("tokens"), r.get("flops_per_step")]
        for r in rows
    ]
    terminalreporter.write_line(tabulate(
        table, headers=["method", "frames", "status", "peak MiB", "median ms", "trainable", "tokens", "FLOPs/step"],
        floatfmt=".2f",
    ))
