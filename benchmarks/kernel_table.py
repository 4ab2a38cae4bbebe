"""The kernel x compile table from run folders (vfbench/report/kernels.py): per method and attention kernel,
eager vs compiled, at each frame count, the median step time, MFU and the GPU's busy share (launch-bound cells
marked), then what the table decides.

    python benchmarks/kernel_table.py RUN [RUN ...] [--out table.md]

RUN is a run folder (records.jsonl) or a pytest-benchmark JSON, as `vfbench report` reads them; several
runs are merged (a later record of the same cell wins). A single run's report has the same section.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vfbench.report import markdown
from vfbench.report.document import Note
from vfbench.report.kernels import by_cell, kernel_table, summary
from vfbench.report.load import load_run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run folders or pytest-benchmark JSON files")
    ap.add_argument("--out", help="write the table here as well as to stdout")
    args = ap.parse_args(argv)
    present = [p for p in args.runs if Path(p).exists()]
    for missing in sorted(set(args.runs) - set(present)):  # a step the device call's limit cut before it began
        print(f"kernel_table: {missing} does not exist; the table is without it", file=sys.stderr)
    records = [r for path in present for r in load_run(path).records]
    if not records:
        print(f"kernel_table: no records in {', '.join(args.runs)}", file=sys.stderr)
        return 2
    text = f"Command: python benchmarks/kernel_table.py {' '.join(present)}\n\n"
    cells = by_cell(records)
    text += markdown.blocks(kernel_table(cells), *(Note(line) for line in summary(cells)))
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
