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
    "OMP_NUM_THREADS=1 python benchmarks/proxy_honesty.py run findings1 findings2 && "
    "python benchmarks/proxy_honesty.py tables"
)
HEADER = "| finding"
PROXY_REGION = "the synthetic proxy task only (ViT w64 d2, T = 16, 250 steps, mean over seeds); the paper's data is not available"


@dataclass(frozen=True)
class Finding:
    claim: str
    rule: str
    figure: str
    seeds: str
    agrees: bool | None  # None: not run


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
        if len(cells) != 5:
            continue
        claim, rule, figure, seeds, word = cells
        out.append(Finding(claim, rule, figure, seeds, {"agrees": True, "disagrees": False}.get(word)))
    return out


def verdict_of(f: Finding) -> tuple[str, str]:
    if f.agrees is None:
        return CANNOT, "its proxy cells were not run"
    if f.agrees:
        return HOLDS_ONLY, PROXY_REGION
    return CONTRADICTED, f"on {PROXY_REGION}"
