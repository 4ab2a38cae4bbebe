"""`advise(...)`: which options fit a memory budget at a frame count (or how many frames each reaches),
ranked, with the Pareto set and one recommendation with its reasons.

Memory figures are `vfbench estimate`'s: the cells go through estimate/sweep.estimate_grid, the
same call the estimate command makes, so advise and estimate print equal peaks for equal cells.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Optional

from vfbench.advice.candidates import LOSSLESS, TIER_TEXT, Candidate, candidates
from vfbench.advice.throughput import step_time, time_model
from vfbench.estimate.sweep import Budget, estimate_grid
from vfbench.report.load import Run
from vfbench.registry import compose
from vfbench.report.metrics import accuracy_keys, metric_named, value
from vfbench.spec import CellSpec

ACCURACY_KEY = "acc_r1_temporal"  # the gallery only a model that uses frame order can solve: the video-first question
MAX_SEED_FRAMES = (16, 128)  # traced first in --frames max; the budget search starts from these peaks
FLOPS = metric_named("flops_per_step")
RULE_FRAMES = (
    "rule: among the options that fit, the most accurate on the run's proxy task when the run measured any of "
    "them; else the first tier with a fitting option (1: keeps every token and tunes every parameter; 2: masking "
    "and/or last-k tuning; 3: anything else), and the fastest within it (estimated step time, else FLOPs per step)"
)
RULE_MAX = (
    "rule: the first tier with an option that fits at least one step of frames (1: keeps every token and tunes "
    "every parameter; 2: masking and/or last-k tuning; 3: anything else), and the most frames within it"
)


@dataclass(frozen=True)
class Settings:
    model: str
    batch: int
    dtype: str
    device: str
    budget: str  # as written, e.g. 16GiB
    budget_mib: float
    budget_reading: str
    frames: Optional[int]  # None: --frames max (the largest count within the budget per option)
    max_frames: int
    accuracy_key: str
    run: Optional[str]  # the run folder measured times and accuracy come from
    time_text: str  # how step times were estimated


@dataclass(frozen=True)
class Option:
    label: str
    same_as: tuple[str, ...]
    tier: int
    frames: int  # the requested count, or the largest that fits (--frames max)
    estimated_peak_mib: float
    headroom_mib: float
    flops_per_step: Optional[int] = None
    step_ms: Optional[float] = None
    time_source: str = ""
    clips_per_s: Optional[float] = None
    accuracy: Optional[float] = None
    accuracy_frames: Optional[int] = None
    params_trainable: Optional[int] = None
    tokens: Optional[int] = None
    next_frames: Optional[int] = None  # --frames max: one step more, which does not fit
    next_peak_mib: Optional[float] = None
    capped: bool = False  # --frames max: every count up to max_frames fits


@dataclass(frozen=True)
class Exclusion:
    label: str
    same_as: tuple[str, ...]
    kind: str  # does not fit | cannot run | cannot compose | estimate failed | not traced
    reason: str
    estimated_peak_mib: Optional[float] = None


@dataclass(frozen=True)
class Advice:
    settings: Settings
    options: tuple[Option, ...]  # fitting, ranked: the first is the recommendation
    excluded: tuple[Exclusion, ...]
    pareto: tuple[str, ...]  # labels of the options no other option beats on memory, time and accuracy
    recommendation: Optional[str]
    reasons: tuple[str, ...]
    rule: str
    seconds: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Advice":
        return cls(
            settings=Settings(**d["settings"]),
            options=tuple(Option(**{**o, "same_as": tuple(o["same_as"])}) for o in d["options"]),
            excluded=tuple(Exclusion(**{**e, "same_as": tuple(e["same_as"])}) for e in d["excluded"]),
            pareto=tuple(d["pareto"]), recommendation=d["recommendation"], reasons=tuple(d["reasons"]),
            rule=d["rule"], seconds=d["seconds"],
        )


def accuracy_key(run: Optional[Run]) -> str:
    keys = accuracy_keys(run.records) if run is not None else ()
    return ACCURACY_KEY if ACCURACY_KEY in keys or not keys else keys[0]


def accuracy_of(labels: tuple[str, ...], frames: int, run: Optional[Run], key: str) -> tuple[Optional[float], Optional[int]]:
    """Proxy accuracy of a step (any of its labels) at `frames`, else at the nearest frame count below it,
    else the nearest above; with the frame count it was measured at."""
    if run is None:
        return None, None
    got = {r.frames: v for r in run.records if r.method in labels and (v := value(r, key)) is not None}
    if not got:
        return None, None
    t = frames if frames in got else max((f for f in got if f < frames), default=min(got))
    return got[t], t


def _options_at(cands, results, budget: Budget, frames: int, run, key, settings_setup, tmodel):
    by_label = {r.method: r for res in results for r in res.records}
    options, excluded = [], []
    for c in cands:
        r = by_label[c.label]
        peak = r.extra.get("estimated_peak_mib")
        if r.status != "ok":
            kind = "cannot run" if r.status == "skipped" else "estimate failed"
            excluded.append(Exclusion(c.label, c.same_as, kind, r.reason))
        elif peak > budget.mib:
            excluded.append(Exclusion(c.label, c.same_as, "does not fit",
                                      f"estimated {peak:,.1f} MiB > budget {budget.mib:,.1f} MiB", peak))
        else:
            labels = (c.label,) + c.same_as
            st = step_time(labels, frames, r.flops_per_step, settings_setup, run, tmodel)
            acc, acc_t = accuracy_of(labels, frames, run, key)
            options.append(Option(
                c.label, c.same_as, c.tier, frames, peak, budget.mib - peak, r.flops_per_step, st.step_ms, st.source,
                None if not st.step_ms else r.batch / st.step_ms * 1e3, acc, acc_t, r.params_trainable, r.tokens,
            ))
    return options, excluded


def _checkpoint_partner(c: Candidate, labels: dict[str, Candidate]) -> Optional[Candidate]:
    """The candidate that is `c` without activation checkpointing, when `c` is checkpointed and it exists."""
    methods = compose(c.label).methods
    if not any(m.name == "checkpoint" for m in methods):
        return None
    return labels.get(compose("+".join(m.label for m in methods if m.name != "checkpoint")).label)


def _options_checkpoint_last(cands, base, budget, frames, run, key, tmodel, jobs):
    """Trace the options without checkpointing first, then a checkpointed one only where its plain
    twin does not fit: checkpointing trades time for memory on the same model, so when the twin fits it
    is the faster option with the same accuracy (and tracing fewer steps keeps advise quick)."""
    labels = {name: c for c in cands for name in (c.label, *c.same_as)}
    partner = {c.label: _checkpoint_partner(c, labels) for c in cands}
    first = [c for c in cands if partner[c.label] is None]
    setup = (base.model, base.batch, base.dtype, base.device)

    def estimated(group):
        cells = [dataclasses.replace(base, method=c.label, frames=frames) for c in group]
        return _options_at(group, estimate_grid(cells, jobs=jobs), budget, frames, run, key, setup, tmodel)

    options, excluded = estimated(first)
    fits = {o.label for o in options}
    later = [c for c in cands if partner[c.label] is not None and partner[c.label].label not in fits]
    more, fewer = estimated(later) if later else ([], [])
    skipped = [Exclusion(c.label, c.same_as, "not traced", f"{partner[c.label].label} fits without checkpointing "
                         "(same model, less recompute: faster)") for c in cands if partner[c.label] is not None
               and partner[c.label].label in fits]
    return options + more, excluded + fewer + skipped


def _options_max(cands, results, budget: Budget, run, key):
    answers = {a.method: a for res in results for a in res.answers}
    options, excluded = [], []
    for c in cands:
        a = answers[c.label]
        f = a.fit
        if f is None:
            excluded.append(Exclusion(c.label, c.same_as, "cannot run" if "failed" not in a.reason else "estimate failed", a.reason))
        elif f.largest_frames is None:
            excluded.append(Exclusion(c.label, c.same_as, "does not fit", f"not even {f.next_frames} frames fit: estimated "
                                      f"{f.next_peak_mib:,.1f} MiB > budget {budget.mib:,.1f} MiB", f.next_peak_mib))
        else:
            acc, acc_t = accuracy_of((c.label,) + c.same_as, f.largest_frames, run, key)
            options.append(Option(c.label, c.same_as, c.tier, f.largest_frames, f.peak_mib, budget.mib - f.peak_mib,
                                  accuracy=acc, accuracy_frames=acc_t, next_frames=f.next_frames,
                                  next_peak_mib=f.next_peak_mib, capped=f.capped))
    return options, excluded


def _cost(o: Option) -> tuple:
    """Time where known, else FLOPs: options with a time come first (they cannot be compared with FLOPs)."""
    return (o.step_ms is None, o.step_ms or 0.0, o.flops_per_step if o.flops_per_step is not None else math.inf)


def rank(options: list[Option], max_mode: bool) -> list[Option]:
    if max_mode:
        return sorted(options, key=lambda o: (o.tier, -o.frames, o.estimated_peak_mib))
    return sorted(options, key=lambda o: (o.accuracy is None, -(o.accuracy or 0.0), o.tier, _cost(o)))


def dominates(a: Option, b: Option) -> bool:
    """a is no worse than b in memory, time and (where both have it) accuracy, and better in one."""
    ca, cb = _cost(a), _cost(b)
    if ca[0] != cb[0]:
        return False  # one has a time, the other only FLOPs: not comparable
    both_acc = a.accuracy is not None and b.accuracy is not None
    if (a.accuracy is None) != (b.accuracy is None):
        return False  # accuracy known for one only
    no_worse = a.estimated_peak_mib <= b.estimated_peak_mib and ca <= cb and (not both_acc or a.accuracy >= b.accuracy)
    better = a.estimated_peak_mib < b.estimated_peak_mib or ca < cb or (both_acc and a.accuracy > b.accuracy)
    return no_worse and better


def pareto(options: list[Option]) -> list[str]:
    return [o.label for o in options if not any(dominates(p, o) for p in options if p is not o)]


def _reasons(ranked: list[Option], excluded: list[Exclusion], settings: Settings, max_mode: bool,
             lossless: set[str]) -> tuple[str, ...]:
    if not ranked:
        return (f"nothing fits {settings.budget}" + ("" if max_mode else f" at {settings.frames} frames")
                + ": see the excluded options for the smallest estimated peaks",)
    best = ranked[0]
    out = []
    if best.accuracy is not None and not max_mode:
        rivals = [o for o in ranked[1:] if o.accuracy is not None]
        out.append(f"most accurate fitting option on the proxy task: {settings.accuracy_key} {best.accuracy:.3f} "
                   f"(measured at {best.accuracy_frames} frames)"
                   + (f"; next: {rivals[0].label} {rivals[0].accuracy:.3f}" if rivals else ""))
    else:
        out.append(f"tier {best.tier + 1}: {TIER_TEXT[best.tier]}")
        if max_mode:
            out.append(f"the most frames within its tier: {best.frames}" + (" (the search cap)" if best.capped else ""))
            most = max(ranked, key=lambda o: o.frames)
            if most.frames > best.frames:
                out.append(f"the most frames of any option: {most.label}, {most.frames} (tier {most.tier + 1})")
        elif best.step_ms is not None:
            out.append(f"the fastest fitting option of its tier: {best.step_ms:,.0f} ms per step ({best.time_source})")
        else:
            out.append(f"the fewest FLOPs per step of its tier: {FLOPS.format(best.flops_per_step)}")
        if best.tier > LOSSLESS:
            faithful = [e for e in excluded if e.kind == "does not fit" and e.label in lossless]
            if faithful:
                small = min(faithful, key=lambda e: e.estimated_peak_mib)
                out.append(f"no option that keeps every token and tunes every parameter fits: the smallest, "
                           f"{small.label}, needs {small.estimated_peak_mib:,.1f} MiB")
    room = "; keep room for the CUDA context and fragmentation" if settings.device == "cuda" else ""
    out.append(f"estimated peak {best.estimated_peak_mib:,.1f} MiB, {best.headroom_mib:,.1f} MiB below the budget "
               f"(allocated tensors{room})")
    return tuple(out)


def advise(base: CellSpec, budget: Budget, frames: Optional[int], run: Optional[Run] = None, jobs: int = 1,
           max_frames: int = 16384, methods: Optional[str] = None) -> Advice:
    """`base` gives model, batch, dtype, device and seed; `frames` None asks for the most frames per option;
    `methods` restricts the candidates (default: every method and recipe, and the compositions)."""
    t0 = time.perf_counter()
    cands, refused = candidates(base, methods)
    key = accuracy_key(run)
    tmodel = time_model(base.device, base.dtype, run)
    settings = Settings(base.model, base.batch, base.dtype, base.device, budget.text, budget.mib, budget.reading, frames,
                        max_frames, key, None if run is None else str(run.home), tmodel.text)
    max_mode = frames is None
    if max_mode:
        cells = [dataclasses.replace(base, method=c.label, frames=t) for c in cands for t in MAX_SEED_FRAMES]
        options, excluded = _options_max(cands, estimate_grid(cells, (budget,), max_frames, jobs), budget, run, key)
    else:
        options, excluded = _options_checkpoint_last(cands, base, budget, frames, run, key, tmodel, jobs)
    excluded += [Exclusion(r.label, (), "cannot compose", r.reason) for r in refused]
    ranked = rank(options, max_mode)
    excluded.sort(key=lambda e: (e.kind != "does not fit", e.estimated_peak_mib or 0.0))
    return Advice(settings, tuple(ranked), tuple(excluded), tuple(pareto(ranked)) if not max_mode else (),
                  ranked[0].label if ranked else None, _reasons(ranked, excluded, settings, max_mode, {c.label for c in cands if c.tier == LOSSLESS}),
                  RULE_MAX if max_mode else RULE_FRAMES, round(time.perf_counter() - t0, 2))
