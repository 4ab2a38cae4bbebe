"""The report's "Which recipe fits the budget" section: shown when `vfbench advise --from RUN` has written
advice.json into the run folder (the advice is computed there, never here: a report re-runs nothing)."""

from __future__ import annotations

import json

from vfbench.report.document import Note, Section
from vfbench.report.load import Run

ADVICE_JSON = "advice.json"


def advice_sections(run: Run) -> tuple[Section, ...]:
    path = run.home / ADVICE_JSON
    if not path.is_file():
        return ()
    from vfbench.advice.advise import Advice
    from vfbench.advice.render import TITLE, section

    try:
        advice = Advice.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:  # a stale or hand-edited file must not break the report
        return (Section(TITLE, (Note(f"{path.name} could not be read ({type(exc).__name__}: {exc}); rerun "
                                     f"`vfbench advise --from {run.home}` to refresh it."),)),)
    return (section(advice),)
