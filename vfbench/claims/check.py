"""Evaluate every claim: estimate the memory grid once, apply each claim's rule per setting, read the proxy
findings, and return the rows of the reproduction table."""

from __future__ import annotations

import shlex
from pathlib import Path

from vfbench.claims import accuracy, memory
from vfbench.claims.grid import GridSettings, Lookup, estimate_cells, method_label
from vfbench.claims.rules import CANNOT, verdict
from vfbench.claims.table import Row, figure_text


def estimate_commands(claim: memory.MemoryClaim, g: GridSettings) -> str:
    """`vfbench estimate` lines that print every figure of the claim (one per model and frame count; the
    batch loops because estimate takes one batch)."""
    groups: dict[tuple, list[str]] = {}
    kernels = g.kernels if claim.per_setting else ("sdpa",)
    for n in claim.needs:
        labels = groups.setdefault((g.model(n.role), n.frames), [])
        labels += [m for m in (method_label(n.method, k) for k in kernels) if m not in labels]
    batches = " ".join(map(str, g.batches)) if claim.per_setting else str(g.batches[0])
    lines = []
    for (model, frames), labels in groups.items():
        args = ["vfbench", "estimate", "--model", model, "--methods", ",".join(labels), "--frames", str(frames),
                "--dtype", g.dtype, "--device-kind", g.device]
        if claim.per_setting and len(g.batches) > 1:
            lines.append(f"for b in {batches}; do {shlex.join(args)} --batch $b; done")
        else:
            lines.append(f"{shlex.join(args)} --batch {batches}")
    return "; ".join(lines)


def settings_text(claim: memory.MemoryClaim, g: GridSettings) -> str:
    frames = sorted({n.frames for n in claim.needs})
    where = f"{memory.models_of(claim, g)}, {'/'.join(map(str, frames))} frames"
    if not claim.per_setting:
        return f"{where}; parameter counts (no kernel or batch dependence)"
    return (f"{where}, {g.dtype}, {g.device} step estimated under FakeTensorMode; per-device batch "
            f"{','.join(map(str, g.batches))}; kernels {', '.join(g.kernels)}")


def memory_rows(g: GridSettings, jobs: int = 1, claims: tuple = memory.CLAIMS) -> list[Row]:
    cells = [c for claim in claims for c in memory.claim_cells(claim, g)]
    lookup = Lookup(g, estimate_cells(cells, jobs))
    rows = []
    for claim in claims:
        outcomes, missing = memory.evaluate(claim, g, lookup)
        word, where = verdict(outcomes)
        if not outcomes and missing:
            where = missing[0]
        elif missing:
            where += f" ({len(missing)} setting(s) not estimated: {missing[0]})"
        rows.append(Row(
            claim.id, "memory", claim.claim, claim.paper, figure_text(outcomes, claim.unit) if outcomes else "-",
            settings_text(claim, g), word, where if not claim.per_setting or word != "reproduced" else
            "at every kernel and batch tried", claim.rule, estimate_commands(claim, g), tuple(outcomes), claim.unit,
        ))
    return rows


def accuracy_rows(path: Path) -> list[Row]:
    findings = accuracy.read_findings(path)
    if not findings:
        return [Row("accuracy", "accuracy", "The paper's accuracy findings (masking robustness, PEFT, patching, LongViViT)",
                    "Figs 2-5", "-", "proxy task", CANNOT, f"{path} is missing: run the command to write it",
                    "-", accuracy.PROXY_COMMAND)]
    rows = []
    for i, f in enumerate(findings, 1):
        word, where = accuracy.verdict_of(f)
        rows.append(Row(f"accuracy{i}", "accuracy", f.claim, "Figs 2-5", f.figure,
                        f"proxy task, seeds {', '.join(map(str, f.seeds))} (from {path})", word, where, f.rule, accuracy.PROXY_COMMAND))
    return rows


def check_claims(g: GridSettings, proxy_path: Path, jobs: int = 1) -> list[Row]:
    accuracy_part = accuracy_rows(proxy_path)  # first: a file that is not a findings file is refused before the estimates
    return memory_rows(g, jobs) + accuracy_part
