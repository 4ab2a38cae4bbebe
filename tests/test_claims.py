"""`vfbench claims`: the verdict rules, the proxy findings reader, and that its figures are `vfbench estimate`'s."""

import json

import pytest

from vfbench.claims import accuracy, memory
from vfbench.claims.check import accuracy_rows, estimate_commands, memory_rows
from vfbench.claims.grid import GridSettings, method_label
from vfbench.claims.rules import (CANNOT, CONTRADICTED, HOLDS_ONLY, REPRODUCED, Outcome, Setting, above, at_most,
                                  batch_region, below, in_range, region, verdict)
from vfbench.cli import main
from vfbench.estimate.sweep import estimate_grid
from vfbench.spec import CellSpec


def outcomes(table: dict) -> list[Outcome]:
    """{(kernel, batch): holds} -> outcomes with value 1/0."""
    return [Outcome(Setting("m", k, b), float(h), h) for (k, b), h in table.items()]


# ---------------------------------------------------------------- verdict rules, one test each

def test_reproduced_when_it_holds_everywhere():
    assert verdict(outcomes({("sdpa", 1): True, ("math", 1): True})) == (REPRODUCED, "at every setting tried")


def test_contradicted_when_it_holds_nowhere():
    assert verdict(outcomes({("sdpa", 1): False, ("sdpa", 8): False}))[0] == CONTRADICTED


def test_cannot_check_without_outcomes():
    assert verdict([])[0] == CANNOT


def test_holds_only_under_names_the_region_per_kernel():
    table = {("sdpa", b): b >= 8 for b in (1, 2, 4, 8, 16, 32)} | {("math", b): True for b in (1, 2, 4, 8, 16, 32)}
    word, where = verdict(outcomes(table))
    assert word == HOLDS_ONLY
    assert where == "batch >= 8 with flash-style sdpa; every batch with math attention"


@pytest.mark.parametrize("held,expected", [
    ([1, 2, 4], "batch <= 4"), ([8, 16, 32], "batch >= 8"), ([2, 4], "batch 2-4"), ([1, 8], "batch 1, 8"),
    ([], "no batch"), ([1, 2, 4, 8, 16, 32], "every batch"),
])
def test_batch_region(held, expected):
    assert batch_region(held, [1, 2, 4, 8, 16, 32]) == expected


def test_region_names_models_when_several():
    o = [Outcome(Setting("a", "sdpa", 1), 1, True), Outcome(Setting("b", "sdpa", 1), 0, False)]
    assert region(o) == "batch 1 with flash-style sdpa (a); no batch with flash-style sdpa (b)"


def test_range_and_threshold_rules():
    two_three = in_range(2.0, 3.0)
    assert two_three(2.0) and two_three(3.04) and two_three(1.96) and not two_three(1.94) and not two_three(3.06)
    assert above(1.0)(1.01) and not above(1.0)(1.0)
    assert below(1.0)(0.99) and not below(1.0)(1.0)
    assert at_most(16.0)(16.0) and not at_most(16.0)(16.01)


def test_proxy_findings_verdicts(tmp_path):
    a, d, n = accuracy.AGREES, accuracy.DISAGREES, accuracy.NOT_RUN

    def finding(claim, default, larger=n, low=n, low_larger=n):
        verdicts = {"findings": default, "findings2x": larger, "needle": low, "needle2x": low_larger}
        return accuracy.Finding(claim, "rule", "0.9 -> 0.8", (0, 1, 2) if default != n else (), verdicts)

    written = [finding("A holds", a, a), finding("B fails", d, d), finding("C", n), finding("D", a, d),
               finding("E", a, a, d, d), finding("F", d, d, a, a), finding("G", d, d, a, d), finding("H", a, n, a)]
    path = tmp_path / "findings.json"
    accuracy.write_findings(path, written, {"findings": "default"}, "cmd")
    found = accuracy.read_findings(path)
    assert found == written  # the file round-trips
    assert [f.word for f in found] == [a, d, n, "depends on budget", "agrees; depends on redundancy (2-frame events: disagrees)",
                                       "disagrees; depends on redundancy (2-frame events: agrees)",
                                       "disagrees; depends on redundancy (2-frame events: depends on budget)", a]
    assert [accuracy.verdict_of(f)[0] for f in found] == [HOLDS_ONLY, CONTRADICTED, CANNOT, CANNOT, HOLDS_ONLY, HOLDS_ONLY,
                                                           CONTRADICTED, HOLDS_ONLY]
    assert "twice its training budget" in accuracy.verdict_of(found[3])[1]
    assert accuracy.verdict_of(found[4])[1].endswith("depends on redundancy (2-frame events: disagrees)")
    # disagrees at the default setting but agrees with less redundancy: it holds there, and the row says so
    assert accuracy.verdict_of(found[5])[1].endswith("only with 2-frame events, not at the default setting "
                                                     "(depends on redundancy (2-frame events: agrees))")
    assert accuracy.verdict_of(found[6])[1].endswith("(2-frame events: depends on budget)")
    rows = accuracy_rows(path)
    assert rows[0].figure == "0.9 -> 0.8" and rows[0].command == accuracy.PROXY_COMMAND and "seeds 0, 1, 2" in rows[0].settings
    missing = accuracy_rows(tmp_path / "absent.json")
    assert len(missing) == 1 and missing[0].verdict == CANNOT and "benchmarks/proxy_honesty.py" in missing[0].command


