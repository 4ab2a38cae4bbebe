"""The results store: `<out>/<run-id>/records.jsonl` (append-only) plus `run.json` (sweep + environment).

Appends are whole lines written, flushed and fsynced, so a killed sweep leaves no torn record; a torn
last line (power loss mid-write) is detected on load, skipped with a warning, and its cell re-runs on
resume. One sweep at a time holds the run folder's lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import warnings
from pathlib import Path

from vfbench.errors import UserError
from vfbench.runner.record import Record
from vfbench.spec import SCHEMA_VERSION

RECORDS = "records.jsonl"
RUN = "run.json"
LOCK = ".lock"


class TornRecordWarning(UserWarning):
    pass


class RunStore:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock_fd: int | None = None

    @property
    def records_path(self) -> Path:
        return self.path / RECORDS

    @property
    def run_path(self) -> Path:
        return self.path / RUN

    def exists(self) -> bool:
        return self.run_path.exists()

    def create(self, run_info: dict) -> None:
        """Make the folder and write run.json (refuses an unwritable location with a UserError)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-probe"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise UserError(f"cannot write results to {self.path}: {exc.strerror}; choose a writable folder with --out") from None
        self.write_run_info(run_info)

    def write_run_info(self, run_info: dict) -> None:
        tmp = self.run_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"schema_version": SCHEMA_VERSION, **run_info}, indent=2, default=str))
        os.replace(tmp, self.run_path)

    def run_info(self) -> dict:
        if not self.run_path.exists():
            raise UserError(f"{self.path} is not a vfbench run (no {RUN}); give a folder made by 'vfbench run'")
        info = json.loads(self.run_path.read_text())
        _check_schema(info.get("schema_version", 1), self.run_path)
        return info

    # -- locking ----------------------------------------------------------------------
    def lock(self) -> None:
        """Hold an exclusive lock on the run folder for this process's lifetime (released on exit)."""
        fd = os.open(self.path / LOCK, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(
                f"{self.path} is in use by another vfbench run (its lock is held); wait for it or use another --run-id"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- records ----------------------------------------------------------------------
    def append(self, record: Record) -> None:
        line = json.dumps(record.to_dict(), default=str, allow_nan=True) + "\n"
        self._heal_torn_tail()
        with open(self.records_path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def _heal_torn_tail(self) -> None:
        """If the file does not end in a newline (a torn write), cut the partial line before appending."""
        p = self.records_path
        if not p.exists() or p.stat().st_size == 0:
            return
        with open(p, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
            data = f.seek(0) or f.read()
            cut = data.rfind(b"\n") + 1
            f.truncate(cut)

    def records(self) -> list[Record]:
        """All complete records; a torn or unreadable line is skipped with a warning (its cell re-runs)."""
        if not self.records_path.exists():
            return []
        out = []
        with open(self.records_path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError:
                    warnings.warn(
                        f"{self.records_path}:{n}: skipping a torn or unreadable record; its cell will be re-run on resume",
                        TornRecordWarning, stacklevel=2,
                    )
                    continue
                _check_schema(data.get("schema_version", 1), self.records_path)
                out.append(Record.from_dict(data))
        return out

    def latest_by_key(self) -> dict[str, Record]:
        return {r.key: r for r in self.records()}


def _check_schema(version: int, where: Path) -> None:
    if version > SCHEMA_VERSION:
        raise UserError(
            f"{where} was written by a newer vfbench (record schema {version}, this one reads up to {SCHEMA_VERSION}); "
            "upgrade vfbench to read it"
        )
