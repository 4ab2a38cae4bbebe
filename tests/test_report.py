"""Reports from synthetic records: tables relative to the baseline, summary.csv, budgets, status markers
in the plots' notes and SVGs, accuracy and its Pareto front, escaping, and `vfbench report` end to end.

`write_run` and `ok` are also used by test_compare.py and test_report_browser.py.
"""

import json
import re

import pandas as pd
import pytest

from vfbench.cli import main
from vfbench.report import accuracy, budgets
from vfbench.report.build import write_report
from vfbench.report.load import load_run
from vfbench.report.metrics import metric_named
from vfbench.report.tables import absolute_table, baseline_method, relative_table
from vfbench.record import Record
from vfbench.store import RunStore
from vfbench.spec import CellSpec

PLANT = "x<script>document.title='pwned'</script>"
ENV = {"cpu": "Test CPU 9000", "device": "cpu", "gpu_name": None, "torch": "2.13.0+cpu", "git_commit": "abc123"}


def cell(method, frames, batch=2):
    return CellSpec("tiny", method, frames, batch, "fp32", "cpu", 0)


def ok(method, frames, peak, step_ms, spread=0.1, **extra):
    """An ok record with a realistic step-time spread (p10 / p90 at -/+ spread around the median)."""
    parts = {"parameters": 0.2, "gradients": 0.1, "optimizer": 0.3, "inputs": 0.1, "activations": 0.25, "temporaries": 0.05}
    return Record.for_cell(
        cell(method, frames), "ok", peak_allocated_mib=peak, step_ms_median=step_ms,
        step_ms_p10=step_ms * (1 - spread), step_ms_p90=step_ms * (1 + spread), clips_per_s=2000.0 / step_ms,
        tokens=8 * frames, **{f"mem_{k}_mib": peak * v for k, v in parts.items()}, **extra,
    )


def not_ok(method, frames, status, reason):
    return Record.for_cell(cell(method, frames), status, reason)


def sample_records(acc=False):
    # with the proxy's settings and timings next to the result, as real records carry them
    a = (lambda v: {"acc_r1_random": v, "acc_chance_random": 0.125, "acc_steps": 250, "acc_train_s": 99 * v}) if acc else (lambda v: {})
    return [
        ok("joint", 4, 1.0, 10, **a(0.50)), ok("joint", 8, 2.0, 20, **a(0.60)), ok("joint", 16, 4.0, 40, **a(0.70)),
        ok("mask(ratio=0.5)", 4, 0.6, 6, **a(0.45)), ok("mask(ratio=0.5)", 8, 1.1, 11, **a(0.58)),
        ok("mask(ratio=0.5)", 16, 2.1, 21, **a(0.72)),
        ok("lora(rank=8)", 4, 3.0, 12, **a(0.40)), ok("lora(rank=8)", 8, 6.0, 24, **a(0.41)),
        not_ok("lora(rank=8)", 16, "oom", "CUDA out of memory. Tried to allocate 2.00 GiB"),
        *[not_ok("temporal_only", t, "skipped", "temporal_only: needs factorized_self_attention") for t in (4, 8, 16)],
        ok(PLANT, 4, 1.5, 9, **a(0.3)),
        not_ok(PLANT, 8, "error", "Traceback (most recent call last):\n  File x\nRuntimeError: <b>boom</b>"),
        not_ok(PLANT, 16, "timeout", "killed after 900 s"),
    ]


def write_run(path, records, command=None, env=None, methods=None, **sweep):
    store = RunStore(path)
    methods = methods or list(dict.fromkeys(r.method for r in records))
    frames = sorted({r.frames for r in records})
    store.create({
        "sweep": {"model": "tiny", "methods": methods, "frames": frames, "batch": 2, "dtype": "fp32", "device": "cpu",
                  **sweep},
        "env": dict(ENV if env is None else env),
        "command": command if command is not None else f"vfbench run --methods '{PLANT}' --frames 4..16",
        "started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:05:00+00:00",
    })
    for r in records:
        store.append(r)
    return path


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    """One report built once for the module (plots are the slow part)."""
    d = write_run(tmp_path_factory.mktemp("rep") / "run", sample_records())
    write_report(d)
    return d


