"""benchmarks/gpu_check.sh is run cold on a lent GPU machine with minutes of device time and no second try:
what it asks for must exist, and the script must run through, pack its outputs and build its table. These
tests check that here, on the CPU (REHEARSE=1: the tiny preset, CUDA-only kernels recorded as skipped)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from vfbench.registry import expand_methods

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def method_lists() -> list[str]:
    text = SCRIPT.read_text()
    return [quoted or bare for quoted, bare in re.findall(r"--methods\s+(?:'([^']*)'|([^\s\\]+))", text)]


def script(tmp_path, steps: str, timeout: int) -> subprocess.CompletedProcess:
    """The script rehearsed on the CPU with these STEPS, its pack under tmp_path/out."""
    env = dict(os.environ, REHEARSE="1", STEPS=steps, OUT=str(tmp_path / "out"))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]  # the script calls `python`
    return subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_every_method_the_script_asks_for_exists():
    lists = method_lists()
    assert len(lists) >= 8  # each run step names its methods
    for text in lists:
        assert expand_methods(text, "cuda"), text  # raises UserError on an unknown name or a bad parameter


@pytest.mark.slow
def test_a_rehearsal_on_the_cpu_runs_through_and_packs_the_kernel_table(tmp_path):
    done = script(tmp_path, "env kernels-vitb kernel-table", timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "failed steps" not in done.stdout
    with tarfile.open(tmp_path / "out" / "gpu-check.tgz") as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    got = tmp_path / "unpacked"
    table = (got / "kernel-table.md").read_text()
    assert table.startswith("Command: python ") and "runs/kernels-vitb" in table and str(tmp_path) not in table
    for kernel in ("sdpa", "math", "cudnn", "flash", "efficient"):
        assert re.search(rf"\|\s*joint\s*\|\s*{kernel}\s*\|", table), kernel
    assert "needs a CUDA device (cell device is cpu)" in table  # why the CUDA kernels did not run
    assert (got / "console.log").read_text().count("rc=0") == 3
    assert len((got / "runs" / "kernels-vitb" / "records.jsonl").read_text().splitlines()) == 10


def test_a_failed_step_fails_the_script_and_is_named(tmp_path):
    done = script(tmp_path, "kernel-table", timeout=120)  # no runs: the table has nothing
    assert done.returncode == 1
    assert "failed steps: kernel-table" in done.stdout
    assert (tmp_path / "out" / "gpu-check.tgz").exists()  # packed all the same
