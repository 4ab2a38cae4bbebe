"""The GPU's busy share during profiled steps: the interval union on fake kernels, the launch-bound rule,
the report's warning, and (on a GPU) the profiler itself."""

from types import SimpleNamespace

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from test_report import ok, write_run

from vfbench.measure.gpu_busy import LAUNCH_BOUND_BELOW, busy_share, device_intervals, profile_busy, union_length
from vfbench.measure.timing import first_step_s
from vfbench.report.build import write_report
from vfbench.report.terminal import launch_bound_note
from vfbench.record import Record


def test_union_counts_overlaps_once():
    assert union_length([]) == 0
    assert union_length([(0, 10), (5, 15)]) == 15  # overlapping streams
    assert union_length([(0, 10), (2, 3)]) == 10  # nested
    assert union_length([(20, 30), (0, 10)]) == 20  # disjoint, unsorted
    assert union_length([(0, 10), (10, 20)]) == 20  # touching
    assert union_length([(5, 5), (7, 6)]) == 0  # empty and reversed intervals cover nothing


@given(st.lists(st.tuples(st.floats(0, 1e6), st.floats(0, 1e4)), min_size=1, max_size=40))
def test_union_is_bounded_by_the_window_and_the_sum(spans):
    intervals = [(s, s + d) for s, d in spans]
    total = union_length(intervals)
    nonempty = [(s, e) for s, e in intervals if e > s]
    window = (max(e for _, e in nonempty) - min(s for s, _ in nonempty)) if nonempty else 0.0
    assert max((e - s for s, e in nonempty), default=0.0) <= total + 1e-6
    assert total <= sum(e - s for s, e in nonempty) + 1e-6
    assert total <= window + 1e-6


def test_launch_bound_when_kernels_leave_the_gpu_idle():
    # 3 steps of 10 kernels, 50 us each, launched every 100 us: the GPU idles half the time.
    idle = [(t, t + 50.0) for t in range(0, 3000, 100)]
    share = busy_share(idle, steps=3)
    assert share.gpu_busy_frac == pytest.approx(1500 / 2950)  # 30 x 50 us busy in a 2950 us window
    assert share.launch_bound and share.gpu_window_ms == pytest.approx(2.95)
    # Back-to-back kernels: busy all along.
    packed = [(t, t + 100.0) for t in range(0, 3000, 100)]
    assert busy_share(packed, steps=3).gpu_busy_frac == pytest.approx(1.0)
    assert not busy_share(packed, steps=3).launch_bound
    assert busy_share([], steps=3) is None
    d = share.to_dict()
    assert d["launch_bound"] is True and 0 < d["gpu_busy_frac"] < LAUNCH_BOUND_BELOW


def test_device_intervals_take_only_device_events():
    def event(kind, start, end):
        return SimpleNamespace(device_type=kind, time_range=SimpleNamespace(start=start, end=end))

    cuda, cpu = torch.autograd.DeviceType.CUDA, torch.autograd.DeviceType.CPU
    events = [event(cpu, 0, 1000), event(cuda, 10, 20), event(cuda, 30, 60)]
    assert device_intervals(events) == [(10, 20), (30, 60)]


def _record(method, frames, **extra):
    return Record("k", "ok", method, "vit-b", frames, 4, "bf16", "cuda", extra=extra)


def test_the_report_warns_about_launch_bound_cells():
    records = [
        _record("joint", 16, gpu_busy_frac=0.3, launch_bound=True),
        _record("joint", 256, gpu_busy_frac=0.97, launch_bound=False),
        _record("compile", 16, gpu_busy_frac=0.6, launch_bound=True),
        _record("cpu-cell", 16),  # no profile (CPU)
    ]
    note = launch_bound_note(records)
    assert note.startswith("2 of 3 CUDA cells were launch-bound") and "worst 30%, joint at 16 frames" in note
    assert launch_bound_note(records[1:2] + records[3:]) is None


def test_first_step_time_is_one_call():
    ticks = iter([10.0, 12.5])
    calls = []
    assert first_step_s(lambda: calls.append(1), clock=lambda: next(ticks)) == 2.5
    assert calls == [1]


@pytest.mark.gpu
def test_profiled_busy_share_on_cuda():
    device = torch.device("cuda")
    x = torch.randn(4096, 4096, device=device)
    busy = profile_busy(lambda: [x @ x for _ in range(4)], device)  # big matmuls back to back: busy
    assert busy is not None and busy.gpu_busy_frac > 0.8 and busy.profiled_steps == 3
    small = torch.randn(8, device=device)

    def launches():  # tiny kernels separated by host work: mostly idle
        for _ in range(50):
            small.add_(1)
            sum(range(20000))

    idle = profile_busy(launches, device)
    assert idle is not None and idle.launch_bound


