"""The results store: `<out>/<run-id>/records.jsonl` (append-only) plus `run.json` (sweep + environment).

Guarantees (README "Robustness"):
- A record is appended as one whole line, flushed and fsynced; a write that fails (disk full, read-only)
  is rolled back to the previous length and raised as StoreWriteError, so no torn line and no false
  record is left behind, and the cell stays missing (a resume measures it).
- A last line without its newline is kept when it is a complete record (the newline is added) and set
  aside to `records.torn` when it is a torn write (its cell re-runs on resume).
- Every line read is checked against the record schema (schema.py): a malformed line is warned about and
  counted (`bad_lines`), never a traceback and never a record.
- One sweep at a time holds the run folder's lock, taken before anything is written into the folder.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import warnings
from pathlib import Path

from vfbench.errors import UserError
from vfbench.faults import store_fault
from vfbench.record import Record
from vfbench.schema import record_problem, run_info_problem
from vfbench.spec import SCHEMA_VERSION

RECORDS = "records.jsonl"
RUN = "run.json"
LOCK = ".lock"
TORN = "records.torn"  # torn tails cut from records.jsonl, kept for a person to look at
MIN_FREE_BYTES = 256 << 10  # below this, stop before measuring a cell whose record might not fit


class MalformedRecordWarning(UserWarning):
    pass


TornRecordWarning = MalformedRecordWarning  # the earlier name


class StoreWriteError(Exception):
    """The run folder cannot take a write (disk full, read-only). One line; the store is left valid."""


def _write_error(what: Path, exc: OSError) -> StoreWriteError:
    return StoreWriteError(f"cannot write {what}: {exc.strerror or exc}")


class RunStore:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock_fd: int | None = None
        self.bad_lines: list[tuple[int, str]] = []  # (line number, why) of the last records() call

    @property
    def records_path(self) -> Path:
        return self.path / RECORDS

    @property
    def run_path(self) -> Path:
        return self.path / RUN

    def exists(self) -> bool:
        return self.run_path.exists()

    def prepare(self) -> None:
        """Make the folder and check it takes a file (an unwritable location is a UserError)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-probe"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise UserError(f"cannot write results to {self.path}: {exc.strerror}; choose a writable folder with --out") from None

    def create(self, run_info: dict) -> None:
        """Make the folder and write run.json (refuses an unwritable location with a UserError)."""
        self.prepare()
        self.write_run_info(run_info)

    def claim(self) -> None:
        """A new run under a given id: folder, lock, and only then the check that no run is there yet,
        so of two runs started together with one id the loser writes nothing."""
        self.prepare()
        self.lock()
        if self.exists():
            self.unlock()
            raise UserError(f"run folder {self.path} already exists; resume it with --resume {self.path.name} "
                            "or pick another --run-id")

    def write_run_info(self, run_info: dict) -> None:
        tmp = self.run_path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps({"schema_version": SCHEMA_VERSION, **run_info}, indent=2, default=str))
            os.replace(tmp, self.run_path)  # all or nothing: run.json is never half written
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _write_error(self.run_path, exc) from None

    def run_info(self) -> dict:
        if not self.run_path.exists():
            raise UserError(f"{self.path} is not a vfbench run (no {RUN}); give a folder made by 'vfbench run'")
        try:
            info = json.loads(self.run_path.read_text(errors="replace"))
            problem = run_info_problem(info)
        except json.JSONDecodeError as exc:
            problem = f"not valid JSON ({exc.msg} at line {exc.lineno}; truncated?)"
        if problem:
            raise UserError(f"{self.run_path} is damaged: {problem}; its records in {RECORDS} are intact, but the "
                            "run's settings are lost: restore run.json or start a new run")
        _check_schema(info.get("schema_version", 1), self.run_path)
        return info

    def clean_leftovers(self) -> None:
        """Scratch folders of cells whose sweep was killed (call with the lock held)."""
        for p in self.path.glob("cell-*"):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
        for name in (".write-probe", RUN.replace(".json", ".tmp")):
            (self.path / name).unlink(missing_ok=True)

    # -- locking ----------------------------------------------------------------------
    def lock(self) -> None:
        """Hold an exclusive lock on the run folder for this process's lifetime (released on exit)."""
        try:
            fd = os.open(self.path / LOCK, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as exc:
            raise UserError(f"cannot lock {self.path}: {exc.strerror}; choose a writable folder with --out") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(
                f"{self.path} is in use by another vfbench run (its lock is held); wait for it or use another --run-id"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        except OSError:
            pass  # the pid is a courtesy for a person; the lock itself is held
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- records ----------------------------------------------------------------------
    def check_writable(self) -> None:
        """Before measuring a cell: records.jsonl takes an append and the disk has room for a record."""
        try:
            os.close(os.open(self.records_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
            st = os.statvfs(self.path)
        except OSError as exc:
            raise _write_error(self.records_path, exc) from None
        if st.f_bavail * st.f_frsize < MIN_FREE_BYTES:
            raise StoreWriteError(f"cannot write {self.records_path}: less than {MIN_FREE_BYTES >> 10} KiB free on its disk")

    def append(self, record: Record) -> None:
        line = (json.dumps(record.to_dict(), default=str, allow_nan=True) + "\n").encode()
        self._heal_tail()
        try:
            fd = os.open(self.records_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _write_error(self.records_path, exc) from None
        try:
            size = os.fstat(fd).st_size
            try:
                if store_fault(record.method, record.frames) == "store_full":  # test hook: half a line, then ENOSPC
                    os.write(fd, line[: len(line) // 2])
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                done = 0
                while done < len(line):
                    done += os.write(fd, line[done:])
                os.fsync(fd)
            except OSError as exc:
                try:
                    os.ftruncate(fd, size)  # no torn line: the file is as it was before this record
                except OSError:
                    pass
                raise _write_error(self.records_path, exc) from None
        finally:
            os.close(fd)

    def _heal_tail(self) -> None:
        """The file should end in a newline. A complete record without one gets it; a torn write (power
        loss mid-line) is cut and set aside to records.torn, with a warning, and its cell re-runs."""
        p = self.records_path
        try:
            if not p.exists() or p.stat().st_size == 0:
                return
            with open(p, "rb+") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) == b"\n":
                    return
                data = f.seek(0) or f.read()
                cut = data.rfind(b"\n") + 1
                tail = data[cut:]
                if _line_problem(tail) is None:
                    f.seek(0, os.SEEK_END)
                    f.write(b"\n")
                    f.flush()
                    os.fsync(f.fileno())
                    return
                with open(self.path / TORN, "ab") as side:
                    side.write(tail + b"\n")
                f.truncate(cut)
                os.fsync(f.fileno())
        except OSError as exc:
            raise _write_error(p, exc) from None
        warnings.warn(f"{p}: a torn last line ({len(tail)} bytes) was moved to {TORN}; its cell is measured again",
                      MalformedRecordWarning, stacklevel=3)

    def records(self) -> list[Record]:
        """Every valid record, in file order. Malformed lines are skipped, counted in `bad_lines` and
        warned about in one warning (their cells have no record, so a resume measures them)."""
        self.bad_lines = []
        if not self.records_path.exists():
            return []
        out = []
        with open(self.records_path, "rb") as f:
            for n, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                data, problem = _parse(raw)
                if problem:
                    self.bad_lines.append((n, problem))
                    continue
                _check_schema(data.get("schema_version", 1), self.records_path)
                out.append(Record.from_dict(data))
        if self.bad_lines:
            first = "; ".join(f"line {n}: {why}" for n, why in self.bad_lines[:3])
            more = " ..." if len(self.bad_lines) > 3 else ""
            warnings.warn(
                f"{self.records_path}: skipped {len(self.bad_lines)} malformed line(s) ({first}{more}); "
                "their cells count as not run and a resume measures them", MalformedRecordWarning, stacklevel=2,
            )
        return out

    def latest_by_key(self) -> dict[str, Record]:
        return {r.key: r for r in self.records()}


def _parse(raw: bytes) -> tuple[dict | None, str | None]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, "not JSON (a torn or corrupted line)"
    return data, record_problem(data)


def _line_problem(raw: bytes) -> str | None:
    return _parse(raw)[1]


def new_run_folder(out: Path, name: str) -> Path:
    """Make and return a fresh run folder `out/name` (or name-2, name-3, ...): mkdir is atomic, so two
    runs started in the same second never share a folder."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write results to {out}: {exc.strerror}; choose a writable folder with --out") from None
    for i in range(1, 1000):
        path = out / (name if i == 1 else f"{name}-{i}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise UserError(f"cannot write results to {out}: {exc.strerror}; choose a writable folder with --out") from None
        RunStore(path).prepare()
        return path
    raise UserError(f"too many runs named {name}* under {out}; pass --run-id")


def _check_schema(version: int, where: Path) -> None:
    if version > SCHEMA_VERSION:
        raise UserError(
            f"{where} was written by a newer vfbench (record schema {version}, this one reads up to {SCHEMA_VERSION}); "
            "upgrade vfbench to read it"
        )
