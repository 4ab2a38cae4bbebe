"""What `vfbench advise` considers: every registered method and recipe, plus compositions of the levers
that matter at long T (masking ratio, last-k tuning, checkpointing, bf16), grouped by identical step.

Compositions are built with the registry's own `compose`, so a combination it refuses (two methods on
one axis, e.g. checkpoint+bf16 while both are runtime methods) is listed as "cannot compose" with the
registry's reason instead of being guessed at. Candidates whose step is identical (joint, shortvivit,
attn_kernel(kind=sdpa); bf16 when the cell is already bf16) are one option with aliases: the estimate
traces them once anyway (estimate/sweep.trace_key).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from vfbench.errors import UserError
from vfbench.registry import BASELINE, compose, expand_methods
from vfbench.spec import CellSpec

MASK_RATIOS = (0.25, 0.5, 0.75)  # the paper's masking grid (arXiv:2312.07395 sweeps 0 to 75%)
LAST_K = "last_k(k=4)"  # LongViViT tunes the last 4 layers (arXiv:2312.07395, Table 3)
RUNTIME = ("checkpoint", "bf16")

# Tiers of the recommendation rule when no accuracy is known, most faithful first.
LOSSLESS, PAPER_LEVERS, OTHER = 0, 1, 2
TIER_TEXT = {
    LOSSLESS: "keeps every token and tunes every parameter (runtime methods only: checkpointing, attention kernel, bf16)",
    PAPER_LEVERS: "token masking and/or last-k tuning, the levers the paper finds cheapest in accuracy "
                  "(arXiv:2312.07395, Figs 2-5: joint attention is robust up to 75% masking; tuning the last 4 layers "
                  "costs no accuracy)",
    OTHER: "changes attention, patching or tuning otherwise (the paper finds larger accuracy drops)",
}
_LEVERS = {"mask", "tube_mask", "last_k"}


@dataclass(frozen=True)
class Candidate:
    label: str  # the composition's canonical label (a recipe's name when it is one)
    same_as: tuple[str, ...]  # other labels whose step is identical
    tier: int


@dataclass(frozen=True)
class Refused:
    label: str  # the composition as written
    reason: str  # the registry's own words


def tier_of(label: str) -> int:
    changed = [m for m in compose(label).methods if m.name != BASELINE.get(m.axis)]
    if all(m.axis == "runtime" for m in changed):
        return LOSSLESS
    if all(m.axis == "runtime" or m.name in _LEVERS for m in changed):
        return PAPER_LEVERS
    return OTHER


def composition_texts(dtype: str) -> list[str]:
    """joint x {no mask, mask 0.25/0.5/0.75} x {full, last_k} x runtime {none, checkpoint, bf16,
    checkpoint+bf16}; bf16 only when the cell is fp32 (on a bf16 cell it is the same step)."""
    runtimes = [(), ("checkpoint",)]
    if dtype != "bf16":
        runtimes += [("bf16",), RUNTIME]
    masks = [()] + [(f"mask(ratio={r})",) for r in MASK_RATIOS]
    out = []
    for mask, tune, rt in itertools.product(masks, [(), (LAST_K,)], runtimes):
        out.append("+".join(("joint",) + mask + tune + rt))
    return out


def candidates(cell: CellSpec, methods: str | None = None) -> tuple[list[Candidate], list[Refused]]:
    """Registered methods and recipes first (as `--methods all`), then the compositions; grouped by step.
    `methods` (as `vfbench run --methods`) replaces that set, compositions included. `cell` gives model,
    batch, dtype, device and seed (its method and frames are ignored)."""
    from vfbench.estimate.sweep import trace_key

    labels = [c.label for c in expand_methods(methods or "all")]
    refused = []
    for text in () if methods else composition_texts(cell.dtype):
        try:
            labels.append(compose(text).label)
        except UserError as exc:
            refused.append(Refused(text, str(exc)))
    groups: dict[tuple, list[str]] = {}
    for label in dict.fromkeys(labels):
        try:
            key = trace_key(CellSpec(cell.model, label, cell.frames, cell.batch, cell.dtype, cell.device, cell.seed))
        except UserError as exc:  # a method that cannot even configure this model
            refused.append(Refused(label, str(exc)))
            continue
        groups.setdefault(key, []).append(label)
    return [Candidate(g[0], tuple(g[1:]), tier_of(g[0])) for g in groups.values()], refused
