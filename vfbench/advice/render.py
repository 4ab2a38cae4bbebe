"""The advice as report blocks (one Section): the terminal text, advice.md and the run report's section
are all rendered from these blocks, so they say the same thing."""

from __future__ import annotations

from tabulate import tabulate

from vfbench.advice.advise import FLOPS, Advice, Option
from vfbench.report.document import Cell, Document, Note, Section, Table

TITLE = "Which recipe fits the budget"


def _mib(v) -> str:  # whole-MiB resolution: GiB with two decimals prints 16.00 on both sides of 16 GiB
    return "-" if v is None else f"{v:,.1f} MiB"


def _name(label: str, same_as: tuple) -> str:
    return label + (f" (= {', '.join(same_as)})" if same_as else "")


def _acc(o: Option) -> str:
    return "-" if o.accuracy is None else f"{o.accuracy:.3f} @{o.accuracy_frames}"


def _time(o: Option) -> str:
    if o.step_ms is None:
        return FLOPS.format(o.flops_per_step)
    return f"{o.step_ms:,.0f} ms ({o.time_source})"


def _setup(a: Advice) -> str:
    s = a.settings
    at = "the most frames each option reaches" if s.frames is None else f"{s.frames} frames"
    src = f"; measured times and accuracy from {s.run}" if s.run else ""
    return (f"{s.model}, batch {s.batch}, {s.dtype}, {s.device}; budget {s.budget} = {s.budget_reading}, "
            f"{s.budget_mib:,.0f} MiB; {at}{src}. Memory: `vfbench estimate`'s traced peak (allocated tensors).")


def _options_table(a: Advice) -> Table:
    front = set(a.pareto)
    if a.settings.frames is None:
        heads = ("#", "option", "tier", "largest frames", "est. peak", "headroom", "next frames: peak", "accuracy")
        rows = [(str(i + 1), _name(o.label, o.same_as), str(o.tier + 1),
                 f">= {o.frames} (cap)" if o.capped else str(o.frames), _mib(o.estimated_peak_mib), _mib(o.headroom_mib),
                 "-" if o.next_frames is None else f"{o.next_frames}: {_mib(o.next_peak_mib)}", _acc(o))
                for i, o in enumerate(a.options)]
    else:
        heads = ("#", "option", "tier", "est. peak", "headroom", "step time", "clips/s", "accuracy", "Pareto")
        rows = [(str(i + 1), _name(o.label, o.same_as), str(o.tier + 1), _mib(o.estimated_peak_mib), _mib(o.headroom_mib),
                 _time(o), "-" if o.clips_per_s is None else f"{o.clips_per_s:,.2f}", _acc(o), "*" if o.label in front else "")
                for i, o in enumerate(a.options)]
    acc = f"accuracy: proxy {a.settings.accuracy_key} @ the frame count it was measured at. " if any(
        o.accuracy is not None for o in a.options) else "accuracy: not measured (give --from RUN with a run that has it). "
    caption = f"{acc}Tiers: 1 keeps every token and tunes every parameter; 2 masking and/or last-k tuning; 3 other."
    if a.settings.frames is not None:
        caption += f" Step time: {a.settings.time_text}."
    return Table("Options that fit, ranked (the first is the recommendation)", heads,
                 tuple(tuple(Cell(t) for t in row) for row in rows), caption)


def _pareto_table(a: Advice) -> Table:
    by = {o.label: o for o in a.options}
    rows = tuple((Cell(label), Cell(_mib(by[label].estimated_peak_mib)), Cell(_time(by[label])), Cell(_acc(by[label])))
                 for label in sorted(a.pareto, key=lambda x: by[x].estimated_peak_mib))
    return Table("Pareto set: memory, time, accuracy", ("option", "est. peak", "step time", "accuracy"), rows,
                 "No other fitting option is as good on all three (accuracy compared only where both have it; a "
                 "measured or formula time is not compared with a FLOP count). By memory ascending.")


def _excluded_table(a: Advice) -> Table:
    rows = tuple((Cell(_name(e.label, e.same_as), "muted"), Cell(e.kind), Cell(e.reason)) for e in a.excluded)
    return Table("Excluded", ("option", "why", "detail"), rows)


def section(a: Advice) -> Section:
    blocks = [Note(_setup(a))]
    if a.recommendation:
        blocks.append(Note(f"Recommendation: {a.recommendation}. Why: " + "; ".join(a.reasons) + "."))
    else:
        blocks.append(Note("No recommendation: " + "; ".join(a.reasons) + "."))
    blocks.append(Note(a.rule[0].upper() + a.rule[1:] + "."))
    if a.options:
        blocks.append(_options_table(a))
    if a.pareto:
        blocks.append(_pareto_table(a))
    if a.excluded:
        blocks.append(_excluded_table(a))
    return Section(TITLE, tuple(blocks))


def document(a: Advice) -> Document:
    return Document(f"vfbench advise: {a.settings.budget}", (section(a),))


def text(a: Advice) -> str:
    out = []
    for b in section(a).blocks:
        if isinstance(b, Table):
            out += ["", b.title, tabulate(b.texts(), headers=list(b.headers), disable_numparse=True)]
            if b.caption:
                out.append(b.caption)
        else:
            out.append(b.text)
    return "\n".join(out)
