"""The Slurm executor: each wave of cells becomes one Slurm job array, submitted through submitit.

Every cell is its own array task, so its own fresh process on a node, running the same cell function as
the local executor (`run_cell`, through `run_cell_job` below). The submitit folder is `<run>/slurm/`:
a filesystem shared by the submitting machine and the nodes is all the store needs.

What Slurm kills never writes a result, so its outcome comes from accounting (sacct):
TIMEOUT -> `timeout`, OUT_OF_MEMORY -> `oom`, anything else that ended without a result (CANCELLED,
PREEMPTED, NODE_FAIL, FAILED, ...) -> `error`, with Slurm's state, reason and exit code in the reason.
The cell timeout is the job's time limit, in whole minutes (rounded up; Slurm's minimum is one).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from vfbench.errors import UserError
from vfbench.runner.isolate import log_tail
from vfbench.record import Record
from vfbench.runner.sacct import JobState, sacct_states
from vfbench.spec import CellSpec
from vfbench.sweep_spec import SlurmSettings

INSTALL_HINT = "--executor slurm needs submitit: pip install 'vfbench[slurm]'"
# sbatch options vfbench sets itself, and the vfbench option that sets each.
RESERVED = {"time": "--timeout", "array": "--max-parallel", "array_parallelism": "--max-parallel",
            "output": "nothing (logs go to <run>/slurm/)", "error": "nothing (logs go to <run>/slurm/)"}


def parse_slurm_extra(value) -> tuple:
    """`--slurm-extra` / YAML `slurm_extra` -> (("key", "value"), ...).

    Accepts KEY=VALUE strings (a list, or one string with several separated by spaces), or a YAML
    mapping. A bare KEY is an sbatch flag without a value (e.g. `exclusive`).
    """
    if value is None or value == "" or value == ():
        return ()
    if isinstance(value, dict):
        items = [(str(k), "" if v is None or v is True else str(v)) for k, v in value.items()]
    else:
        words = value.split() if isinstance(value, str) else [w for v in value for w in str(v).split()]
        items = [tuple(w.split("=", 1)) if "=" in w else (w, "") for w in words]
    out = []
    for key, val in items:
        key = key.strip().lstrip("-")
        if not key:
            raise UserError(f"--slurm-extra takes KEY=VALUE sbatch options, e.g. mem=32G account=vision; got {value!r}")
        if key.replace("-", "_") in RESERVED:
            raise UserError(f"--slurm-extra {key}=... is set by vfbench; use {RESERVED[key.replace('-', '_')]} instead")
        out.append((key, val))
    return tuple(out)


SLURM_OPTIONS = ("partition", "gpus_per_cell", "max_parallel", "slurm_extra")


def slurm_settings(options: dict, device: str, executor: str) -> tuple[SlurmSettings, list[str]]:
    """The `vfbench run` options (command line or YAML) -> SlurmSettings, and notes for the user."""
    notes = []
    given = [k for k in SLURM_OPTIONS if options.get(k) not in (None, "", (), [])]
    if executor != "slurm":
        if given:
            notes.append(f"--{given[0].replace('_', '-')} applies to --executor slurm only; ignored with --executor {executor}")
        return SlurmSettings(), notes
    require_slurm()

    def count(name: str, value, default: int, least: int) -> int:
        if value is None:
            return default
        try:
            out = int(value)
        except (TypeError, ValueError):
            out = None
        if out is None or out < least or str(out) != str(value).strip():
            raise UserError(f"--{name.replace('_', '-')} must be a whole number >= {least}, got {value!r}")
        return out

    settings = SlurmSettings(
        partition=str(options.get("partition") or ""),
        gpus_per_cell=count("gpus_per_cell", options.get("gpus_per_cell"), 1 if device == "cuda" else 0, 0),
        max_parallel=count("max_parallel", options.get("max_parallel"), 0, 1),
        extra=parse_slurm_extra(options.get("slurm_extra")),
    )
    check_sbatch(settings, options.get("timeout"))
    return settings, notes


def check_sbatch(settings: SlurmSettings, timeout_s) -> None:
    """Ask sbatch whether it takes these options (--test-only submits nothing), before a run folder exists:
    a run keeps its settings, so a typo found at the first submission could not be fixed by --resume."""
    flags = [f"--{k.replace('_', '-')}" + (f"={v}" if v != "" else "") for k, v in settings.extra]
    if settings.partition:
        flags.append(f"--partition={settings.partition}")
    if settings.gpus_per_cell:
        flags.append(f"--gpus-per-node={settings.gpus_per_cell}")
    try:
        flags.append(f"--time={time_limit_min(float(timeout_s))}")
    except (TypeError, ValueError):
        pass  # --timeout itself is checked elsewhere
    try:
        test = subprocess.run(["sbatch", "--test-only", *flags, "--wrap", "true"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return  # a slow controller is no reason to refuse; the first submission will tell
    if test.returncode != 0:
        raise UserError(f"sbatch refuses these options: {_sbatch_error(test.stderr)}; check --partition, --gpus-per-cell and --slurm-extra")


def _sbatch_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("Try ")]
    return (lines[-1] if lines else "failed")[:300]


def time_limit_min(timeout_s: float) -> int:
    """The cell timeout as a Slurm time limit: whole minutes, rounded up, at least one."""
    return max(1, math.ceil(timeout_s / 60))


def require_slurm() -> None:
    """One line a person can act on when submitit or the Slurm commands are missing."""
    try:
        import submitit  # noqa: F401
    except ModuleNotFoundError:
        raise UserError(INSTALL_HINT) from None
    for tool in ("sbatch", "srun", "sacct", "scancel"):
        if shutil.which(tool) is None:
            raise UserError(
                f"--executor slurm needs Slurm's '{tool}' on PATH; run vfbench on a cluster's login node "
                "(or --executor local here)"
            )
    # Without accounting a job that Slurm killed (time limit, out of memory, scancel) is never seen to end.
    try:
        acct = subprocess.run(["sacct", "-n", "-X", "-S", "now"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        acct = None
    if acct is None or acct.returncode != 0:
        said = (acct.stderr.strip().splitlines() or [""])[-1] if acct is not None else "no answer within 60 s"
        raise UserError(
            f"--executor slurm needs Slurm accounting (sacct: {said or 'failed'}) to learn about jobs Slurm "
            "killed; ask the cluster's admins, or use --executor local"
        )


def run_cell_job(cell: CellSpec) -> Record:
    """What an array task runs: the cell function, timed from the start of the task's process."""
    # submitit answers its time-limit warning signal by raising inside the running function, which the
    # cell function would record as an error; let Slurm kill the job at its limit instead (TIMEOUT).
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    from vfbench.runner.cells import run_cell

    return run_cell(cell, _process_started())


