"""The paper's accuracy findings (arXiv:2312.07395, Sec. 4, Figs 2-5), as the proxy task checked them.

vfbench cannot train on the paper's data, so accuracy claims are checked only on its synthetic proxy task
(vfbench/tasks). `python benchmarks/proxy_honesty.py tables` writes each finding's verdict at each setting
to results/proxy-honesty/findings.json (next to honesty.md, which shows the same rows as a table); the rows
here are read from that file. Where it is missing the rows say "cannot check" with the commands that
would write it. How a finding's verdicts at its settings combine into one word lives here, once, for the
table and for the claims.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from vfbench.claims.rules import CANNOT, CONTRADICTED, HOLDS_ONLY
from vfbench.errors import UserError

PROXY_COMMAND = (
    "OMP_NUM_THREADS=1 python benchmarks/proxy_honesty.py run findings findings2x needle needle2x && "
    "python benchmarks/proxy_honesty.py tables"
)
PROXY_REGION = ("the synthetic proxy task only (ViT w64 d2, T = 16, trained until validation R@1 plateaus, at most 500 steps, "
                "mean over seeds); the paper's data is not available")
# The settings a finding is checked at, by the proxy plan that trains them: the default, twice its
# training budget, and the earlier task whose events last 2 frames (little redundancy) at both budgets.
DEFAULT, LARGER, LOW, LOW_LARGER = "findings", "findings2x", "needle", "needle2x"
AGREES, DISAGREES, NOT_RUN = "agrees", "disagrees", "not run"
FORMAT = "vfbench-proxy-findings/1"


@dataclass(frozen=True)
class Finding:
    claim: str
    rule: str
    figure: str  # the default setting's figures, as the table shows them
    seeds: tuple[int, ...]
    verdicts: dict = field(default_factory=dict)  # plan -> agrees | disagrees | not run

    def at(self, plan: str) -> str:
        return self.verdicts.get(plan, NOT_RUN)

    @property
    def word(self) -> str:
        return final_word(self.verdicts)


def low_redundancy(verdicts: dict) -> str:
    """The 2-frame events' verdict: theirs where both caps give it (or only one ran), else "depends on budget"."""
    low, larger = verdicts.get(LOW, NOT_RUN), verdicts.get(LOW_LARGER, NOT_RUN)
    if low != NOT_RUN and larger not in (NOT_RUN, low):
        return "depends on budget"
    return low


def final_word(verdicts: dict) -> str:
    """One word per finding: the default setting's verdict, unless twice the budget gives another ("depends on
    budget") or the 2-frame events give another ("<default>; depends on redundancy (2-frame events: <theirs>)")."""
    default = verdicts.get(DEFAULT, NOT_RUN)
    if default == NOT_RUN:
        return NOT_RUN
    if verdicts.get(LARGER, NOT_RUN) not in (NOT_RUN, default):
        return "depends on budget"
    low = low_redundancy(verdicts)
    if low not in (NOT_RUN, default):
        return f"{default}; depends on redundancy (2-frame events: {low})"
    return default


def write_findings(path: Path, findings: list[Finding], settings: dict[str, str], command: str) -> None:
    rows = [{"claim": f.claim, "rule": f.rule, "figure": f.figure, "seeds": list(f.seeds), "verdicts": f.verdicts,
             "verdict": f.word} for f in findings]
    body = {"format": FORMAT, "command": command, "settings": settings, "findings": rows}
    path.write_text(json.dumps(body, indent=1) + "\n")


def read_findings(path: Path) -> list[Finding]:
    """The findings in `path` (findings.json); [] when the file is missing."""
    if not path.is_file():
        return []
    try:
        body = json.loads(path.read_text())
        if body.get("format") != FORMAT:
            raise ValueError(f"format {body.get('format')!r}")
        return [Finding(r["claim"], r["rule"], r["figure"], tuple(r["seeds"]), dict(r["verdicts"])) for r in body["findings"]]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{path} is not a proxy findings file ({e}); accepted: the findings.json that "
                        "'python benchmarks/proxy_honesty.py tables' writes (results/proxy-honesty/findings.json)") from None


def verdict_of(f: Finding) -> tuple[str, str]:
    default, low = f.at(DEFAULT), low_redundancy(f.verdicts)
    if default == NOT_RUN:
        return CANNOT, "its proxy cells were not run"
    if f.at(LARGER) not in (NOT_RUN, default):
        return CANNOT, "the proxy's verdict changes between its default and twice its training budget"
    other = f"depends on redundancy (2-frame events: {low})" if low not in (NOT_RUN, default) else ""
    if default == AGREES:
        return HOLDS_ONLY, PROXY_REGION + (f"; {other}" if other else "")
    if low == AGREES:  # disagrees at the default setting, agrees with 2-frame events: it holds there only
        return HOLDS_ONLY, f"{PROXY_REGION}; only with 2-frame events, not at the default setting ({other})"
    return CONTRADICTED, f"on {PROXY_REGION}" + (f"; {other}" if other else "")
