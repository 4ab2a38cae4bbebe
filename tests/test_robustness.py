"""Faults around a sweep: Ctrl-C / SIGTERM keep finished records and print the resume command, a second
run into a locked folder is refused, a SIGKILLed sweep takes its cells and helpers with it, a full disk
stops the sweep with the store valid, and a soak with random faults ends with one record per cell."""

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import warnings

import pytest

from vfbench.faults import FILL_ENV
from vfbench.store import RunStore

BASE = ["--model", "tiny", "--min-seconds", "0", "--min-repeats", "2", "--warmup", "2", "--no-report", "--no-accuracy"]


def start(out, run_id, frames, methods="joint", faults=None, extra=(), env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    if faults:
        env["VFBENCH_TEST_FAULTS"] = json.dumps(faults)
    args = [sys.executable, "-m", "vfbench", "run", "--methods", methods, "--frames", frames,
            "--out", str(out), "--run-id", run_id, *BASE, *extra]
    # SIGINT at its default in the sweep, as at a terminal: a test run started in the background (`pytest &`,
    # nohup) passes SIG_IGN down, and Python then installs no KeyboardInterrupt handler
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


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
    env.pop("VFBENCH_TEST_FAULTS", None)
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


def valid(path):
    """The store's valid records (malformed lines skipped and counted) and the number of malformed lines."""
    store = RunStore(path.parent)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return store.records(), len(store.bad_lines)


def descendants(pid):
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def alive(pid):
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_and_check_orphans(proc, timeout=20):
    """SIGKILL the sweep; every process it started (cells, forkserver, resource tracker) must follow."""
    kids = descendants(proc.pid)
    proc.kill()
    proc.wait()
    deadline = time.time() + timeout
    while any(alive(p) for p in kids) and time.time() < deadline:
        time.sleep(0.1)
    left = [p for p in kids if alive(p)]
    for p in left:  # do not let a failure leak processes into the rest of the suite
        os.kill(p, signal.SIGKILL)
    assert not left, f"processes outlived the SIGKILLed sweep: {left}"
    return kids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
@pytest.mark.parametrize("how", ["fork", "spawn"])
def test_sigkilled_sweep_takes_cells_and_helpers_with_it(tmp_path, monkeypatch, how):
    monkeypatch.setenv("VFBENCH_CELL_START", how)
    proc = start(tmp_path, "r", "2,4", faults={"joint@4": "hang"}, extra=["--timeout", "300"])
    run = tmp_path / "r"
    wait_for_records(run / "records.jsonl", 1)
    deadline = time.time() + 60
    while not list(run.glob("cell-*")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # the hanging cell is running
    kids = kill_and_check_orphans(proc)
    assert len(kids) >= (2 if how == "fork" else 1)  # the cell (and the forkserver and tracker) were there to die
    assert list(run.glob("cell-*"))  # a SIGKILL runs no cleanup...
    done = resume(tmp_path, "r")
    assert done.returncode == 0, done.stderr
    assert not list(run.glob("cell-*"))  # ...the resume does
    assert sorted(r["frames"] for r in records(run / "records.jsonl")) == [2, 4]


def test_inline_executor_stops_on_sigterm(tmp_path):
    """The inline executor runs cells in the sweep's own process: SIGTERM must stop the sweep, not become
    the running cell's error record."""
    proc = start(tmp_path, "r", "2,4,8", faults={"joint@4": "hang"}, extra=["--timeout", "120", "--executor", "inline"])
    path = tmp_path / "r" / "records.jsonl"
    wait_for_records(path, 1)
    time.sleep(1.0)
    proc.terminate()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert [(r["frames"], r["status"]) for r in records(path)] == [(2, "ok")]


def mount_small_fs(path, size: str) -> bool:
    """A tmpfs of `size` at `path` (root on Linux only); False where the platform does not allow it."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@contextlib.contextmanager
def small_fs(path, size):
    mounted = mount_small_fs(path, size)
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_real_full_disk_stops_the_sweep_and_resume_finishes(tmp_path):
    fs = tmp_path / "fs"
    with small_fs(fs, "16m") as mounted:
        if not mounted:
            pytest.skip("mounting a small tmpfs needs root on Linux (test_store_integrity covers the write hook)")
        fill = fs / "filler"
        proc = start(fs, "r", "2,4,8", faults={"joint@4": "fill_disk"}, env_extra={FILL_ENV: str(fill)})
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 1, err
        assert "could not write its result" in err and "--resume r" in err and "Traceback" not in err
        store = RunStore(fs / "r")
        assert store.records_path.read_bytes().endswith(b"\n")
        assert [(r.frames, r.status) for r in store.records()] == [(2, "ok")]  # no false error record
        fill.unlink()  # space freed
        done = resume(fs, "r")
        assert done.returncode == 0, done.stderr
        assert [(r.frames, r.status) for r in store.records()] == [(2, "ok"), (4, "ok"), (8, "ok")]


FAULT_STATUS = {"raise": "error", "oom": "oom", "abort": "error", "segv": "error", "sigkill": "error",
                "exit": "error", "garbage": "ok", "hang": "timeout"}


MALFORMED = ["123", "null", "[1,2]", '{"foo":1}', '"schema_version":"2"', "\x00\xff not json"]


def inject_malformed(path, rng) -> int:
    """Append malformed lines (a record copy with frames "abc" among them) and, sometimes, a torn tail;
    returns how many whole malformed lines were added (a torn tail is set aside at the next append)."""
    good, _ = valid(path)
    bad = rng.sample(MALFORMED, 2)
    if good:
        bad.append(json.dumps({**good[-1].to_dict(), "frames": "abc"}))
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in bad))
        if rng.random() < 0.5:
            f.write('{"key": "torn-by-power-loss", "stat')
    return len(bad)


def launch(args, env, log):
    with open(log, "a") as err:
        return subprocess.Popen([sys.executable, "-m", "vfbench", "run", *args], stdout=subprocess.DEVNULL, stderr=err,
                                env=env)


@pytest.mark.soak
def test_soak_random_faults_kills_full_disks_and_malformed_lines(tmp_path):
    """200 cells with VFBENCH_SOAK=full (40 by default): random cell faults, the sweep SIGKILLed twice (its
    cells and helpers must die with it), two full disks (the store's write hook, and a real full tmpfs
    where one can be mounted, else the cell-side hook), and malformed lines appended to the store at every
    stop. Every cell ends with exactly one valid record, and nothing recorded earlier changes."""
    full = os.environ.get("VFBENCH_SOAK") == "full"
    t0 = time.time()
    methods = ["joint", "mask(ratio=0.25)", "mask(ratio=0.5)", "mask(ratio=0.75)"]
    frames = list(range(2, 102, 2)) if full else list(range(2, 22, 2))
    cells = [f"{m}@{t}" for m in methods for t in frames]
    n = len(cells)
    assert n == (200 if full else 40)
    rng = random.Random(7)
    kinds = [k for k in FAULT_STATUS if k != "hang"]
    faults = {c: rng.choice(kinds) for c in cells if rng.random() < 0.15}
    faults[f"{methods[1]}@{frames[3]}"] = "hang"
    free = [c for c in cells if c not in faults]
    fs = tmp_path / "fs"
    with small_fs(fs, "64m") as real_disk:
        root = fs if real_disk else tmp_path
        disk_faults = {free[len(free) * 3 // 8]: "store_full", free[len(free) * 5 // 8]: "fill_disk" if real_disk else "cell_full"}
        plan = {**faults, **disk_faults}
        fill = root / "filler"
        env = dict(os.environ, **{FILL_ENV: str(fill)})
        path, log = root / "soak" / "records.jsonl", tmp_path / "stderr.log"
        args = ["--model", "tiny", "--min-seconds", "0", "--min-repeats", "2", "--warmup", "2", "--no-report",
                "--no-accuracy", "--timeout", "20", "--no-skip-after-oom"]
        proc = launch(["--methods", ",".join(methods), "--frames", ",".join(map(str, frames)), "--out", str(root),
                       "--run-id", "soak", *args], dict(env, VFBENCH_TEST_FAULTS=json.dumps(plan)), log)
        kills, stops, malformed, snapshots = [n // 4, n // 2], {"sigkill": 0, "disk_full": 0}, 0, []
        deadline = time.time() + 3600
        while True:
            while proc.poll() is None and not (kills and len(valid(path)[0]) >= kills[0]):
                assert time.time() < deadline, "soak took over an hour"
                time.sleep(0.1)
            if proc.poll() is None:
                kill_and_check_orphans(proc)
                kills.pop(0)
                stops["sigkill"] += 1
            elif proc.returncode == 0:
                break
            else:
                last = log.read_text().strip().splitlines()[-1]
                assert proc.returncode == 1 and "vfbench: error:" in last and "--resume soak" in last, last
                done = {r.method + "@" + str(r.frames) for r in valid(path)[0]}
                stopped_at = next(c for c in cells if c not in done)
                assert plan.pop(stopped_at) in ("store_full", "fill_disk", "cell_full")  # the disk is freed
                fill.unlink(missing_ok=True)
                stops["disk_full"] += 1
            snapshots.append([r.to_dict() for r in valid(path)[0]])
            malformed += inject_malformed(path, rng)
            proc = launch(["--resume", "soak", "--out", str(root)], dict(env, VFBENCH_TEST_FAULTS=json.dumps(plan)), log)
        final, bad = valid(path)
        leftovers = list((root / "soak").glob("cell-*"))
    assert stops == {"sigkill": 2, "disk_full": 2}
    assert len(final) == n and len({r.key for r in final}) == n  # exactly one valid record per cell
    assert bad == malformed  # every malformed line counted, none taken for a record
    for snap in snapshots:
        assert [r.to_dict() for r in final[: len(snap)]] == snap  # nothing already recorded changed
    for r in final:
        expected = FAULT_STATUS.get(faults.get(f"{r.method}@{r.frames}"), "ok")
        assert r.status == expected, (r.method, r.frames, r.status, r.reason)
    assert not leftovers
    print(f"\nsoak: {n} cells, {len(final)} valid records, 0 duplicates, 0 lost; faults: {len(faults)} in cells "
          f"({', '.join(f'{k} {list(faults.values()).count(k)}' for k in sorted(set(faults.values())))}), "
          f"2 disk full ({', '.join(disk_faults.values())}, real tmpfs: {real_disk}), {stops['sigkill']} SIGKILLs, "
          f"{malformed} malformed lines appended; {time.time() - t0:.0f} s")
