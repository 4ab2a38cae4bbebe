"""The numbers and switches of `vfbench run`, checked one way wherever they come from: the command line,
a sweep YAML file, or a stored run.json being resumed. Typed (a whole-number option refuses 2.9), finite
(no nan, no inf) and bounded, so a bad value stops the command before any run folder exists."""

from __future__ import annotations

import math
import re

from vfbench.errors import UserError

# option -> (kind, least, most). Bounds are generous; they only keep values a timer or a loop can take.
BOUNDS = {
    "batch": (int, 1, 65536),
    "seed": (int, 0, 2**32 - 1),
    "timeout": (float, 0.001, 30 * 86400.0),  # a month: threading's waits overflow on inf
    "warmup": (int, 0, 10_000),
    "min_repeats": (int, 1, 1_000_000),
    "min_seconds": (float, 0.0, 86400.0),
}
_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def number(name: str, value) -> int | float:
    """`value` (int, float or text) as the option's kind, or a UserError naming what is accepted."""
    kind, least, most = BOUNDS[name]
    flag = "--" + name.replace("_", "-")
    what = "a whole number" if kind is int else "a finite number"
    bad = UserError(f"{flag} must be {what} from {_plain(least)} to {_plain(most)}, got {value!r}")
    if isinstance(value, bool):
        raise bad
    if isinstance(value, str):
        text = value.strip()
        if kind is int and not re.fullmatch(r"[+-]?\d+", text):
            raise bad
        try:
            value = kind(text)
        except ValueError:
            raise bad from None
    if not isinstance(value, (int, float)):
        raise bad
    if not math.isfinite(value):
        raise bad
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise bad  # YAML 'batch: 2.9' is refused, never truncated to 2
        value = int(value)
    else:
        value = float(value)
    if not least <= value <= most:
        raise bad
    return value


def _plain(x) -> str:
    return f"{x:g}" if abs(x) < 1e6 else str(int(x))


def switch(name: str, value) -> bool:
    """An on/off option: a YAML or JSON bool, or one of the words true/false, yes/no, on/off, 1/0."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (str, int)) and str(value).strip().lower() in _WORDS:
        return _WORDS[str(value).strip().lower()]
    raise UserError(f"--{name.replace('_', '-')} must be true or false (or yes/no, on/off), got {value!r}")


def check_stored_sweep(sweep, where) -> None:
    """A SweepSpec read back from run.json passes the same checks as a new one (resume must not crash)."""
    m = sweep.measure
    for name, value in (("batch", sweep.batch), ("seed", sweep.seed), ("timeout", sweep.timeout_s),
                        ("warmup", m.warmup_steps), ("min_repeats", m.min_repeats), ("min_seconds", m.min_seconds)):
        try:
            number(name, value)
        except UserError as exc:
            raise UserError(f"{where}: the stored sweep is not runnable: {exc}; start a new run instead") from None
