"""The content of a report, independent of how it is written out (report.md and report.html render it).

Everything here is plain text: renderers do all escaping, so a method label or a command line holding
markup (`<script>`, `|`) reaches the reader as the text it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class Cell:
    text: str
    tone: str = ""  # "" | "bad" (OOM, error, timeout) | "muted" (skipped, not run) | "base" (the baseline)


@dataclass(frozen=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    caption: str = ""

    def texts(self) -> list[list[str]]:
        return [[c.text for c in row] for row in self.rows]


@dataclass(frozen=True)
class Figure:
    name: str  # file stem under plots/
    title: str
    caption: str
    png: str  # path relative to the report's folder
    svg: str
    notes: tuple[str, ...] = ()  # what the picture cannot say: cells not plotted, lines left out


@dataclass(frozen=True)
class Note:
    text: str


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Facts:
    """A two-column list of facts (the environment on top of the report)."""

    pairs: tuple[tuple[str, str], ...]


Block = Union[Table, Figure, Note, Code, Facts]


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Document:
    title: str
    sections: tuple[Section, ...]


def status_tone(status: str) -> str:
    return {"ok": "", "skipped": "muted"}.get(status, "bad")
