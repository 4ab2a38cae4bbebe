"""What every plot shares: one style per method, the frames axis, status markers, and writing PNG + SVG.

Figures are built with `matplotlib.figure.Figure` directly (no pyplot): no global figure registry, no
backend switch, and the Agg canvas is used for PNG whatever the user's MPLBACKEND says.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator

from vfbench.report import document
from vfbench.report.load import Run
from vfbench.report.metrics import status_text
from vfbench.report.terminal import format_mib

DPI = 100  # modest: results/ is committed, and report.html embeds every PNG
# Cells without a value are drawn as a marker at a fixed height of the axes (fraction), never left out.
STATUS_MARKS = {  # status -> (marker, height in axes fraction)
    "oom": ("X", 0.96),
    "timeout": ("v", 0.91),
    "error": ("P", 0.86),
    "skipped": ("o", 0.04),
    "not run": ("d", 0.09),
}
_MARKERS = ("o", "s", "^", "D", "v", "P", "*", "h")
_SAVE_RC = {"svg.fonttype": "none", "svg.hashsalt": "vfbench"}  # text stays text (small); stable ids


@dataclass(frozen=True)
class Style:
    color: tuple
    marker: str
    linestyle: str


@dataclass(frozen=True)
class Drawn:
    """A finished figure with what the picture alone cannot say."""

    name: str
    title: str
    caption: str
    figure: Figure
    notes: tuple[str, ...] = ()


def method_styles(methods: tuple[str, ...]) -> dict[str, Style]:
    """Distinct colour + marker per method; the line style changes after 20 so 23+ methods stay apart."""
    cmap = matplotlib.colormaps["tab20"]
    out = {}
    for i, m in enumerate(methods):
        out[m] = Style(cmap(i % 20), _MARKERS[i % len(_MARKERS)], ("-", "--", ":")[(i // 20) % 3])
    return out


def frames_axis(ax, frames: tuple[int, ...]) -> None:
    """log2 frame axis (each tick a doubling, as frame counts are swept) labelled with the frame counts."""
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(list(frames)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    if frames:
        ax.set_xlim(min(frames) / 2**0.4, max(frames) * 2**0.4)
    ax.set_xlabel("frames T (log2)")


def log2_axis(axis, fmt, dense: bool = True) -> None:
    """log2 scale on `axis` (ax.xaxis / ax.yaxis) with enough labelled ticks for the data's range.

    Call after plotting: a run spanning one doubling (tiny presets) needs ticks between powers of two,
    one spanning sixteen does not."""
    ax = axis.axes
    lo, hi = sorted(ax.get_ylim() if axis is ax.yaxis else ax.get_xlim())  # get_*lim applies pending autoscaling
    doublings = math.log2(hi / lo) if lo > 0 and hi > lo else 1.0
    subs = (1.0, 1.25, 1.5, 1.75) if doublings < 3 and dense else (1.0, 1.5) if doublings < 6 else (1.0,)
    axis.set_major_locator(LogLocator(base=2, subs=subs, numticks=12))
    axis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))
    axis.set_minor_locator(NullLocator())


def mib_axis(ax, which: str = "y") -> None:
    """Memory on a log2 axis, labelled in MiB / GiB."""
    (ax.set_yscale if which == "y" else ax.set_xscale)("log", base=2)
    log2_axis(ax.yaxis if which == "y" else ax.xaxis, format_mib, dense=which == "y")  # x labels are wide


def mark_statuses(ax, run: Run, styles: dict[str, Style], methods: tuple[str, ...] | None = None) -> list[str]:
    """Draw every cell without a value as a status marker; return one note per method and status."""
    methods = methods or run.methods
    notes: dict[tuple[str, str], list[int]] = {}
    if any((r := run.cell(m, t)) is None or r.status != "ok" for m in methods for t in run.frames):
        _make_room(ax)
    for i, m in enumerate(methods):
        jitter = 2 ** (0.12 * ((i % 5) - 2))  # a few methods OOM at the same T: spread them sideways
        for t in run.frames:
            r = run.cell(m, t)
            status = "not run" if r is None else r.status
            if status == "ok":
                continue
            marker, height = STATUS_MARKS.get(status, ("P", 0.86))
            ax.scatter([t * jitter], [height], transform=ax.get_xaxis_transform(), marker=marker, s=46,
                       facecolors="none" if status in ("skipped", "not run") else [styles[m].color],
                       edgecolors=[styles[m].color], linewidths=1.4, zorder=5, clip_on=False, gid=f"status-{status.replace(' ', '-')}")
            notes.setdefault((m, status_text(r)), []).append(t)
    return [f"{m}: {s} at {', '.join(map(str, ts))} frames" for (m, s), ts in notes.items()]


def _make_room(ax) -> None:
    """Widen the y range so the data sits between the status-marker bands at the top and bottom."""
    lo, hi = ax.get_ylim()
    if ax.get_yscale() == "log" and lo > 0 and hi > lo:
        span = math.log2(hi / lo) or 1.0
        ax.set_ylim(lo / 2 ** (0.15 * span), hi * 2 ** (0.25 * span))
    else:
        span = (hi - lo) or 1.0
        ax.set_ylim(lo - 0.15 * span, hi + 0.25 * span)


def status_legend_handles(run: Run, methods: tuple[str, ...] | None = None) -> list[Line2D]:
    methods = methods or run.methods
    seen = dict.fromkeys(
        "not run" if (r := run.cell(m, t)) is None else r.status for m in methods for t in run.frames
    )
    handles = []
    for status in seen:
        if status == "ok":
            continue
        marker, _ = STATUS_MARKS.get(status, ("P", 0.86))
        hollow = status in ("skipped", "not run")
        label = "OOM" if status == "oom" else status
        handles.append(Line2D([], [], linestyle="", marker=marker, color="0.3", markerfacecolor="none" if hollow else "0.3",
                              label=f"{label} (no value)"))
    return handles


def outside_legend(ax, handles=None, ncol: int = 1) -> None:
    handles = handles if handles is not None else ax.get_legend_handles_labels()[0]
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False, ncol=ncol)


def save(drawn: Drawn, folder: Path, rel_to: Path) -> document.Figure:
    """Write plots/<name>.png and .svg; return the document block that points at them."""
    folder.mkdir(parents=True, exist_ok=True)
    name = file_stem(drawn.name)
    png, svg = folder / f"{name}.png", folder / f"{name}.svg"
    with matplotlib.rc_context(_SAVE_RC):
        buf = io.BytesIO()
        drawn.figure.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
        png.write_bytes(_palette_png(buf.getvalue()))
        drawn.figure.savefig(svg, bbox_inches="tight", metadata={"Date": None, "Creator": None})
    return document.Figure(
        name=name, title=drawn.title, caption=drawn.caption, notes=drawn.notes,
        png=png.relative_to(rel_to).as_posix(), svg=svg.relative_to(rel_to).as_posix(),
    )


def file_stem(text: str) -> str:
    """A plot name made from data (a record key) as a safe file name: letters, digits, '.', '_' and '-'
    only, no leading dot, at most 120 characters, so '../x' or '/etc/x' stays inside the plots folder."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", text).lstrip(".")[:120]
    return stem or "plot"


def _palette_png(data: bytes) -> bytes:
    """A 256-colour palette PNG: about 4x smaller than matplotlib's RGBA (results/ is committed, report.html
    embeds every plot). Octree keeps the rare line colours exact where median cut would merge them."""
    from PIL import Image

    out = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
        out, format="PNG", optimize=True)
    return out.getvalue()


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")
