"""report.html: one self-contained file (plots as base64 PNG, CSS inline, no script, no network).

All text from a run goes through `html.escape`, so a method label or command holding `<script>` shows
as text. The Content-Security-Policy forbids scripts and any non-inline resource as a second line of
defence: an escaping bug would then show up as a console error, not as code running.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from vfbench.report.document import Code, Document, Facts, Figure, Note, Table

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 1.5em; color: #1b1b1b; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
h3 { font-size: 1.05em; margin-top: 1.6em; }
nav ul { columns: 2; font-size: .95em; }
table { border-collapse: collapse; margin: .5em 0; font-size: 12.5px; }
th, td { border: 1px solid #ddd; padding: 2px 7px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
td.reason { text-align: left; white-space: normal; max-width: 60em; }
thead th { background: #f3f3f3; position: sticky; top: 0; }
td.bad { color: #b22222; font-weight: 600; } td.muted { color: #888; } td.base { font-weight: 600; }
table.facts td { text-align: left; white-space: normal; }
pre { background: #f6f8fa; padding: .7em; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption, .caption { color: #444; font-size: .92em; }
.notes { color: #7a1f1f; font-size: .9em; }
.row { display: flex; flex-wrap: wrap; gap: 0 2.5em; align-items: flex-start; }
.cell { max-width: 100%; overflow-x: auto; }
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def _table(t: Table) -> str:
    wide = {i for i, h in enumerate(t.headers) if h == "reason" or h.startswith("methods on")}
    head = "".join(f"<th>{_e(h)}</th>" for h in t.headers)
    body = []
    for row in t.rows:
        tds = []
        for i, c in enumerate(row):
            cls = " ".join(x for x in (c.tone, "reason" if i in wide else "") if x)
            tds.append(f'<td class="{cls}">{_e(c.text)}</td>' if cls else f"<td>{_e(c.text)}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    caption = f'<p class="caption">{_e(t.caption)}</p>' if t.caption else ""
    return (f"<h3>{_e(t.title)}</h3>\n<table><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(body)
            + f"\n</tbody></table>{caption}")


def _figure(f: Figure, root: Path) -> str:
    data = base64.b64encode((root / f.png).read_bytes()).decode("ascii")
    notes = ""
    if f.notes:
        items = "".join(f"<li>{_e(n)}</li>" for n in f.notes)
        notes = f'<div class="notes">Cells without a point (drawn as status markers):<ul>{items}</ul></div>'
    return (f'<h3>{_e(f.title)}</h3>\n<figure id="fig-{_e(f.name)}"><img src="data:image/png;base64,{data}" '
            f'alt="{_e(f.title)}"><figcaption>{_e(f.caption)}</figcaption>{notes}</figure>')


def _block(b, root: Path) -> str:
    if isinstance(b, Table):
        return _table(b)
    if isinstance(b, Figure):
        return _figure(b, root)
    if isinstance(b, Code):
        return f"<pre><code>{_e(b.text)}</code></pre>"
    if isinstance(b, Facts):
        rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in b.pairs)
        return f'<table class="facts"><tbody>{rows}</tbody></table>'
    if isinstance(b, Note):
        return f"<p>{_e(b.text)}</p>"
    raise TypeError(f"unknown block {type(b).__name__}")


def _blocks(blocks, root: Path) -> str:
    """Consecutive tables sit side by side (absolute next to relative) where the page is wide enough."""
    out, run = [], []
    for b in (*blocks, None):
        if isinstance(b, Table):
            run.append(f'<div class="cell">{_table(b)}</div>')
            continue
        if run:
            out.append('<div class="row">' + "\n".join(run) + "</div>")
            run = []
        if b is not None:
            out.append(_block(b, root))
    return "\n".join(out)


def render(doc: Document, root: Path) -> str:
    """The page; `root` is the folder that figure paths are relative to (their PNGs get embedded)."""
    nav = "".join(f'<li><a href="#{_slug(s.title)}">{_e(s.title)}</a></li>' for s in doc.sections)
    sections = [
        f'<section id="{_slug(s.title)}"><h2>{_e(s.title)}</h2>\n' + _blocks(s.blocks, root) + "</section>"
        for s in doc.sections
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(doc.title)}</title>\n<style>{STYLE}</style></head>\n<body>\n"
        f"<h1>{_e(doc.title)}</h1>\n<nav><ul>{nav}</ul></nav>\n" + "\n".join(sections) + "\n</body></html>\n"
    )
