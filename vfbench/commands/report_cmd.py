"""`vfbench report RUN`: tables, plots, report.md / report.html and summary.csv of a finished run."""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser(
        "report", help="write report.md, report.html, summary.csv and plots/ for a run",
        description="Build the report of a run from its records (nothing is re-run): report.md, a self-contained "
                    "report.html, summary.csv (one row per cell) and plots/*.png|svg, written into the run folder.",
    )
    p.add_argument("run", help="a run folder (results/<run-id>, the one holding run.json)")
    p.add_argument("--out", help="write the report here instead of into the run folder")
    return p


def run(args) -> int:
    from vfbench.report.build import write_report

    page = write_report(args.run, args.out)
    print(f"report: {page}")
    print(f"        {page.with_name('report.md')}, {page.with_name('summary.csv')}, {page.parent / 'plots'}/")
    return 0
