"""`--executor slurm` against a real Slurm.

`.ci/slurm-up.sh` installs and starts a single-node Slurm with accounting; .ci/run does so before the
tests and sets VFBENCH_REQUIRE_SLURM=1, so there a missing Slurm fails these tests instead of skipping them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vfbench.cli import main
from vfbench.errors import UserError
from vfbench.runner.slurm import parse_slurm_extra, time_limit_min
from vfbench.store import RunStore
from vfbench.sweep_spec import SlurmSettings, SweepSpec, method_labels

REQUIRE = "VFBENCH_REQUIRE_SLURM"
FAST = ["--model", "tiny", "--device", "cpu", "--no-accuracy", "--batch", "2", "--warmup", "2", "--min-repeats", "2",
        "--min-seconds", "0", "--no-report"]
MASK = method_labels("mask")[0]  # mask(ratio=0.5)
LORA = method_labels("lora")[0]


def slurm_problem() -> str | None:
    """Why these tests cannot submit jobs here, or None when they can."""
    if importlib.util.find_spec("submitit") is None:
        return "submitit is not installed (pip install -e '.[slurm]')"
    if shutil.which("sinfo") is None:
        return "no Slurm here (sinfo is not on PATH); .ci/slurm-up.sh installs and starts a single-node one"
    try:
        info = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=15)
        acct = subprocess.run(["sacct", "-n", "-X", "-S", "now"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "Slurm does not answer (sinfo or sacct timed out); .ci/slurm-up.sh starts one"
    if info.returncode != 0:
        return f"Slurm is not running (sinfo: {(info.stderr.strip().splitlines() or ['failed'])[-1]}); .ci/slurm-up.sh starts one"
    if not any(s.startswith(("idle", "mix", "alloc")) for s in info.stdout.split()):
        return f"no Slurm node is up (sinfo states: {' '.join(info.stdout.split()) or 'none'})"
    if acct.returncode != 0:
        return "Slurm accounting does not answer (sacct failed); the executor needs it to see jobs Slurm killed"
    return None


@pytest.fixture(scope="module")
def slurm():
    problem = slurm_problem()
    if problem:
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"{REQUIRE}=1 but {problem}")
        pytest.skip(problem)


def statuses(run: Path) -> dict:
    return {(r.method, r.frames): r.status for r in RunStore(run).records()}


def records(run: Path) -> dict:
    return {(r.method, r.frames): r for r in RunStore(run).records()}


# -- without a cluster ------------------------------------------------------------------------------


def test_time_limit_is_the_timeout_in_whole_minutes():
    assert [time_limit_min(s) for s in (1, 59.5, 60, 61, 900)] == [1, 1, 1, 2, 15]


def test_slurm_extra_accepts_pairs_lists_and_mappings_and_refuses_what_vfbench_sets():
    assert parse_slurm_extra(["mem=32G", "account=vision"]) == (("mem", "32G"), ("account", "vision"))
    assert parse_slurm_extra("mem=32G exclusive") == (("mem", "32G"), ("exclusive", ""))
    assert parse_slurm_extra({"constraint": "a100|h100"}) == (("constraint", "a100|h100"),)
    with pytest.raises(UserError, match="--timeout"):
        parse_slurm_extra(["time=10"])


def test_slurm_settings_round_trip_through_run_json_and_old_runs_still_load():
    sweep = SweepSpec("tiny", ("joint",), (2,), 2, "fp32", "cpu", executor="slurm",
                      slurm=SlurmSettings("gpu", 1, 4, (("mem", "32G"),)))
    again = SweepSpec.from_dict(json.loads(json.dumps(sweep.to_dict())))
    assert again == sweep and again.cells() == sweep.cells()
    old = {k: v for k, v in sweep.to_dict().items() if k != "slurm"}  # a run.json from before the Slurm executor
    assert SweepSpec.from_dict(old).slurm == SlurmSettings()


def test_missing_submitit_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ModuleNotFoundError
    code = main(["run", *FAST, "--methods", "joint", "--frames", "2", "--executor", "slurm", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "vfbench[slurm]" in err and len(err.splitlines()) == 1
    assert not any(tmp_path.iterdir())  # refused before a run folder was made


def test_slurm_options_live_in_the_sweep_yaml(tmp_path, slurm):
    config = tmp_path / "sweep.yaml"
    config.write_text("executor: slurm\npartition: debug\nmax_parallel: 3\nslurm_extra: {mem: 1G}\n")
    from vfbench.commands.run_cmd import OPTIONS, build_sweep
    from vfbench.config import load_config

    options = {k: d for k, (d, _) in OPTIONS.items()}
    options.update(load_config(str(config), list(OPTIONS)), model="tiny", device="cpu")
    sweep, _ = build_sweep(options)
    assert sweep.slurm == SlurmSettings("debug", 0, 3, (("mem", "1G"),))


# -- against the running Slurm ----------------------------------------------------------------------


def test_sweep_on_slurm_matches_the_local_sweep(tmp_path, monkeypatch, slurm, capsys):
    """12 cells with every status: ok, skipped (unsupported, and after an OOM), oom, error (an exception,
    and a worker that exits without a result). The fault plan reaches the jobs through the environment."""
    monkeypatch.setenv("VFBENCH_TEST_FAULTS", json.dumps({f"{MASK}@4": "oom", f"{LORA}@2": "raise", "joint@8": "exit"}))
    sweep = [*FAST, "--methods", "joint,mask,lora,temporal_only", "--frames", "2,4,8", "--out", str(tmp_path)]
    assert main(["run", *sweep, "--run-id", "local"]) == 0
    assert main(["run", *sweep, "--run-id", "slurm", "--executor", "slurm", "--max-parallel", "4"]) == 0
    local, on_slurm = statuses(tmp_path / "local"), statuses(tmp_path / "slurm")
    assert len(local) == len(on_slurm) == 12 and len(RunStore(tmp_path / "slurm").records()) == 12
    assert on_slurm == local
    assert set(local.values()) == {"ok", "skipped", "oom", "error"}
    got = records(tmp_path / "slurm")
    assert "exit code 3" in got[("joint", 8)].reason  # died without a result: Slurm's state and exit code
    assert "injected fault: raise" in got[(LORA, 2)].reason  # the cell's own traceback, as locally
    # Every cell ran as a job, but the one the sweep itself skipped after the OOM.
    assert all(r.extra.get("slurm_job_id") for k, r in got.items() if k != (MASK, 8))
    assert (tmp_path / "slurm" / "slurm").is_dir()  # submitit's folder lives in the run folder
    assert capsys.readouterr().err.count("submitted as Slurm job") == 3  # a job array per frame count


def _vfbench(*args, env=None, **kw) -> subprocess.Popen:
    # SIGINT at its default, as at a terminal (a background test run passes SIG_IGN down; see test_robustness.start)
    return subprocess.Popen([sys.executable, "-m", "vfbench", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kw)


def _wait(what: str, check, timeout_s: float, proc: subprocess.Popen | None = None):
    end = time.time() + timeout_s
    while time.time() < end:
        out = check()
        if out:
            return out
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"vfbench exited ({proc.returncode}) while waiting for {what}:\n{proc.stdout.read()}")
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _queue(name: str) -> dict:
    """Array task id -> state, for the jobs named `name` in Slurm's queue."""
    out = subprocess.run(["squeue", "-h", "-r", "-n", name, "-o", "%i %T"], capture_output=True, text=True).stdout
    return dict(line.split() for line in out.splitlines())


