"""Runner statuses, isolation, the store and resume, with faults injected through the documented hook."""

import json
import signal
import subprocess
import sys
import time
import warnings

import pytest

from vfbench.runner.cells import run_cell
from vfbench.runner.executors import LocalExecutor
from vfbench.runner.isolate import run_isolated
from vfbench.record import Record
from vfbench.store import RunStore, TornRecordWarning
from vfbench.runner.sweep import run_sweep
from vfbench.sweep_spec import SweepSpec
from vfbench.errors import UserError
from tests.conftest import FAST


def test_in_process_cell_ok(tiny_cell):
    r = run_cell(tiny_cell(frames=8))
    assert r.status == "ok", r.reason
    assert r.tokens == 4 * 16 and r.peak_allocated_mib > 0 and r.step_ms_median > 0
    assert r.step_ms_p10 <= r.step_ms_median <= r.step_ms_p90
    assert r.params_trainable == r.params_total > 0
    assert r.flops_per_step == r.flops_per_step_analytic > 0 and r.flops_per_step_counted > 0
    for key in ("peak_reserved_mib", "clips_per_s", "frames", "batch", "dtype", "device", "method", "model"):
        assert key in r.to_dict()


def test_cell_that_raises_is_an_error_record(tiny_cell):
    r = run_cell(tiny_cell(fault="raise"))
    assert r.status == "error" and "injected fault: raise" in r.reason


def test_injected_oom_is_an_oom_record(tiny_cell):
    r = run_cell(tiny_cell(fault="oom"))
    assert r.status == "oom" and "out of memory" in r.reason


def test_frames_not_multiple_of_tubelet_is_skipped(tiny_cell):
    r = run_cell(tiny_cell(frames=5))
    assert r.status == "skipped" and "tubelet" in r.reason


@pytest.mark.parametrize(
    "fault,status,text",
    [("sigkill", "error", "SIGKILL"), ("abort", "error", "SIGABRT"), ("segv", "error", "SIGSEGV"),
     ("exit", "error", "exited with code 3"), ("garbage", "ok", "")],
)
@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_isolated_faults(tiny_cell, tmp_path, fault, status, text, start):
    r = run_isolated(tiny_cell(fault=fault), timeout_s=120, workdir=tmp_path, start=start)
    assert r.status == status, r.reason
    assert text in r.reason
    assert list(tmp_path.iterdir()) == []  # the cell's scratch files are gone


def test_hang_becomes_timeout(tiny_cell, tmp_path):
    t0 = time.time()
    r = run_isolated(tiny_cell(fault="hang"), timeout_s=3, workdir=tmp_path)
    assert r.status == "timeout" and "3 s" in r.reason
    assert time.time() - t0 < 30


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_isolated_cell_records_setup_cost(tiny_cell, tmp_path, start):
    r = run_isolated(tiny_cell(), timeout_s=120, workdir=tmp_path, start=start)
    assert r.status == "ok" and 0 < r.setup_s < 60 and r.peak_rss_mib > 0


def _sweep(**kw):
    base = dict(model="tiny", methods=("joint",), frames=(2, 4, 8, 16), batch=2, dtype="fp32", device="cpu", measure=FAST)
    base.update(kw)
    return SweepSpec(**base)


def test_store_round_trip(tmp_path, tiny_cell):
    store = RunStore(tmp_path / "run")
    store.create({"sweep": _sweep().to_dict()})
    rec = Record.for_cell(tiny_cell(), "ok", peak_allocated_mib=1.5, acc_r1_random=0.9)
    store.append(rec)
    (back,) = store.records()
    assert back == rec and back.to_dict()["acc_r1_random"] == 0.9
    assert SweepSpec.from_dict(store.run_info()["sweep"]) == _sweep()