def test_the_committed_findings_file_reads_and_matches_its_table():
    """results/proxy-honesty/findings.json is what `proxy_honesty.py tables` wrote next to honesty.md: same verdicts."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "results" / "proxy-honesty"
    found = accuracy.read_findings(folder / "findings.json")
    table = (folder / "honesty.md").read_text()
    assert len(found) >= 10
    for f in found:
        assert f"| {f.claim} | {f.rule} | {f.figure} | {', '.join(map(str, f.seeds))} | {f.word} |" in table


def test_a_file_that_is_not_a_findings_file_is_one_line_before_any_estimate(tmp_path, capsys, monkeypatch):
    import vfbench.claims.check

    def no_estimates(*a, **k):
        raise AssertionError("the estimates ran before the proxy file was checked")

    monkeypatch.setattr(vfbench.claims.check, "memory_rows", no_estimates)
    md = tmp_path / "honesty.md"
    md.write_text("| finding | rule |\n")
    assert main(["claims", "--model", "tiny", "--large-model", "tiny@64px", "--batches", "1", "--proxy-results", str(md)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a proxy findings file" in err[0] and "findings.json" in err[0], err


# ---------------------------------------------------------------- the figures are vfbench estimate's

SMALL_GRID = GridSettings(models=(("base", "tiny"), ("large", "tiny@64px")), batches=(1, 2))
SUBSET = tuple(c for c in memory.CLAIMS if c.id in ("mask75", "fst_params_b", "fits16_b"))


def test_claim_figures_equal_estimate_grid():
    rows = {r.id: r for r in memory_rows(SMALL_GRID, claims=SUBSET)}
    peak = {}
    cells = [CellSpec("tiny", method_label(m, k), 16, b, "bf16", "cuda", 0)
             for m in ("joint", "mask(ratio=0.75)") for k in ("sdpa", "math") for b in (1, 2)]
    for res in estimate_grid(cells):
        for r in res.records:
            peak[(r.method, r.batch)] = r.extra["estimated_peak_mib"]
    for o in rows["mask75"].outcomes:
        k, b = o.setting.kernel, o.setting.batch
        expected = peak[(method_label("joint", k), b)] / peak[(method_label("mask(ratio=0.75)", k), b)]
        assert o.value == pytest.approx(expected, rel=1e-12)
        assert o.holds == (2.0 <= round(expected, 1) <= 3.0)
    assert len(rows["mask75"].outcomes) == 4 and len(rows["fst_params_b"].outcomes) == 1
    assert rows["fits16_b"].verdict == REPRODUCED  # tiny fits 16 GiB at every setting


def test_row_command_prints_the_same_figure(capsys):
    """The command a row names (`vfbench estimate`) prints the peaks its figure is made of."""
    row = memory_rows(SMALL_GRID, claims=SUBSET[:1])[0]
    assert row.command.startswith("for b in 1 2; do vfbench estimate --model tiny")
    assert main(["estimate", "--model", "tiny", "--methods", "joint,mask(ratio=0.75)", "--frames", "16", "--batch", "2",
                 "--dtype", "bf16", "--device-kind", "cuda", "--json", "--jobs", "1"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    peaks = {rec["method"]: rec["estimated_peak_mib"] for rec in lines if rec["record"] == "cell"}
    sdpa2 = next(o for o in row.outcomes if o.setting == Setting("tiny", "sdpa", 2))
    assert sdpa2.value == pytest.approx(peaks["joint"] / peaks["mask(ratio=0.75)"], rel=1e-6)


def test_estimate_commands_list_both_kernels():
    claim = next(c for c in memory.CLAIMS if c.id == "mask75")
    cmd = estimate_commands(claim, SMALL_GRID)
    assert "--methods 'joint,attn_kernel(kind=math),mask(ratio=0.75),mask(ratio=0.75)+attn_kernel(kind=math)'" in cmd


def test_every_claim_names_a_rule_and_cells():
    ids = [c.id for c in memory.CLAIMS]
    assert len(ids) == len(set(ids))
    for c in memory.CLAIMS:
        assert c.rule and c.paper and memory.claim_cells(c, GridSettings(models=(("base", "vit-b"), ("large", "vit-l"))))


def test_bad_claims_input_is_exit_2(capsys):
    assert main(["claims", "--model", "tiny"]) == 2  # no ViT-L counterpart by name
    assert main(["claims", "--model", "vit-b", "--batches", "0"]) == 2
    assert main(["claims", "--model", "nope"]) == 2
    assert "error" in capsys.readouterr().err


def test_bad_jobs_are_one_line_before_any_estimate(capsys):
    for jobs in ("abc", "0", "-1"):
        assert main(["claims", "--jobs", jobs, "--batches", "1"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("vfbench: error: --jobs"), err


def test_claims_command_end_to_end(tmp_path, capsys):
    """Every claim gets a row with a verdict; the table file starts with the command that wrote it."""
    args = ["claims", "--model", "tiny", "--large-model", "tiny@64px", "--batches", "1", "--jobs", "1",
            "--proxy-results", str(tmp_path / "absent.json")]
    assert main(args + ["--out", str(tmp_path / "out"), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == [c.id for c in memory.CLAIMS] + ["accuracy"]
    assert {r["verdict"] for r in rows} <= {REPRODUCED, HOLDS_ONLY, CONTRADICTED, CANNOT}
    assert all(r["region"] and r["command"] for r in rows)
    text = (tmp_path / "out" / "claims.md").read_text()
    assert "Generated by:" in text.splitlines()[2] and "vfbench claims" in text and "## Each memory claim per setting" in text
