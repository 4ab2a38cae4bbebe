"""The one exception type that reaches a person: a one-line message, exit code 2, no traceback."""

from __future__ import annotations

import difflib
from typing import Iterable


class UserError(ValueError):
    """Bad input. The message says what was wrong and what would be accepted."""


def closest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """'did you mean' text listing the closest valid choices (empty when nothing is close)."""
    matches = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    return f" (did you mean {', '.join(repr(m) for m in matches)}?)" if matches else ""