def texts(table):
    return {row[0]: row[1:] for row in table.texts()}


def test_relative_table_is_ratio_to_joint_at_same_frames(tmp_path):
    run = load_run(write_run(tmp_path / "r", sample_records()))
    assert baseline_method(run) == "joint"
    rel = texts(relative_table(run, metric_named("peak_allocated_mib")))
    assert rel["joint"] == ["1.00×", "1.00×", "1.00×"]
    assert rel["mask(ratio=0.5)"] == ["0.60×", "0.55×", "0.53×"]
    assert rel["lora(rank=8)"] == ["3.00×", "3.00×", "OOM"]
    assert rel["temporal_only"] == ["skipped"] * 3
    assert rel[PLANT] == ["1.50×", "error", "timeout"]
    absolute = texts(absolute_table(run, metric_named("step_ms_median")))
    assert absolute["joint"] == ["10.0 ms", "20.0 ms", "40.0 ms"]


def test_baseline_is_first_method_without_joint_and_na_when_baseline_failed(tmp_path):
    recs = [r for r in sample_records() if r.method != "joint"]
    run = load_run(write_run(tmp_path / "r", recs))
    assert baseline_method(run) == "mask(ratio=0.5)"
    run2 = load_run(write_run(tmp_path / "r2", [not_ok("joint", 4, "oom", "x"), ok("mask(ratio=0.5)", 4, 1, 1)]))
    assert texts(relative_table(run2, metric_named("peak_allocated_mib")))["mask(ratio=0.5)"] == ["n/a (joint: OOM)"]


def test_summary_csv_one_row_per_cell_with_relative_columns(report_dir):
    df = pd.read_csv(report_dir / "summary.csv")
    assert len(df) == 15 and list(df.columns[:4]) == ["method", "frames", "status", "reason"]
    row = df[(df.method == "mask(ratio=0.5)") & (df.frames == 8)].iloc[0]
    assert row.peak_allocated_mib == pytest.approx(1.1) and row.peak_allocated_mib_rel == pytest.approx(0.55)
    assert row.baseline == "joint"
    assert set(df.status) == {"ok", "oom", "skipped", "error", "timeout"}
    assert df[df.status == "oom"].iloc[0].reason.startswith("CUDA out of memory")


def test_files_and_plots_written(report_dir):
    for name in ("report.md", "report.html", "summary.csv"):
        assert (report_dir / name).stat().st_size > 0
    stems = {p.stem for p in (report_dir / "plots").glob("*.png")}
    assert stems == {"memory_vs_frames", "throughput_vs_frames", "frames_within_budget", "memory_breakdown"}
    assert stems == {p.stem for p in (report_dir / "plots").glob("*.svg")}
    for p in (report_dir / "plots").iterdir():
        assert p.stat().st_size < 400_000  # committed reference runs stay small


def test_status_markers_in_plot_svgs_and_notes(report_dir):
    svg = (report_dir / "plots" / "memory_vs_frames.svg").read_text()
    for status in ("oom", "skipped", "error", "timeout"):
        assert f'id="status-{status}' in svg, status  # a drawn marker, not a missing point
    md = (report_dir / "report.md").read_text()
    assert "lora(rank=8): OOM at 16 frames" in md
    assert "temporal_only: skipped at 4, 8, 16 frames" in md
    assert "RuntimeError: &lt;b&gt;boom&lt;/b&gt;" in md  # the reason's last line, escaped
    breakdown = (report_dir / "plots" / "memory_breakdown.svg").read_text()
    assert 'id="status-OOM' in breakdown and 'id="status-skipped' in breakdown


def test_report_md_header_escaping_and_no_accuracy_note(report_dir):
    md = (report_dir / "report.md").read_text()
    assert "Test CPU 9000" in md and "abc123" in md and "2.13.0+cpu" in md
    assert "<script>" not in md.split("```")[0] and "x&lt;script&gt;" in md  # outside the command's code fence
    assert f"vfbench run --methods '{PLANT}' --frames 4..16" in md  # the exact command, inside a fence
    assert "Accuracy was not measured" in md
    assert "relative to joint" in md


