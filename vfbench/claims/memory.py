"""The paper's memory claims (arXiv:2312.07395, Figs 2-5), each with the cells that decide it and its rule.

Each claim's figure is computed from estimated peaks at one (attention kernel, per-device batch) setting,
for the ViT-B testbed the paper uses ("base") and, for the scaling claims, ViT-L ("large"). The paper
states neither its attention kernel nor its per-device batch, so each claim is evaluated over both and
the verdict says where it holds (rules.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from vfbench.claims.grid import GridSettings, Lookup, cell
from vfbench.claims.rules import Outcome, Setting, above, at_most, below, in_range
from vfbench.spec import CellSpec

MASK = "mask(ratio=0.75)"
FST = "factorized_self_attention"
SHORT, LONG, LONG_L = 16, 128, 256  # the design-space testbed, the ViT-B long analysis, LongViViT-L
BUDGET_GIB = 16.0  # "would fit on a 16GB device": 16 GiB, as a 16 GB accelerator's memory is counted


@dataclass(frozen=True)
class Need:
    role: str  # base | large
    method: str
    frames: int


@dataclass(frozen=True)
class MemoryClaim:
    id: str
    claim: str
    paper: str  # the paper's figure, as it states it
    needs: tuple  # Need, ...
    value: Callable[[Lookup], float]
    holds: Callable[[float], bool]
    rule: str  # the rule in words
    unit: str  # how the figure prints: "x", " GiB", "M"
    per_setting: bool = True  # False: the figure depends on neither kernel nor batch (parameter counts)


def _ratio(a: tuple, b: tuple) -> Callable[[Lookup], float]:
    """peak(a) / peak(b), each (role, method, frames)."""
    return lambda lk: lk.peak_gib(*a) / lk.peak_gib(*b)


def _growth(method: str) -> Callable[[Lookup], float]:
    """Peak at ViT-L over peak at ViT-B (16 frames)."""
    return lambda lk: lk.peak_gib("large", method, SHORT) / lk.peak_gib("base", method, SHORT)


def _fst_over_joint_at_large(lk: Lookup) -> float:
    return lk.peak_gib("large", FST, SHORT) / lk.peak_gib("large", "joint", SHORT)


def _peft_growth(method: str, whose: str) -> "MemoryClaim":
    """ViT-B -> ViT-L: a PEFT method's memory grows less than full fine-tuning's."""
    return MemoryClaim(
        f"growth_{method}", f"ViT-B -> ViT-L: {whose} memory scales better than full fine-tuning (16 frames)",
        "PEFT scales better (Fig 4)",
        _needs(("base", "joint", SHORT), ("large", "joint", SHORT), ("base", method, SHORT), ("large", method, SHORT)),
        lambda lk: _growth(method)(lk) / _growth("joint")(lk), below(1.0), f"growth({method}) / growth(joint) < 1", "x")


def _needs(*items) -> tuple:
    return tuple(Need(*i) for i in items)


CLAIMS: tuple[MemoryClaim, ...] = (
    MemoryClaim(
        "mask75", "75% input masking saves 2-3x memory (ViT-B, 16 frames; joint vs joint+mask 0.75)", "2-3x (Figs 2-5)",
        _needs(("base", "joint", SHORT), ("base", MASK, SHORT)),
        _ratio(("base", "joint", SHORT), ("base", MASK, SHORT)), in_range(2.0, 3.0),
        "peak(joint) / peak(mask 0.75) is 2.0-3.0 (one decimal)", "x"),
    MemoryClaim(
        "last4", "Tuning only the last 4 layers saves a further ~3x on top of 75% masking (ViT-B, 128 frames)",
        "~3x further (Figs 2-5)",
        _needs(("base", MASK, LONG), ("base", "longvivit", LONG)),
        _ratio(("base", MASK, LONG), ("base", "longvivit", LONG)), in_range(2.5, 3.5),
        "peak(mask 0.75) / peak(mask 0.75 + last 4 layers) is 2.5-3.5", "x"),
    MemoryClaim(
        "fst_params_b", "FST adds ~28M parameters to ViT-B (a temporal MSA + LN per layer)", "+28M (4D²+6D+1 per layer)",
        _needs(("base", "joint", SHORT), ("base", FST, SHORT)),
        lambda lk: (lk.params("base", FST) - lk.params("base", "joint")) / 1e6, in_range(27.5, 28.5),
        "FST minus joint parameters rounds to 28M", "M", per_setting=False),
    MemoryClaim(
        "fst_params_l", "FST adds ~101M parameters to ViT-L", "+101M (4D²+6D+1 per layer)",
        _needs(("large", "joint", SHORT), ("large", FST, SHORT)),
        lambda lk: (lk.params("large", FST) - lk.params("large", "joint")) / 1e6, in_range(100.5, 101.5),
        "FST minus joint parameters rounds to 101M", "M", per_setting=False),
    MemoryClaim(
        "fst_memory", "Factorized attention (FST) needs more memory than joint attention (ViT-B, 16 frames)",
        "more: 'significant memory overhead' (Fig 4)",
        _needs(("base", "joint", SHORT), ("base", FST, SHORT)),
        _ratio(("base", FST, SHORT), ("base", "joint", SHORT)), above(1.0), "peak(FST) / peak(joint) > 1", "x"),
    MemoryClaim(
        "adapter_vs_mask", "MLP adapters save less memory than 75% masking (ViT-B, 16 frames)", "less saving (Fig 3)",
        _needs(("base", "adapter", SHORT), ("base", MASK, SHORT)),
        _ratio(("base", "adapter", SHORT), ("base", MASK, SHORT)), above(1.0), "peak(adapter) / peak(mask 0.75) > 1", "x"),
    MemoryClaim(
        "lora_vs_mask", "LoRA saves less memory than 75% masking (ViT-B, 16 frames)", "less saving (Fig 3)",
        _needs(("base", "lora", SHORT), ("base", MASK, SHORT)),
        _ratio(("base", "lora", SHORT), ("base", MASK, SHORT)), above(1.0), "peak(LoRA) / peak(mask 0.75) > 1", "x"),
    MemoryClaim(
        "tubevit_vs_mask", "TubeViT needs more memory than 75% masking (ViT-B, 16 frames)", "more (Fig 3)",
        _needs(("base", "tubevit", SHORT), ("base", MASK, SHORT)),
        _ratio(("base", "tubevit", SHORT), ("base", MASK, SHORT)), above(1.0), "peak(TubeViT) / peak(mask 0.75) > 1", "x"),
    MemoryClaim(
        "growth_jst_frame", "ViT-B -> ViT-L: joint attention's memory grows like frame-level's (16 frames)",
        "similar growth (Fig 4)",
        _needs(("base", "joint", SHORT), ("large", "joint", SHORT), ("base", "frame_avg", SHORT), ("large", "frame_avg", SHORT)),
        lambda lk: _growth("joint")(lk) / _growth("frame_avg")(lk), in_range(0.8, 1.25),
        "growth(joint) / growth(frame-level) is 0.8-1.25 (growth = peak at ViT-L / peak at ViT-B)", "x"),
    MemoryClaim(
        "growth_fst", "ViT-L: FST has a large memory overhead over joint attention (16 frames)", "large overhead (Fig 4)",
        _needs(("large", "joint", SHORT), ("large", FST, SHORT)),
        _fst_over_joint_at_large, above(1.2), "peak(FST) / peak(joint) at ViT-L > 1.2", "x"),
    *(_peft_growth("adapter", "adapters'"), _peft_growth("lora", "LoRA's")),
    MemoryClaim(
        "fits16_b", "The chosen recipe (75% masking + last 4 layers) fits a 16 GB device at 128 frames (ViT-B)",
        "fits 16 GB at 128+ frames (Fig 3 red line)",
        _needs(("base", "longvivit", LONG),), lambda lk: lk.peak_gib("base", "longvivit", LONG), at_most(BUDGET_GIB),
        "estimated peak <= 16 GiB", " GiB"),
    MemoryClaim(
        "fits16_l", "LongViViT-L (75% masking + last 4 layers) at 256 frames fits a 16 GB device (ViT-L)",
        "fits 16 GB at 128+ frames (Fig 3); LongViViT-L runs 256 frames (Table 3)",
        _needs(("large", "longvivit", LONG_L),), lambda lk: lk.peak_gib("large", "longvivit", LONG_L), at_most(BUDGET_GIB),
        "estimated peak <= 16 GiB", " GiB"),
)


def settings_of(claim: MemoryClaim, g: GridSettings) -> list[tuple[str, int]]:
    return [(k, b) for k in g.kernels for b in g.batches] if claim.per_setting else [("sdpa", g.batches[0])]


def available(claim: MemoryClaim, g: GridSettings) -> bool:
    return all(g.model(n.role) for n in claim.needs)


def claim_cells(claim: MemoryClaim, g: GridSettings) -> list[CellSpec]:
    if not available(claim, g):
        return []
    return [cell(g, n.role, n.method, n.frames, k, b) for k, b in settings_of(claim, g) for n in claim.needs]


def models_of(claim: MemoryClaim, g: GridSettings) -> str:
    return " -> ".join(dict.fromkeys(g.model(n.role) for n in claim.needs))


def evaluate(claim: MemoryClaim, g: GridSettings, lookup: Lookup) -> tuple[list[Outcome], list[str]]:
    """The claim's figure and rule at each setting; settings whose cells could not be estimated are listed."""
    outcomes, missing = [], []
    if not available(claim, g):
        return outcomes, [f"needs a model for role(s) {', '.join(sorted({n.role for n in claim.needs} - set(dict(g.models))))}"]
    for kernel, batch in settings_of(claim, g):
        try:
            v = claim.value(lookup.at(kernel, batch))
        except LookupError as exc:
            missing.append(str(exc))
            continue
        outcomes.append(Outcome(Setting(models_of(claim, g), kernel, batch), v, bool(claim.holds(v))))
    return outcomes, missing
