"""Faults around a sweep: Ctrl-C / SIGTERM keep finished records and print the resume command, a second
run into a locked folder is refused, and a soak with random faults ends with one record per cell."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

BASE = ["--model", "tiny", "--min-seconds", "0", "--min-repeats", "2", "--warmup", "2", "--no-report", "--no-accuracy"]


def start(out, run_id, frames, methods="joint", faults=None, extra=()):
    env = dict(os.environ)
    if faults:
        env["VFBENCH_TEST_FAULTS"] = json.dumps(faults)
    args = [sys.executable, "-m", "vfbench", "run", "--methods", methods, "--frames", frames,
            "--out", str(out), "--run-id", run_id, *BASE, *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def records(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for_records(path, n, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(records(path)) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not reach {n} records")


def resume(out, run_id, env_faults=None):
    env = dict(os.environ)
    if env_faults:
        env["VFBENCH_TEST_FAULTS"] = json.dumps(env_faults)
    return subprocess.run([sys.executable, "-m", "vfbench", "run", "--resume", run_id, "--out", str(out)],
                          capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_keeps_records_and_prints_resume_command(tmp_path, sig):
    proc = start(tmp_path, "r", "2,4,8", faults={"joint@4": "hang"}, extra=["--timeout", "120"])
    path = tmp_path / "r" / "records.jsonl"
    wait_for_records(path, 1)
    time.sleep(0.5)  # the hanging cell is running now
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"resume with: vfbench run --resume r --out {tmp_path}" in err
    assert [r["frames"] for r in records(path)] == [2]
    assert not list((tmp_path / "r").glob("cell-*"))  # the running cell was stopped and cleaned up
    done = resume(tmp_path, "r")
    assert done.returncode == 0, done.stderr
    assert sorted(r["frames"] for r in records(path)) == [2, 4, 8]


def test_second_run_into_a_locked_folder_is_refused(tmp_path):
    proc = start(tmp_path, "r", "2,4", faults={"joint@4": "hang"}, extra=["--timeout", "120"])
    try:
        wait_for_records(tmp_path / "r" / "records.jsonl", 1)
        second = resume(tmp_path, "r")
        assert second.returncode == 2
        assert "in use by another vfbench run" in second.stderr and len(second.stderr.strip().splitlines()) == 1
    finally:  # SIGTERM: vfbench stops its hanging cell and forkserver (a SIGKILL would leave them behind)
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


FAULT_STATUS = {"raise": "error", "oom": "oom", "abort": "error", "segv": "error", "sigkill": "error",
                "exit": "error", "garbage": "ok", "hang": "timeout"}


def test_soak_with_random_faults_and_two_kills(tmp_path):
    """200 cells with VFBENCH_SOAK=full (40 by default): random faults, the sweep SIGKILLed twice and
    resumed; every cell ends with exactly one record, and nothing recorded earlier changes."""
    full = os.environ.get("VFBENCH_SOAK") == "full"
    methods = ["joint", "mask(ratio=0.25)", "mask(ratio=0.5)", "mask(ratio=0.75)"]
    frames = list(range(2, 102, 2)) if full else list(range(2, 22, 2))
    rng = random.Random(7)
    kinds = [k for k in FAULT_STATUS if k != "hang"]
    faults = {}
    for m in methods:
        for t in frames:
            if rng.random() < 0.15:
                faults[f"{m}@{t}"] = rng.choice(kinds)
    faults[f"{methods[1]}@{frames[3]}"] = "hang"
    n = len(methods) * len(frames)
    assert n == (200 if full else 40)
    path = tmp_path / "soak" / "records.jsonl"
    extra = ["--timeout", "20", "--no-skip-after-oom"]
    proc = start(tmp_path, "soak", ",".join(map(str, frames)), ",".join(methods), faults, extra)
    snapshots = []
    for kill_at in (n // 4, n // 2):
        wait_for_records(path, kill_at, timeout=900)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        snapshots.append(records(path))
        env = dict(os.environ, VFBENCH_TEST_FAULTS=json.dumps(faults))
        proc = subprocess.Popen([sys.executable, "-m", "vfbench", "run", "--resume", "soak", "--out", str(tmp_path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = proc.communicate(timeout=1800)
    assert proc.returncode == 0, err
    final = records(path)
    assert len(final) == n and len({r["key"] for r in final}) == n
    for snap in snapshots:
        assert final[: len(snap)] == snap  # nothing already recorded changed
    for r in final:
        expected = FAULT_STATUS.get(faults.get(f"{r['method']}@{r['frames']}"), "ok")
        assert r["status"] == expected, (r["method"], r["frames"], r["status"], r["reason"])
