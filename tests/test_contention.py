"""cpu_others_frac (measure/contention.py): the arithmetic on fake /proc/stat readings, None off Linux, a real
spinning neighbour, the timing hook, and the busy-machine warning of `vfbench run` and the report."""

import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from vfbench.measure.contention import (
    OTHERS_WARN_FRAC, Sample, others_frac, parse_proc_stat, read_proc_stat, take_sample,
)
from vfbench.measure.timing import time_steps
from vfbench.report.build import write_report
from vfbench.report.terminal import contention_note
from tests.test_report import not_ok, ok, write_run

TCK = os.sysconf("SC_CLK_TCK")


def stat_text(user=0.0, system=0.0, steal=0.0, idle=0.0, ncpu=2):
    """/proc/stat text with these aggregate CPU seconds (converted to jiffies) and `ncpu` cpuN lines."""
    j = lambda s: int(round(s * TCK))  # noqa: E731
    head = f"cpu  {j(user)} 7 {j(system)} {j(idle)} 3 0 0 {j(steal)} 0 0"
    cpus = [f"cpu{i} 1 0 1 1 0 0 0 0 0 0" for i in range(ncpu)]
    return "\n".join([head, *cpus, "intr 123 0 0", "ctxt 456", "btime 1700000000"]) + "\n"


def frac(start_text, end_text, own=(0.0, 0.0), wall=(0.0, 1.0)):
    """others_frac between two fake readings: /proc/stat texts, own CPU seconds and wall clock."""
    samples = [take_sample(read=lambda t=t: t, own=lambda o=o: o, clock=lambda w=w: w)
               for t, o, w in zip((start_text, end_text), own, wall)]
    return others_frac(*samples)


def test_idle_machine_is_zero():
    assert frac(stat_text(user=100, idle=50), stat_text(user=100, idle=52)) == pytest.approx(0.0)


def test_another_process_on_one_of_two_cores_is_half():
    assert frac(stat_text(user=100), stat_text(user=101)) == pytest.approx(0.5, abs=0.01)
    # system and steal time are busy too (steal: the hypervisor ran other guests)
    steal = frac(stat_text(system=5), stat_text(system=5.5, steal=0.5), wall=(10.0, 11.0))
    assert steal == pytest.approx(0.5, abs=0.01)
    # on four cores the same neighbour is a quarter of the machine
    four = frac(stat_text(user=100, ncpu=4), stat_text(user=102, ncpu=4), wall=(0.0, 2.0))
    assert four == pytest.approx(0.25, abs=0.01)


def test_own_work_is_excluded():
    # this process kept both cores busy for a second: nobody else was there
    assert frac(stat_text(user=100), stat_text(user=102), own=(3.0, 5.0)) == pytest.approx(0.0, abs=0.01)
    # this process used one core and a neighbour the other
    assert frac(stat_text(user=100), stat_text(user=102), own=(3.0, 4.0)) == pytest.approx(0.5, abs=0.01)
    # accounting skew never makes it negative, nor above the whole machine
    assert frac(stat_text(user=100), stat_text(user=101), own=(0.0, 1.5)) == 0.0
    assert frac(stat_text(user=100), stat_text(user=104)) == 1.0


def test_parse_counts_online_cpus_and_busy_fields():
    busy, ncpu = parse_proc_stat(stat_text(user=3, system=1, steal=1, idle=100, ncpu=3), TCK)
    assert ncpu == 3 and busy == pytest.approx(5 + 7 / TCK)  # idle and iowait are not busy; nice (7 jiffies) is


def test_none_where_proc_stat_is_unreadable(tmp_path):
    assert read_proc_stat(str(tmp_path / "no-such-file")) is None
    assert take_sample(read=lambda: None) is None
    assert take_sample(read=lambda: "intr 1 2 3\n") is None  # not /proc/stat
    s = Sample(busy_s=1.0, ncpu=2, own_s=0.0, wall_s=0.0)
    assert others_frac(None, s) is None and others_frac(s, None) is None
    assert others_frac(s, s) is None  # no time passed


def test_timing_hook_samples_around_the_timed_steps_only():
    calls = []

    def step():
        calls.append("step")

    def sampler():
        calls.append("sample")
        n = calls.count("sample")
        return Sample(busy_s=100.0 + 0.8 * (n - 1), ncpu=2, own_s=0.0, wall_s=float(n - 1))

    stats = time_steps(step, warmup=2, min_repeats=3, min_seconds=0.0, max_repeats=3, max_seconds=10, sampler=sampler)
    assert calls == ["step", "step", "sample", "step", "step", "step", "sample"]
    assert stats.cpu_others_frac == pytest.approx(0.4)
    assert stats.to_dict()["cpu_others_frac"] == 0.4
    stats = time_steps(step, warmup=0, min_repeats=1, min_seconds=0.0, max_repeats=1, max_seconds=10,
                       sampler=lambda: None)
    assert stats.cpu_others_frac is None and stats.to_dict()["cpu_others_frac"] is None


@pytest.mark.skipif(not sys.platform.startswith("linux") or read_proc_stat() is None, reason="needs /proc/stat")
def test_a_spinning_neighbour_is_seen():
    """Behaviour, not a timing target: a process spinning one core of this machine for about a second."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)  # past its interpreter start
        start = take_sample()
        time.sleep(1.0)
        end = take_sample()
    finally:
        spinner.kill()
        spinner.wait()
    # one spinning core is 1/ncpu of the machine (0.5 on 2 cores) plus whatever else runs
    assert others_frac(start, end) > min(0.2, 0.4 / start.ncpu)


def test_a_measured_cell_records_the_share(tiny_cell):
    from vfbench.runner.cells import run_cell

    r = run_cell(tiny_cell(frames=4))
    assert r.status == "ok", r.reason
    assert 0.0 <= r.to_dict()["cpu_others_frac"] <= 1.0 and r.extra.get("cpu_others_frac") is None  # a core field


def records(*shares):
    return [ok("joint", 4 * 2**i, 1.0 + i, 10.0 * (i + 1), cpu_others_frac=s) for i, s in enumerate(shares)]


def test_run_end_warning_line():
    line = contention_note([*records(0.05, 0.61, 0.40), not_ok("mask", 4, "oom", "x")])
    assert line.startswith("2 of 3 timed cells ran while other processes used more than 25% of the machine's CPU")
    assert "worst 61%, joint at 8 frames" in line and "re-run on a quiet machine" in line
    assert contention_note(records(0.05, OTHERS_WARN_FRAC, None)) is None  # at the threshold, or not recorded: quiet
    assert contention_note([]) is None
    # a cell that failed is not judged on its share
    assert contention_note([r.replace(status="error") for r in records(0.9)]) is None


def test_report_note_and_summary_column(tmp_path):
    busy = write_run(tmp_path / "busy", records(0.05, 0.7))
    write_report(busy)
    md = (busy / "report.md").read_text()
    assert "1 of 2 timed cells ran while other processes used more than 25%" in md and "worst 70%" in md
    assert "re-run on a quiet machine" in (busy / "report.html").read_text()
    assert list(pd.read_csv(busy / "summary.csv").cpu_others_frac) == [0.05, 0.7]
    quiet = write_run(tmp_path / "quiet", records(0.05, 0.1))
    write_report(quiet)
    assert "other processes used" not in (quiet / "report.md").read_text()
