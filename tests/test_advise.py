"""`vfbench advise`: memory equal to `vfbench estimate`'s, ranking, exclusions with reasons, bad input."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from vfbench.advice.advise import Option, dominates, pareto, rank
from vfbench.advice.candidates import LOSSLESS, OTHER, PAPER_LEVERS, candidates, composition_texts
from vfbench.cli import main
from vfbench.errors import UserError
from vfbench.estimate.peak import estimate_problems
from vfbench.registry import compose
from vfbench.report.build import write_report
from vfbench.record import Record
from vfbench.store import RunStore
from vfbench.spec import CellSpec

METHODS = "joint,checkpoint,effshortvivit,longvivit,temporal_only,frame_avg"
SETUP = ["--model", "tiny", "--device-kind", "cpu", "--dtype", "fp32", "--batch", "2", "--jobs", "1"]
FRAMES = 16


def cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def advise_json(budget_mib: float, *extra) -> dict:
    code, out, err = cli("advise", "--budget", f"{budget_mib:.4f}MiB", "--frames", str(FRAMES), "--methods", METHODS,
                         *SETUP, "--json", *extra)
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def estimated() -> dict:
    """`vfbench estimate --json` peaks of METHODS at FRAMES, by method label."""
    code, out, err = cli("estimate", "--frames", str(FRAMES), "--methods", METHODS, *SETUP, "--json")
    assert code == 0, err
    cells = [json.loads(line) for line in out.splitlines()]
    return {c["method"]: c["estimated_peak_mib"] for c in cells if c.get("status") == "ok"}


def peaks_of(advice: dict) -> dict:
    got = {o["label"]: o["estimated_peak_mib"] for o in advice["options"]}
    got.update({e["label"]: e["estimated_peak_mib"] for e in advice["excluded"] if e["kind"] == "does not fit"})
    return got


def test_memory_figures_equal_estimate_and_lossless_tier_wins(estimated):
    # just below joint's peak: joint (and the larger frame_avg) are out, checkpoint is the lossless option that fits
    budget = estimated["joint"] - 0.01
    advice = advise_json(budget)
    peaks = peaks_of(advice)
    assert peaks and all(peaks[label] == estimated[label] for label in peaks)
    assert {"joint", "checkpoint", "effshortvivit", "longvivit"} <= set(peaks)
    assert all(o["estimated_peak_mib"] <= budget for o in advice["options"])
    assert advice["recommendation"] == "checkpoint"
    assert "keeps every token" in advice["reasons"][0]
    tiers = [o["tier"] for o in advice["options"]]
    assert tiers == sorted(tiers)
    flops = [o["flops_per_step"] for o in advice["options"] if o["tier"] == PAPER_LEVERS]
    assert flops == sorted(flops)  # no time model on CPU without a run: FLOPs order each tier


def test_checkpointed_twin_is_not_traced_when_the_plain_step_fits(estimated):
    advice = advise_json(estimated["joint"] + 1)
    assert advice["recommendation"] == "joint"
    why = {e["label"]: e for e in advice["excluded"]}
    assert why["checkpoint"]["kind"] == "not traced" and "joint fits" in why["checkpoint"]["reason"]


def test_paper_levers_when_nothing_lossless_fits(estimated):
    lossless_min = min(estimated["joint"], estimated["checkpoint"])
    assert estimated["longvivit"] < lossless_min
    advice = advise_json((estimated["longvivit"] + lossless_min) / 2)
    best = advice["options"][0]
    assert best["label"] == advice["recommendation"] and best["tier"] == PAPER_LEVERS
    assert any(f"the smallest, {'checkpoint' if estimated['checkpoint'] < estimated['joint'] else 'joint'}" in r
               for r in advice["reasons"])


def test_exclusions_say_why(estimated):
    budget = estimated["joint"] - 0.01
    why = {e["label"]: e for e in advise_json(budget)["excluded"]}
    cell = CellSpec("tiny", "temporal_only", FRAMES, 2, "fp32", "cpu", 0)
    assert why["temporal_only"]["kind"] == "cannot run"
    assert why["temporal_only"]["reason"] == "; ".join(estimate_problems(cell))
    assert why["joint"]["kind"] == "does not fit"
    assert f"{estimated['joint']:,.1f} MiB > budget {budget:,.1f} MiB" in why["joint"]["reason"]


def test_nothing_fits_has_no_recommendation(estimated):
    advice = advise_json(min(estimated.values()) / 2)
    assert advice["options"] == [] and advice["recommendation"] is None
    assert "nothing fits" in advice["reasons"][0]


def test_compositions_are_candidates_or_refused_with_the_registry_reason():
    cands, refused = candidates(CellSpec("tiny", "joint", FRAMES, 2, "fp32", "cpu", 0))
    names = {n for c in cands for n in (c.label, *c.same_as)}
    refusals = {r.label: r.reason for r in refused}
    for text in composition_texts("fp32"):
        try:
            assert compose(text).label in names
        except UserError as exc:
            assert refusals[text] == str(exc)
    tier = {c.label: c.tier for c in cands}
    assert tier["joint"] == tier["checkpoint"] == LOSSLESS
    assert tier["longvivit"] == PAPER_LEVERS and tier["coarse_both"] == OTHER
    assert not any("bf16" in t for t in composition_texts("bf16"))  # the cell's own dtype: the same step


def _option(label, peak, ms=None, acc=None, tier=LOSSLESS, flops=1):
    return Option(label, (), tier, 16, peak, 100 - peak, flops, ms, "formula" if ms else "", None, acc, 16 if acc else None)


def test_rank_accuracy_first_then_tier_then_time_and_pareto():
    a = _option("a", 50, ms=30, acc=0.6, tier=OTHER)
    b = _option("b", 40, ms=10, acc=0.7, tier=PAPER_LEVERS)
    c = _option("c", 30, ms=20, tier=LOSSLESS)
    d = _option("d", 20, ms=5, tier=PAPER_LEVERS)
    e = _option("e", 25, ms=8, tier=PAPER_LEVERS)
    assert [o.label for o in rank([d, c, a, e, b], max_mode=False)] == ["b", "a", "c", "d", "e"]
    assert dominates(b, a) and not dominates(a, b)
    assert dominates(d, e) and dominates(d, c) and not dominates(c, d)  # the tier is no Pareto criterion
    assert not dominates(d, b)  # accuracy known for one only: not compared
    assert set(pareto([a, b, c, d, e])) == {"b", "d"}


def _write_run(path, records):
    store = RunStore(path)
    store.create({"sweep": {"model": "tiny", "methods": sorted({r.method for r in records}), "frames": [FRAMES],
                            "batch": 2, "dtype": "fp32", "device": "auto"}, "env": {"cpu": "Test CPU", "device": "cpu"}})
    for r in records:
        store.append(r)
    return path


def test_from_run_measured_time_accuracy_and_report_section(tmp_path, estimated):
    def rec(method, ms, acc):
        cell = CellSpec("tiny", method, FRAMES, 2, "fp32", "cpu", 0)
        return Record.for_cell(cell, "ok", step_ms_median=ms, flops_per_step=10**9, peak_allocated_mib=1.0,
                               acc_r1_temporal=acc, acc_r1_random=0.9)

    run = _write_run(tmp_path / "run", [rec("joint", 40.0, 0.5), rec("effshortvivit", 15.0, 0.8)])
    code, out, err = cli("advise", "--budget", f"{estimated['joint'] + 1:.4f}MiB", "--frames", str(FRAMES),
                         "--methods", METHODS, "--jobs", "1", "--from", str(run), "--json")
    assert code == 0, err
    advice = json.loads(out)
    assert (advice["settings"]["model"], advice["settings"]["device"]) == ("tiny", "cpu")  # the sweep said auto
    assert advice["settings"]["accuracy_key"] == "acc_r1_temporal"
    by = {o["label"]: o for o in advice["options"]}
    assert advice["recommendation"] == "effshortvivit" and "acc_r1_temporal 0.800" in advice["reasons"][0]
    assert by["joint"]["step_ms"] == 40.0 and by["joint"]["time_source"] == "measured"
    assert by["longvivit"]["accuracy"] is None  # the run did not measure it
    assert (run / "advice.md").read_text().count("effshortvivit") >= 2
    write_report(run)
    assert "## Which recipe fits the budget" in (run / "report.md").read_text()


def test_frames_max_equals_the_estimate_budget_answer():
    budget = "9MiB"
    code, out, err = cli("estimate", "--frames", "16,128", "--methods", "joint,longvivit", *SETUP, "--budget", budget, "--json")
    assert code == 0, err
    answers = {a["method"]: a for a in map(json.loads, out.splitlines()) if a["record"] == "budget"}
    code, out, err = cli("advise", "--budget", budget, "--frames", "max", "--methods", "joint,longvivit", *SETUP, "--json")
    assert code == 0, err
    advice = json.loads(out)
    for o in advice["options"]:
        assert (o["frames"], round(o["estimated_peak_mib"], 3)) == (answers[o["label"]]["largest_frames"],
                                                                     answers[o["label"]]["estimated_peak_mib"])
    assert advice["options"][0]["label"] == "joint"  # the lossless tier first, even though longvivit reaches more
    assert advice["options"][1]["frames"] > advice["options"][0]["frames"]


@pytest.mark.parametrize("args, says", [
    (["--budget", "0", "--frames", "16"], "cannot read memory size"),
    (["--budget", "0GiB", "--frames", "16"], "must be positive"),
    (["--budget", "abc", "--frames", "16"], "cannot read memory size"),
    (["--budget=-1GiB", "--frames", "16"], "cannot read memory size"),
    (["--budget", "-1GiB", "--frames", "16"], "argument --budget"),  # argparse reads -1GiB as an option: still one line
    (["--budget", "16GiB,80GiB", "--frames", "16"], "one memory size"),
    (["--budget", "16GiB", "--frames", "0"], "must be positive"),
    (["--budget", "16GiB", "--frames", "banana"], "cannot read frames"),
    (["--budget", "16GiB", "--frames", "16..64"], "one frame count or 'max'"),
    (["--budget", "16GiB", "--frames", "16", "--from", "/nonexistent/run"], "no run at"),
    (["--budget", "16GiB", "--frames", "16", "--model", "vit-z"], "vit-z"),
    (["--budget", "16GiB"], "--frames"),
])
def test_bad_input_is_one_line_and_exit_2(args, says):
    code, out, err = cli("advise", *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and says in err and "Traceback" not in err
