"""What a valid record line and a valid run.json look like. Every read checks them, so a malformed line
(`123`, `null`, `{"foo": 1}`, `"frames": "abc"`, a string schema_version) is reported and counted, never
a traceback and never taken for a measurement; its cell has no record, so a resume measures it again."""

from __future__ import annotations

import typing
from dataclasses import fields

from vfbench.record import STATUSES, Record

_REQUIRED = ("key", "status", "method", "model", "frames", "batch", "dtype", "device")
_WHOLE = ("frames", "batch", "seed", "schema_version")  # cell identity: whole numbers only


def _accepts(name: str, kind) -> tuple[type, ...] | None:
    """The JSON types a Record field of annotation `kind` takes (None: anything)."""
    args = [a for a in typing.get_args(kind) if a is not type(None)] or [kind]
    out = []
    for a in args:
        if a is float or (a is int and name not in _WHOLE):  # a counter written as 1e12 is still a number
            out += [int, float]
        elif a in (int, str):
            out.append(a)
        else:
            return None
    return tuple(out)


_HINTS = typing.get_type_hints(Record)
_TYPES = {f.name: _accepts(f.name, _HINTS[f.name]) for f in fields(Record) if f.name != "extra"}


def record_problem(data) -> str | None:
    """Why `data` (one parsed line) is not a record, or None when it is one."""
    if not isinstance(data, dict):
        return f"not a JSON object but {type(data).__name__}"
    for name in _REQUIRED:
        if data.get(name) is None:
            return f"no {name!r}"
    for name, types in _TYPES.items():
        v = data.get(name)
        if v is None or types is None:
            continue
        if isinstance(v, bool) or not isinstance(v, types):
            return f"{name} is {v!r}, not {' or '.join(t.__name__ for t in types)}"
    if data["status"] not in STATUSES:
        return f"status {data['status']!r} is not one of {', '.join(STATUSES)}"
    if data["frames"] <= 0 or data["batch"] <= 0:
        return "frames and batch must be positive"
    if data.get("schema_version", 1) < 1:
        return f"schema_version {data['schema_version']!r} is not 1 or more"
    return None


def run_info_problem(data) -> str | None:
    """Why `data` (parsed run.json) is not a run's info, or None when it is."""
    if not isinstance(data, dict):
        return f"not a JSON object but {type(data).__name__}"
    version = data.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        return f"schema_version is {version!r}, not a whole number"
    for name in ("sweep", "env"):
        if data.get(name) is not None and not isinstance(data[name], dict):
            return f"{name} is {type(data[name]).__name__}, not an object"
    sweep = data.get("sweep") or {}
    if not _list_of(sweep.get("methods", []), str):
        return f"sweep.methods is {sweep['methods']!r}, not a list of method labels"
    if not _list_of(sweep.get("frames", []), int) or any(t <= 0 for t in sweep.get("frames", [])):
        return f"sweep.frames is {sweep['frames']!r}, not a list of positive whole numbers"
    for name in ("command", "started", "finished"):
        if data.get(name) is not None and not isinstance(data[name], str):
            return f"{name} is {data[name]!r}, not text"
    return None


def _list_of(value, kind) -> bool:
    return isinstance(value, list) and all(isinstance(v, kind) and not isinstance(v, bool) for v in value)
