"""The paper's accuracy findings, as the proxy task checked them (results/proxy-honesty/honesty.md).

vfbench cannot train on the paper's data, so accuracy claims are checked only on its synthetic proxy task
(vfbench/tasks): the rows here are read from the generated findings table, with its rule and figures.
Where that file is missing the rows say "cannot check" with the commands that would write it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vfbench.claims.rules import CANNOT, CONTRADICTED, HOLDS_ONLY

PROXY_COMMAND = (
    "OMP_NUM_THREADS=1 python benchmarks/proxy_honesty.py run findings findings2x needle needle2x && "
    "python benchmarks/proxy_honesty.py tables"
)
HEADER = "| finding"
PROXY_REGION = ("the synthetic proxy task only (ViT w64 d2, T = 16, trained until validation R@1 plateaus, at most 500 steps, "
                "mean over seeds); the paper's data is not available")


@dataclass(frozen=True)
class Finding:
    claim: str
    rule: str
    figure: str
    seeds: str
    agrees: bool | None  # None: not run, or the verdict changes with the training budget
    word: str = ""  # the verdict as written: agrees | disagrees | depends on budget | "<verdict>; depends on redundancy (...)"


def read_findings(path: Path) -> list[Finding]:
    """The rows of the findings table (its header starts with '| finding'); [] when the file is missing."""
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(HEADER)), None)
    if start is None:
        return []
    out = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 5:
            continue
        claim, rule, figure, seeds, word = cells[:5]  # later columns: the verdict at each setting
        first = word.split(";")[0].strip()
        out.append(Finding(claim, rule, figure, seeds, {"agrees": True, "disagrees": False}.get(first), word))
    return out


def verdict_of(f: Finding) -> tuple[str, str]:
    if f.word.startswith("depends on budget"):
        return CANNOT, "the proxy's verdict changes between its default and twice its training budget"
    if f.agrees is None:
        return CANNOT, "its proxy cells were not run"
    other = f.word.split(";", 1)[1].strip() if ";" in f.word else ""  # e.g. "depends on redundancy (2-frame events: agrees)"
    region = PROXY_REGION + (f"; {other}" if other else "")
    if f.agrees:
        return HOLDS_ONLY, region
    if other.endswith(": agrees)"):  # disagrees at the default setting, agrees at the other one: it holds there only
        setting = other[other.find("(") + 1: other.rfind(":")]
        return HOLDS_ONLY, f"{PROXY_REGION}; only with {setting}, not at the default setting ({other})"
    return CONTRADICTED, f"on {region}"