def test_torn_last_line_is_skipped_and_rerun(tmp_path, tiny_cell):
    store = RunStore(tmp_path / "run")
    store.create({})
    store.append(Record.for_cell(tiny_cell(frames=2), "ok"))
    with open(store.records_path, "a") as f:
        f.write('{"key": "abc", "status": "o')  # power loss mid-write
    with pytest.warns(TornRecordWarning):
        assert len(store.records()) == 1
    with pytest.warns(TornRecordWarning, match="moved to records.torn"):
        store.append(Record.for_cell(tiny_cell(frames=4), "ok"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [r.frames for r in store.records()] == [2, 4]


def test_newer_schema_is_refused(tmp_path, tiny_cell):
    store = RunStore(tmp_path / "run")
    store.create({})
    d = Record.for_cell(tiny_cell(), "ok").to_dict()
    d["schema_version"] = 99
    store.records_path.write_text(json.dumps(d) + "\n")
    with pytest.raises(UserError, match="newer vfbench"):
        store.records()


def test_second_lock_is_refused(tmp_path):
    a, b = RunStore(tmp_path / "run"), RunStore(tmp_path / "run")
    a.create({})
    a.lock()
    try:
        with pytest.raises(UserError, match="in use"):
            b.lock()
    finally:
        a.unlock()
    b.lock()
    b.unlock()


def test_oom_skips_larger_frames(tmp_path, monkeypatch):
    monkeypatch.setenv("VFBENCH_TEST_FAULTS", json.dumps({"joint@4": "oom"}))
    store = RunStore(tmp_path / "run")
    store.create({})
    records = run_sweep(_sweep(), store, LocalExecutor(120, tmp_path))
    assert [r.status for r in records] == ["ok", "oom", "skipped", "skipped"]
    assert "out of memory at 4 frames" in records[2].reason
    store2 = RunStore(tmp_path / "run2")
    store2.create({})
    records = run_sweep(_sweep(skip_after_oom=False), store2, LocalExecutor(120, tmp_path))
    assert [r.status for r in records] == ["ok", "oom", "ok", "ok"]


def test_killed_sweep_resumes_with_one_record_per_cell(tmp_path):
    """SIGKILL the whole sweep halfway, then resume: every cell has exactly one record."""
    out = tmp_path / "out"
    args = [sys.executable, "-m", "vfbench", "run", "--model", "tiny", "--methods", "joint", "--frames", "2..32",
            "--out", str(out), "--run-id", "r", "--min-seconds", "0", "--min-repeats", "2", "--no-report", "--no-accuracy"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = out / "r" / "records.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if records.exists() and len(records.read_text().splitlines()) >= 2:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = [json.loads(line) for line in records.read_text().splitlines()]
    assert 2 <= len(before) < 5
    done = subprocess.run([sys.executable, "-m", "vfbench", "run", "--resume", "r", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    after = [json.loads(line) for line in records.read_text().splitlines()]
    assert sorted(r["frames"] for r in after) == [2, 4, 8, 16, 32]
    assert len({r["key"] for r in after}) == 5
    assert after[: len(before)] == before  # nothing already recorded changed


class WaveExecutor:
    """A parallel executor stand-in: takes whole waves, answers in reverse order."""

    def __init__(self):
        self.waves = []

    def run_batch(self, cells, on_record):
        self.waves.append([(c.method, c.frames) for c in cells])
        for cell in reversed(cells):
            on_record(cell, run_cell(cell))

    def cancel(self):
        pass


def test_batch_executors_get_waves_by_frame_count_and_keep_oom_skips(tmp_path, monkeypatch):
    monkeypatch.setenv("VFBENCH_TEST_FAULTS", json.dumps({"mask(ratio=0.5)@4": "oom"}))
    store = RunStore(tmp_path / "run")
    store.create({})
    ex = WaveExecutor()
    sweep = _sweep(methods=("joint", "mask(ratio=0.5)"), frames=(2, 4, 8), estimate=False)
    records = run_sweep(sweep, store, ex)
    assert ex.waves == [[("joint", 2), ("mask(ratio=0.5)", 2)], [("joint", 4), ("mask(ratio=0.5)", 4)], [("joint", 8)]]
    status = {(r.method, r.frames): r.status for r in records}
    assert status[("mask(ratio=0.5)", 4)] == "oom" and status[("mask(ratio=0.5)", 8)] == "skipped"
    assert len(store.records()) == 6 and all(status[("joint", t)] == "ok" for t in (2, 4, 8))


def test_accuracy_lands_in_the_same_record(tmp_path, monkeypatch):
    """--accuracy puts the proxy's acc_* keys in the record next to memory and time (tiny proxy budget)."""
    monkeypatch.setenv("VFBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VFBENCH_PROXY_BUDGET", json.dumps(
        {"steps": 3, "batch": 8, "warmup": 1, "stage1_steps": 2, "stage1_batch": 8, "eval_queries": 12, "val_queries": 12}))
    store = RunStore(tmp_path / "run")
    store.create({})
    sweep = _sweep(frames=(2, 16, 32), accuracy="all", estimate=False)
    records = run_sweep(sweep, store, LocalExecutor(300, tmp_path))
    r4, r16, r32 = records
    assert r16.status == "ok" and r16.peak_allocated_mib > 0 and r16.step_ms_median > 0
    for key in ("acc_r1_random", "acc_r1_temporal", "acc_r1_spatial", "acc_r1_shuffled", "acc_r1_single_frame",
                "acc_chance_random", "acc_chance_temporal", "acc_steps"):
        assert key in r16.extra and key in r32.extra, key
    assert r16.extra["acc_steps"] == 3 and 0 <= r16.extra["acc_r1_random"] <= 1
    # short->long across cell processes: the 32-frame cell continues the model the 16-frame cell cached
    assert r16.extra["acc_init"] == "stage1" and r16.extra["acc_short_cached"] is False
    assert r32.extra["acc_init"] == "stage2 at 16 frames" and r32.extra["acc_short_cached"] is True
    assert r4.status == "ok" and "acc_reason" in r4.extra  # 2 frames cannot hold the task's 3 events
    off = _sweep(frames=(8,)).cells()
    assert not any(c.accuracy for c in off)
    cpu_default = _sweep(methods=("joint", "effshortvivit", "lora"), frames=(8, 32, 64), accuracy="on").cells()
    assert {(c.method, c.frames) for c in cpu_default if c.accuracy} == {(m, t) for m in ("joint", "effshortvivit") for t in (8, 32)}


@pytest.mark.parametrize("flags, on_cpu, on_cuda", [
    ([], "off", "on"),  # the default, auto: a CPU run measures memory and time only, and says how to add accuracy
    (["--accuracy"], "on", "on"), (["--accuracy", "all"], "all", "all"), (["--no-accuracy"], "off", "off"),
])
def test_accuracy_default_is_off_on_cpu_and_on_with_cuda(flags, on_cpu, on_cuda, monkeypatch):
    import argparse

    import vfbench.step
    from vfbench.commands.run_cmd import _options, add_parser, build_sweep

    parser = add_parser(argparse.ArgumentParser().add_subparsers())
    for device, want in (("cpu", on_cpu), ("cuda", on_cuda)):
        monkeypatch.setattr(vfbench.step, "resolve_device", lambda name, device=device: device)  # as if it had CUDA
        args = parser.parse_args(["--model", "tiny", "--methods", "joint,effshortvivit", "--frames", "16,64", *flags])
        sweep, note = build_sweep(_options(args))
        assert sweep.accuracy == want, (device, flags)
        trained = {(c.method, c.frames) for c in sweep.cells() if c.accuracy}
        if want == "off":
            assert not trained
        elif device == "cpu" and want == "on":
            assert trained == {("joint", 16), ("effshortvivit", 16)}  # the baseline and the recipes up to 32 frames
        else:
            assert len(trained) == 4
        if device == "cpu" and not flags:
            assert any("off by default on CPU" in line and "--accuracy" in line for line in note)


@pytest.mark.parametrize("warmup", [0, 1, 3])
def test_warmup_is_the_number_of_steps_before_the_memory_step(tiny_cell, monkeypatch, warmup):
    """--warmup N: exactly N untimed steps before the memory of a step is tracked (0: the very first step)."""
    import dataclasses

    import vfbench.runner.cells as cells

    steps, seen = [], []
    real_step, real_track = cells.train_step, cells.track_step_memory
    monkeypatch.setattr(cells, "train_step", lambda setup: steps.append(1) or real_step(setup))
    monkeypatch.setattr(cells, "track_step_memory", lambda setup: seen.append(len(steps)) or real_track(setup))
    cell = dataclasses.replace(tiny_cell(), measure=dataclasses.replace(FAST, warmup_steps=warmup), estimate=False)
    r = run_cell(cell)
    assert r.status == "ok", r.reason
    assert seen == [warmup]
