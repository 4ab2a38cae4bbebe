"""What Slurm's accounting (sacct) says about the tasks of job arrays, for the Slurm executor."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from vfbench.runner.isolate import signal_name

# States after which a job may still come back (requeued on preemption or node failure): wait this long first.
_REQUEUE_GRACE_S = {"PREEMPTED": 60.0, "NODE_FAIL": 60.0}
# A job that ended on its own has written its result before exiting; a shared filesystem may show it late.
_RESULT_GRACE_S = {"COMPLETED": 15.0}
_DEFAULT_GRACE_S = 3.0
_RUNNING = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SUSPENDED",
            "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING", "STOPPED", "UNKNOWN", ""}


@dataclass(frozen=True)
class JobState:
    """One array task as sacct reports it."""

    state: str  # first word: "CANCELLED by 0" -> CANCELLED
    detail: str  # the whole State field
    reason: str
    exit_code: str  # "exit:signal"
    derived_exit_code: str
    elapsed_s: int | None

    @property
    def ended(self) -> bool:
        return self.state not in _RUNNING

    @property
    def settle_s(self) -> float:
        """Seconds to wait, once ended without a result file, before concluding there will be none."""
        return _REQUEUE_GRACE_S.get(self.state, _RESULT_GRACE_S.get(self.state, _DEFAULT_GRACE_S))

    def describe(self) -> str:
        parts = [self.detail]
        if self.reason and self.reason != "None":
            parts.append(f"reason {self.reason}")
        job, steps = exit_text(self.exit_code), exit_text(self.derived_exit_code)  # the batch script; its steps
        if job:
            parts.append(job)
        if steps and steps != job:
            parts.append(f"cell step {steps}")
        return ", ".join(parts)


def exit_text(code: str) -> str:
    """sacct's "exit:signal" in words ("" for 0:0)."""
    status, _, sig = code.partition(":")
    if sig.isdigit() and sig != "0":
        name = signal_name(int(sig))
        hint = " (possibly the kernel's out-of-memory killer)" if name == "SIGKILL" else ""  # as the local executor says
        return f"killed by signal {name}{hint}"
    if status and status != "0":
        return f"exit code {status}"
    return ""


def sacct_states(job_ids: list[str]) -> dict[str, JobState]:
    """State of every started array task of the given jobs (one sacct call). Empty on a sacct failure.

    A task counts as OUT_OF_MEMORY when any of its steps does (the cell runs in step `.0`, under srun).
    """
    fields = "JobID,State,Reason,ExitCode,DerivedExitCode,ElapsedRaw"
    cmd = ["sacct", "-n", "-P", "-o", fields] + [a for j in job_ids for a in ("-j", j)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}  # accounting briefly unreachable: ask again at the next poll
    states: dict[str, JobState] = {}
    oom: set[str] = set()
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) != 6:
            continue
        jid, detail, reason, code, derived, elapsed = parts
        state = detail.split()[0] if detail else ""
        task, _, step = jid.partition(".")
        if step:
            if state == "OUT_OF_MEMORY":
                oom.add(task)
            continue
        for one in _task_ids(task):
            states[one] = JobState(state, detail, reason, code, derived, int(elapsed) if elapsed.isdigit() else None)
    for task in oom & set(states):
        st = states[task]
        if st.ended and st.state != "OUT_OF_MEMORY":
            states[task] = JobState("OUT_OF_MEMORY", f"{st.detail} (a step ran out of memory)", st.reason,
                                    st.exit_code, st.derived_exit_code, st.elapsed_s)
    return states


def _task_ids(job_id: str) -> list[str]:
    """sacct's one line for array tasks that never started: "123_[0-3,7%2]" -> 123_0 ... 123_3, 123_7."""
    main, _, ranges = job_id.partition("_[")
    if not ranges:
        return [job_id]
    out = []
    for part in ranges.rstrip("]").split("%")[0].split(","):
        first, _, last = part.partition("-")
        if first.isdigit() and (not last or last.isdigit()):
            out += [f"{main}_{i}" for i in range(int(first), int(last or first) + 1)]
    return out
