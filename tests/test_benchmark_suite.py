"""The pytest-benchmark suite cannot rot: CI runs it once in its cheap mode on the tiny preset."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import write_plugin

ROOT = Path(__file__).resolve().parent.parent


def run_pytest(args, env_extra=None, timeout=600):
    env = dict(os.environ, VFBENCH_BENCH_MODEL="tiny", VFBENCH_BENCH_FRAMES="4", VFBENCH_BENCH_ROUNDS="1")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_every_method_runs_in_the_cheap_benchmark_mode(tmp_path):
    out = tmp_path / "bench.json"
    p = run_pytest(["--benchmark", "-q", "-p", "no:cacheprovider", "--benchmark-json", str(out)])
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert "vfbench memory next to time" in p.stdout
    data = json.loads(out.read_text())
    names = {b["extra_info"]["method"] for b in data["benchmarks"]}
    assert "joint" in names and "longvivit" in names
    for b in data["benchmarks"]:
        assert b["extra_info"]["peak_allocated_mib"] > 0 and b["extra_info"]["tokens"] > 0
    # vfbench report reads the pytest-benchmark JSON as a run.
    rep = subprocess.run([sys.executable, "-m", "vfbench", "report", str(out)], capture_output=True, text=True, timeout=300)
    assert rep.returncode == 0, rep.stderr
    md = (tmp_path / "bench-report" / "report.md").read_text()
    assert "longvivit" in md and "joint" in md and (tmp_path / "bench-report" / "summary.csv").exists()


def test_plain_pytest_does_not_collect_benchmarks():
    p = run_pytest(["--collect-only", "-q", "tests/test_spec.py", "benchmarks"])
    assert "test_method_step" not in p.stdout and "test_spec.py" in p.stdout


def test_third_party_methods_join_the_suite(tmp_path):
    write_plugin(tmp_path, "benchplugin_vf", "benchplugin_method")
    p = run_pytest(["--benchmark", "--collect-only", "-q"], {"PYTHONPATH": str(tmp_path)})
    assert "test_method_step[benchplugin_method-T4]" in p.stdout, p.stdout[-2000:]