def test_the_kernel_table_splits_methods_into_kernel_and_compile_mode(tmp_path):
    from vfbench.report.kernels import by_cell, kernel_table, split_method, summary, uses_kernels

    assert split_method("joint") == ("joint", "sdpa", "eager")
    assert split_method("longvivit+attn_kernel(kind=cudnn)+compile(backend=inductor,mode=default)") == ("longvivit", "cudnn", "default")
    assert split_method("bf16+checkpoint+compile(backend=inductor,mode=reduce_overhead)") == ("bf16+checkpoint", "sdpa", "reduce_overhead")
    assert split_method("someone_elses_plugin(x=1)") == ("someone_elses_plugin(x=1)", "sdpa", "eager")  # not installed here
    records = [
        Record("a", "ok", "joint", "vit-b", 16, 4, "bf16", "cuda", step_ms_median=48.0, mfu=0.09,
               extra={"gpu_busy_frac": 0.4, "launch_bound": True}),
        Record("b", "ok", "compile(backend=inductor,mode=default)", "vit-b", 16, 4, "bf16", "cuda", step_ms_median=20.0,
               mfu=0.22, extra={"gpu_busy_frac": 0.9, "launch_bound": False, "compile_s": 41.0}),
        Record("c", "oom", "attn_kernel(kind=math)", "vit-b", 16, 4, "bf16", "cuda"),
        Record("d", "ok", "attn_kernel(kind=cudnn)", "vit-b", 256, 4, "bf16", "cuda", step_ms_median=300.0, mfu=0.55,
               extra={"gpu_busy_frac": 0.99, "launch_bound": False}),
        Record("e", "ok", "joint", "vit-b", 256, 4, "bf16", "cuda", step_ms_median=400.0, mfu=0.41,
               extra={"gpu_busy_frac": 0.98, "launch_bound": False}),
        Record("f", "skipped", "attn_kernel(kind=math)", "vit-b", 256, 4, "bf16", "cuda", reason="predicted out of memory"),
    ]
    table = kernel_table(by_cell(records))
    assert table.headers[3:] == ("16 frames, eager", "16 frames, default", "256 frames, eager", "256 frames, default")
    rows = {tuple(r[1:3]): r[3:] for r in table.texts()}
    assert rows[("joint", "sdpa")] == ["48.0 ms, MFU 0.09, busy 40% (launch-bound)", "20.0 ms, MFU 0.22, busy 90%",
                                       "400.0 ms, MFU 0.41, busy 98%", ""]
    assert rows[("joint", "math")] == ["oom", "", "skipped", ""]
    assert rows[("joint", "cudnn")][2] == "300.0 ms, MFU 0.55, busy 99%"
    # the summary states what the table decides: the best kernel and mode per frame count, launch-bound
    # cells at the fewest frames eager vs compiled, and why each missing cell is missing
    lines = summary(by_cell(records))
    assert "Highest MFU at 16 frames: 0.22 (joint, kernel sdpa, default; 20.0 ms)." in lines
    assert "Highest MFU at 256 frames: 0.55 (joint, kernel cudnn, eager; 300.0 ms)." in lines
    assert "Launch-bound at 16 frames, eager: 1 of 1 cells (GPU busy 40% to 40% of the step)." in lines
    assert any(line.startswith("Launch-bound at 16 frames, default: 0 of 1 cells") for line in lines)
    assert any("up to 41 s" in line for line in lines)
    assert "Oom: attn_kernel(kind=math) at 16 frames: no reason recorded" in lines
    assert "Skipped: attn_kernel(kind=math) at 256 frames: predicted out of memory" in lines
    assert uses_kernels(by_cell(records)) and not uses_kernels(by_cell(records[:1] + records[4:5]))


def test_a_report_of_kernels_or_compile_has_the_kernel_section(tmp_path):
    plain = write_run(tmp_path / "plain", [ok("joint", 4, 1.0, 10), ok("joint", 8, 2.0, 20)])
    write_report(plain)
    assert "Attention kernels and compilation" not in (plain / "report.md").read_text()
    compiled = write_run(tmp_path / "compiled", [ok("joint", 4, 1.0, 10), ok("compile(backend=inductor,mode=default)", 4, 1.0, 4,
                                                                           compile_s=12.0)])
    write_report(compiled)
    text = (compiled / "report.md").read_text()
    assert "## Attention kernels and compilation" in text and "4 frames, default" in text
    assert "Compilation (first step, not timed): up to 12 s" in text


def test_a_profiler_failure_is_a_key_not_a_lost_cell(monkeypatch):
    import vfbench.measure.gpu_busy as gb

    def broken(step, device):
        raise RuntimeError("CUPTI_ERROR_NOT_INITIALIZED\nmore")

    monkeypatch.setattr(gb, "profile_busy", broken)
    assert gb.busy_keys(lambda: None, torch.device("cpu")) == {"gpu_busy_error": "RuntimeError: CUPTI_ERROR_NOT_INITIALIZED"}
    monkeypatch.setattr(gb, "profile_busy", lambda step, device: None)
    assert "no device activity" in gb.busy_keys(lambda: None, torch.device("cpu"))["gpu_busy_error"]