def test_the_run_section_names_what_all_left_out_and_why(tmp_path, report_dir):
    left = [["bf16", "this CPU has no native bfloat16"], ["compile", "code generation takes minutes per cell"]]
    d = write_run(tmp_path / "r", [ok("joint", 4, 1.0, 5)], left_out=left)
    write_report(d)
    md = (d / "report.md").read_text()
    assert "left out of --methods all" in md and "no native bfloat16" in md and "--methods all,bf16" in md
    assert "left out of --methods all" not in (report_dir / "report.md").read_text()  # nothing left out: no line


def test_html_is_self_contained_and_escaped(report_dir):
    page = (report_dir / "report.html").read_text()
    assert "<script" not in page.lower()  # the page has no script of its own, and the planted ones are text
    assert "x&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    assert page.count("data:image/png;base64,") == 4
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from the network


def test_budgets_scale_and_card_lines(tmp_path):
    tiny = load_run(write_run(tmp_path / "t", sample_records()))
    choice = budgets.choose_budgets(tiny)
    assert [b.mib for b in choice.budgets] == [1.0, 2.0, 4.0] and not any(b.card for b in choice.budgets)
    assert "16 / 40 / 80 GB lines are not drawn" in choice.note
    fits = {(f.method, f.budget.mib): f for f in budgets.largest_fits(tiny, choice)}
    assert fits[("joint", 2.0)].measured == 8 and not fits[("joint", 2.0)].measured_open
    assert fits[("joint", 4.0)].measured == 16 and fits[("joint", 4.0)].measured_open
    assert fits[("lora(rank=8)", 1.0)].measured is None
    big = load_run(write_run(tmp_path / "b", [ok("joint", 16, 3 * 1024, 1), ok("joint", 32, 6 * 1024, 1)]))
    choice = budgets.choose_budgets(big)
    assert [b.label for b in choice.budgets] == ["16 GB", "40 GB"] and "Not drawn: 80 GB" in choice.note


def test_estimates_add_a_column(tmp_path):
    recs = [ok("joint", 4, 1.0, 10, estimated_peak_mib=1.1), not_ok("joint", 8, "oom", "x")]
    recs[1] = recs[1].replace(extra={"estimated_peak_mib": 1.9})
    run = load_run(write_run(tmp_path / "e", recs))
    table = budgets.fits_table(run, budgets.choose_budgets(run))
    assert "1.0 MiB (run scale) estimated" in table.headers
    assert texts(absolute_table(run, metric_named("estimated_peak_mib")))["joint"] == ["1.1 MiB", "1.9 MiB"]


def test_pareto_front():
    P = accuracy.Point
    pts = [P("a", 1, 0.5), P("b", 2, 0.4), P("c", 2, 0.7), P("d", 4, 0.7), P("e", 8, 0.9)]
    assert [p.method for p in accuracy.pareto_front(pts)] == ["a", "c", "e"]


def test_accuracy_plot_and_pareto_table(tmp_path):
    d = write_run(tmp_path / "acc", sample_records(acc=True))
    write_report(d)
    assert (d / "plots" / "accuracy_vs_memory_r1_random.png").exists()
    # settings and timings are not accuracies: no plot, no table of them
    assert sorted(p.name for p in (d / "plots").glob("accuracy_*.png")) == ["accuracy_vs_memory_r1_random.png"]
    md = (d / "report.md").read_text()
    assert "Accuracy (steps)" not in md and "Accuracy (train s)" not in md
    assert "short→long" not in md  # no cell says it continued a shorter model
    assert "Accuracy was not measured" not in md and "Pareto front" in md
    assert "mask(ratio=0.5) (2.1 MiB, 0.720)" in md  # the cheapest and most accurate at T = 16
    assert "chance level 0.125" in md
    assert "lora(rank=8) at 16 frames: OOM" in md


def test_accuracy_note_says_which_cells_trained_short_to_long(tmp_path):
    recs = sample_records(acc=True)
    recs = [r.replace(extra={**r.extra, "acc_init": "stage2 at 8 frames", "acc_short_frames": 8, "acc_steps": 50})
            if r.frames == 16 and r.extra else r for r in recs]
    d = write_run(tmp_path / "acc", recs)
    write_report(d)
    md = (d / "report.md").read_text()
    assert "Cells above 8 frames trained short→long" in md and "for 50 steps" in md


