"""report.md: the document as GitHub-flavoured Markdown (tables through tabulate, plots as linked SVG).

Markdown passes raw HTML through, so every piece of text from a run (method labels, reasons, the
command) has `<`, `>`, `&` escaped and `|` escaped inside table cells; the command sits in a code fence.
"""

from __future__ import annotations

import re

from tabulate import tabulate

from vfbench.report.document import Code, Document, Facts, Figure, Note, Table


def escape(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: str) -> str:
    return escape(text).replace("|", "\\|").replace("\n", " ")


def _fence(text: str) -> str:
    ticks = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
    return f"{ticks}\n{text}\n{ticks}"


def _table(t: Table) -> str:
    out = [f"### {escape(t.title)}", ""]
    out.append(tabulate([[_cell(c) for c in row] for row in t.texts()], headers=[_cell(h) for h in t.headers],
                        tablefmt="github", disable_numparse=True))
    if t.caption:
        out += ["", f"*{escape(t.caption)}*"]
    return "\n".join(out)


def _figure(f: Figure) -> str:
    out = [f"### {escape(f.title)}", "", f"![{escape(f.title)}]({f.svg})", "", f"{escape(f.caption)} ([PNG]({f.png}), [SVG]({f.svg}))"]
    if f.notes:
        out += ["", "Cells without a point (drawn as status markers):", ""] + [f"- {escape(n)}" for n in f.notes]
    return "\n".join(out)


def _block(b) -> str:
    if isinstance(b, Table):
        return _table(b)
    if isinstance(b, Figure):
        return _figure(b)
    if isinstance(b, Code):
        return _fence(b.text)
    if isinstance(b, Facts):
        rows = [[_cell(k), _cell(v)] for k, v in b.pairs]
        return tabulate(rows, headers=["", ""], tablefmt="github", disable_numparse=True)
    if isinstance(b, Note):
        return escape(b.text)
    raise TypeError(f"unknown block {type(b).__name__}")


def blocks(*items) -> str:
    """Blocks outside a document (a table and its notes printed by a script), as report.md writes them."""
    return "\n\n".join(_block(b) for b in items) + "\n"


def render(doc: Document) -> str:
    parts = [f"# {escape(doc.title)}"]
    for s in doc.sections:
        parts.append(f"## {escape(s.title)}")
        parts.extend(_block(b) for b in s.blocks)
    return "\n\n".join(parts) + "\n"