def _process_started() -> float:
    """Wall time this process started (so setup_s includes the interpreter start, as locally)."""
    now = time.time()
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        started = now - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return now
    return started if now - 3600 < started <= now else now


def _array_id(job_id: str) -> str:
    return job_id.split("_")[0]


class SlurmExecutor:
    """Runs a wave of cells as one job array; `run_batch` returns when every cell has a record."""

    name = "slurm"

    def __init__(self, timeout_s: float, run_dir: Path, settings: SlurmSettings | None = None, poll_s: float = 1.0):
        require_slurm()
        import submitit

        self.timeout_s = timeout_s
        self.settings = settings or SlurmSettings()
        self.folder = Path(run_dir) / "slurm"
        self.run_name = Path(run_dir).name
        self.poll_s = poll_s
        self._submitit = submitit
        self._in_flight: set[str] = set()  # array job ids submitted by this executor and not yet finished

    def parameters(self, n_cells: int) -> dict:
        s = self.settings
        params = {
            "job_name": f"vfbench-{self.run_name}",
            "time": time_limit_min(self.timeout_s),
            "array_parallelism": s.max_parallel or n_cells,
            # The job inherits the submitting environment (sbatch's default); the vfbench variables (the
            # cell start method, the test hooks) are set explicitly in case the cluster exports nothing.
            "setup": [f"export {k}={shlex.quote(v)}" for k, v in sorted(os.environ.items()) if k.startswith("VFBENCH_")],
        }
        if s.partition:
            params["partition"] = s.partition
        if s.gpus_per_cell:
            params["gpus_per_node"] = s.gpus_per_cell
        if s.extra:
            params["additional_parameters"] = {k: (v if v != "" else True) for k, v in s.extra}
        return params

    def submit(self, cells: list[CellSpec]) -> list:
        executor = self._submitit.SlurmExecutor(folder=self.folder / "%j")
        executor.update_parameters(**self.parameters(len(cells)))
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # submitit echoes sbatch's error; one line is enough
                jobs = executor.map_array(run_cell_job, cells)
        except self._submitit.core.utils.FailedJobError as exc:
            raise UserError(f"sbatch refused the job array: {_sbatch_error(str(exc))}") from None
        self._in_flight.add(_array_id(jobs[0].job_id))
        print(
            f"vfbench: {len(cells)} cells submitted as Slurm job {_array_id(jobs[0].job_id)} "
            f"(time limit {time_limit_min(self.timeout_s)} min; logs in {self.folder})",
            file=sys.stderr,
        )
        return jobs

    def run_batch(self, cells: list[CellSpec], on_record) -> None:
        jobs = self.submit(cells)
        waiting = {job.job_id: (job, cell) for job, cell in zip(jobs, cells)}
        arrays = sorted({_array_id(j) for j in waiting})
        seen: dict[str, tuple[str, float]] = {}  # job id -> (ended state, when first seen)
        states: dict[str, JobState] = {}
        t0 = last_sacct = time.time()
        while waiting:
            self._refresh()
            for jid, (job, cell) in list(waiting.items()):
                if job.paths.result_pickle.exists():
                    del waiting[jid]
                    on_record(cell, self._result(job, cell))
            if not waiting:
                break
            now = time.time()
            # Results are files (checked every poll); accounting is asked less often as the wave ages.
            if now - last_sacct >= min(30.0, max(2.0, (now - t0) / 20)):
                states.update(sacct_states(arrays))
                last_sacct = now
                for jid in waiting:
                    st = states.get(jid)
                    if st is not None and st.ended:
                        if seen.get(jid, ("",))[0] != st.state:
                            seen[jid] = (st.state, now)
                    else:
                        seen.pop(jid, None)
            for jid, (_state, since) in list(seen.items()):
                if jid in waiting and now - since >= states[jid].settle_s and not waiting[jid][0].paths.result_pickle.exists():
                    job, cell = waiting.pop(jid)
                    del seen[jid]
                    on_record(cell, self._killed(job, cell, states[jid]))
            if waiting:
                time.sleep(self.poll_s)
        self._in_flight.difference_update(arrays)

    def _refresh(self) -> None:
        # Make an NFS client re-read the folder, so a result written on a node shows up (as submitit does).
        try:
            self.folder.chmod(self.folder.stat().st_mode)
        except OSError:
            pass

    def _result(self, job, cell: CellSpec) -> Record:
        try:
            result = job.result()
        except Exception as exc:  # the job failed outside the cell function (e.g. could not import vfbench)
            text = str(exc).strip().splitlines()
            record = Record.for_cell(cell, "error", f"Slurm job {job.job_id} failed outside the cell:\n" + "\n".join(text[-12:]))
        else:
            record = result if isinstance(result, Record) else Record.for_cell(
                cell, "error", f"Slurm job {job.job_id} returned {type(result).__name__}, not a record"
            )
        return record.replace(extra={**record.extra, "slurm_job_id": job.job_id})

    def _killed(self, job, cell: CellSpec, st: JobState) -> Record:
        """A task that ended without a result: Slurm's state decides the status."""
        what = f"Slurm job {job.job_id} ended {st.describe()}"
        if st.state == "TIMEOUT":
            limit = f"{time_limit_min(self.timeout_s)} min (--timeout {self.timeout_s:g} s)"
            status, reason = "timeout", f"{what}: the time limit of {limit} was reached; killed"
        elif st.state == "OUT_OF_MEMORY":
            status, reason = "oom", f"out of memory: {what}"
        else:
            tail = log_tail(job.paths.stderr) or log_tail(job.paths.stdout)
            status, reason = "error", f"{what}, without a result\n{tail}".strip()
        return Record.for_cell(cell, status, reason, cell_s=float(st.elapsed_s) if st.elapsed_s else None, slurm_job_id=job.job_id)

    def cancel(self) -> None:
        """scancel the job arrays this executor submitted and that are not finished (Ctrl-C, SIGTERM)."""
        ids, self._in_flight = sorted(self._in_flight), set()
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True, timeout=60)