def test_report_command_and_bad_path(tmp_path, capsys):
    d = write_run(tmp_path / "cli", sample_records()[:3])
    assert main(["report", str(d), "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "report.html").exists() and not (d / "report.html").exists()
    capsys.readouterr()
    assert main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "no run at" in err and len(err.strip().splitlines()) == 1


def test_empty_run_still_reports(tmp_path):
    d = write_run(tmp_path / "empty", [], methods=["joint"])
    page = write_report(d)
    assert "nothing was measured" in page.read_text()


@pytest.mark.parametrize("asked, default_hint", [("auto", True), ("", True), ("off", False)])
def test_the_cpu_default_hint_shows_only_where_accuracy_was_left_at_its_default(tmp_path, asked, default_hint):
    """On CPU the CLI's default (auto) leaves accuracy off and the report says why and how to add it; after an
    explicit --no-accuracy it says the run turned it off instead ("" = a run.json from before the field)."""
    d = write_run(tmp_path / "r", sample_records()[:2], accuracy="off", accuracy_asked=asked)
    write_report(d)
    md = (d / "report.md").read_text()
    assert "Accuracy was not measured" in md
    assert ("off by default on CPU" in md) is default_hint
    assert ("it was turned off" in md) is not default_hint


@pytest.mark.slow
def test_vfbench_run_writes_the_report(tmp_path):
    code = main(["run", "--model", "tiny", "--methods", "joint", "--frames", "4", "--out", str(tmp_path), "--run-id", "r",
                 "--executor", "inline", "--min-seconds", "0", "--min-repeats", "2", "--warmup", "1", "--no-accuracy"])
    assert code == 0
    run_dir = tmp_path / "r"
    for name in ("report.md", "report.html", "summary.csv", "plots/memory_vs_frames.svg", "plots/memory_vs_frames.png"):
        assert (run_dir / name).exists(), name
    info = json.loads((run_dir / "run.json").read_text())
    assert info["sweep"]["methods"] == ["joint"]


def test_unfinished_run_shows_missing_cells_as_not_run(tmp_path):
    d = write_run(tmp_path / "part", [ok("joint", 4, 1.0, 10)], methods=["joint", "mask(ratio=0.5)"])
    run = load_run(d)
    assert run.methods == ("joint", "mask(ratio=0.5)")
    assert texts(absolute_table(run, metric_named("peak_allocated_mib")))["mask(ratio=0.5)"] == ["not run"]
    write_report(d)
    assert "mask(ratio=0.5): not run at 4 frames" in (d / "report.md").read_text()


def test_unwritable_out_is_one_line(tmp_path, capsys):
    d = write_run(tmp_path / "w", sample_records()[:2])
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["report", str(d), "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert "cannot write the report into" in err and len(err.strip().splitlines()) == 1


def test_accuracy_against_training_compute_is_a_curve_per_method(tmp_path):
    """Records with a validation curve get one line per method on training FLOPs; the kept model is the point at
    acc_steps; short->long cells (their curve is the 16-frame cell's) and curve-less records draw nothing."""
    curve = {"acc_init": "stage1", "acc_curve": "50:0.4 100:0.6 150:0.58", "acc_step_flops": 1e9, "acc_steps": 100,
             "acc_stop": "plateau"}
    recs = [r.replace(extra={**r.extra, **curve}) if r.frames == 16 and r.status == "ok" else r for r in sample_records(acc=True)]
    c = accuracy.compute_curve("joint", curve)
    assert c.points == ((5e10, 0.4), (1e11, 0.6), (1.5e11, 0.58)) and c.kept == (1e11, 0.6) and c.stop == "plateau"
    assert accuracy.compute_curve("joint", {**curve, "acc_init": "stage2 at 16 frames"}) is None
    assert accuracy.compute_curve("joint", {k: v for k, v in curve.items() if k != "acc_curve"}) is None
    d = write_run(tmp_path / "acc", recs)
    write_report(d)
    assert (d / "plots" / "accuracy_vs_compute.png").exists()
    assert "Proxy accuracy vs training compute" in (d / "report.md").read_text()
    bare = write_run(tmp_path / "bare", sample_records(acc=True))
    write_report(bare)
    assert not (bare / "plots" / "accuracy_vs_compute.png").exists()