def _sacct_states(job_id: str) -> list[str]:
    """The states of a job's allocations (an array's tasks; one line for the tasks that never started)."""
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"], capture_output=True, text=True).stdout
    return out.split("\n")[:-1]


def test_cells_killed_by_slurm_are_recorded_and_resume_completes_the_sweep(tmp_path, slurm):
    """Wave 1 (2 frames): one cell overruns its 1-minute limit (-> timeout), another is scancelled (-> error).
    Wave 2 (4 frames): the sweep is interrupted (SIGINT): it cancels its own jobs and no other.
    Then --resume, without the faults, runs only the two missing cells."""
    run, name = tmp_path / "run", "vfbench-run"
    env = dict(os.environ, OMP_NUM_THREADS="1", VFBENCH_TEST_FAULTS=json.dumps({"*@2": "hang", "*@4": "hang"}))
    proc = _vfbench("run", *FAST, "--methods", f"joint,{MASK}", "--frames", "2,4", "--timeout", "60",
                    "--executor", "slurm", "--out", str(tmp_path), "--run-id", "run", env=env)
    bystander = None
    try:
        # Cells are array tasks in cell order: task 0 is joint@2, task 1 mask@2.
        def both_running():
            queue = _queue(name)
            return sorted(queue) if len(queue) == 2 and set(queue.values()) == {"RUNNING"} else None

        wave1 = _wait("wave 1 to run", both_running, 60, proc)
        array = wave1[0].split("_")[0]
        subprocess.run(["scancel", f"{array}_1"], check=True)
        _wait("wave 1 to be recorded", lambda: len(RunStore(run).records()) == 2, 150, proc)
        got = records(run)
        assert got[("joint", 2)].status == "timeout" and "TIMEOUT" in got[("joint", 2)].reason
        assert "time limit of 1 min" in got[("joint", 2)].reason
        assert got[(MASK, 2)].status == "error" and "CANCELLED" in got[(MASK, 2)].reason

        wave2 = _wait("wave 2 to be submitted", lambda: [j for j in _queue(name) if not j.startswith(array + "_")], 60, proc)
        bystander = subprocess.run(["sbatch", "--parsable", "-J", "bystander", "-o", "/dev/null", "--wrap", "sleep 300"],
                                   capture_output=True, text=True, check=True).stdout.strip()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 130, out
        assert "resume with: vfbench run --resume run" in out
        _wait("wave 2 to be cancelled", lambda: not _queue(name), 30)
        states = _sacct_states(wave2[0].split("_")[0])
        assert states and all(s.startswith("CANCELLED") for s in states), states
        assert _queue("bystander"), "Ctrl-C cancelled a job that vfbench had not submitted"
    finally:
        if proc.poll() is None:
            proc.kill()
        if bystander:
            subprocess.run(["scancel", bystander])
    assert len(RunStore(run).records()) == 2

    env.pop("VFBENCH_TEST_FAULTS")
    resumed = _vfbench("run", "--resume", "run", "--out", str(tmp_path), env=env)
    out, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, out
    assert "2 cells submitted as Slurm job" in out and out.count("submitted as Slurm job") == 1
    assert statuses(run) == {("joint", 2): "timeout", (MASK, 2): "error", ("joint", 4): "ok", (MASK, 4): "ok"}
    assert len(RunStore(run).records()) == 4
