"""`vfbench compare`: exit 1 on a regression beyond the threshold, 0 within noise, 2 on bad input."""

import pytest

from test_report import ENV, not_ok, ok, write_run
from vfbench.cli import main
from vfbench.report.compare import compare_runs, parse_threshold
from vfbench.report.load import load_run


def base_records(changes=None):
    """Two methods x two frame counts; `changes` maps (method, frames) -> replacement record."""
    recs = {
        ("joint", 4): ok("joint", 4, 1.0, 100.0), ("joint", 8): ok("joint", 8, 2.0, 200.0),
        ("mask", 4): ok("mask", 4, 0.6, 60.0, acc_r1_random=0.5), ("mask", 8): ok("mask", 8, 1.1, 110.0, acc_r1_random=0.6),
    }
    recs.update(changes or {})
    return list(recs.values())


def compare(tmp_path, b_records, *extra, a_records=None, env_b=None):
    a = write_run(tmp_path / "a", a_records or base_records())
    b = write_run(tmp_path / "b", b_records, env=env_b)
    return main(["compare", str(a), str(b), *extra])


def test_same_records_pass(tmp_path, capsys):
    assert compare(tmp_path, base_records()) == 0
    assert "no regression beyond 5%" in capsys.readouterr().out


def test_planted_memory_regression_fails(tmp_path, capsys):
    assert compare(tmp_path, base_records({("joint", 8): ok("joint", 8, 2.3, 200.0)})) == 1
    out = capsys.readouterr().out
    assert "joint @ 8 frames: peak_allocated_mib 2.0 MiB -> 2.3 MiB (1.150x" in out
    assert "1 regressions beyond 5%" in out


def test_same_commit_within_noise_passes(tmp_path, capsys):
    # Medians 8% slower (beyond 5%) but the p10-p90 ranges overlap, as two runs of one commit on a busy machine do.
    b = [ok(r.method, r.frames, r.peak_allocated_mib * 1.001, r.step_ms_median * 1.08, spread=0.12,
            **({"acc_r1_random": r.extra["acc_r1_random"]} if "acc_r1_random" in r.extra else {})) for r in base_records()]
    assert compare(tmp_path, b) == 0
    out = capsys.readouterr().out
    assert "1.080x ~" in out and "no regression" in out


def test_slow_beyond_spread_fails(tmp_path, capsys):
    b = base_records({("joint", 4): ok("joint", 4, 1.0, 150.0)})  # p10 135 ms > a's p90 110 ms
    assert compare(tmp_path, b) == 1
    out = capsys.readouterr().out
    assert "joint @ 4 frames: step_ms_median 100.0 ms -> 150.0 ms" in out
    assert "joint @ 4 frames: clips_per_s" in out  # throughput fell with it


def test_status_change_is_a_regression(tmp_path, capsys):
    assert compare(tmp_path, base_records({("mask", 8): not_ok("mask", 8, "oom", "out of memory")})) == 1
    assert "mask @ 8 frames: status ok -> oom" in capsys.readouterr().out


def test_accuracy_drop_fails_and_metrics_option_limits(tmp_path, capsys):
    b = base_records({("mask", 8): ok("mask", 8, 1.1, 110.0, acc_r1_random=0.5)})
    assert compare(tmp_path, b) == 1
    assert "acc_r1_random" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--metrics", "peak_allocated_mib"]) == 0


def test_threshold_option(tmp_path):
    b = base_records({("joint", 8): ok("joint", 8, 2.3, 200.0)})
    assert compare(tmp_path, b, "--fail-above", "20%") == 0
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--fail-above", "10"]) == 1
    assert parse_threshold("2.5%") == pytest.approx(0.025) and parse_threshold("5") == pytest.approx(0.05)


def test_different_env_refused_unless_allowed(tmp_path, capsys):
    other = {**ENV, "cpu": "Other CPU"}
    assert compare(tmp_path, base_records(), env_b=other) == 2
    err = capsys.readouterr().err
    assert "different machines (cpu: 'Test CPU 9000' vs 'Other CPU')" in err and "--allow-different-env" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--allow-different-env"]) == 0
    gpu = {**ENV, "gpu_name": "NVIDIA H100", "device": "cuda"}
    with pytest.raises(Exception, match="gpu_name: 'None' vs 'NVIDIA H100'"):
        compare_runs(load_run(tmp_path / "a"), load_run(write_run(tmp_path / "g", base_records(), env=gpu)))


@pytest.mark.parametrize("args,message", [
    (["--fail-above", "lots"], "--fail-above must be a percentage"),
    (["--fail-above=-3%"], "--fail-above must be a percentage of 0 or more"),
    (["--metrics", "peak_alocated_mib"], "unknown metric 'peak_alocated_mib' (did you mean 'peak_allocated_mib'"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, message):
    assert compare(tmp_path, base_records(), *args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_no_common_cells_and_missing_run(tmp_path, capsys):
    b = [ok("joint", 4, 1.0, 100.0).replace(batch=8)]
    assert compare(tmp_path, b) == 2
    assert "no cell in common" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "missing")]) == 2


def test_cells_only_in_one_run_are_listed_not_judged(tmp_path, capsys):
    assert compare(tmp_path, base_records()[:3]) == 0
    assert "1 cells only in a (not compared): mask@8" in capsys.readouterr().out


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_metric_is_a_regression(tmp_path, capsys, bad):
    b = base_records({("joint", 8): ok("joint", 8, bad, 200.0)})
    assert compare(tmp_path, b) == 1
    out = capsys.readouterr().out
    assert "nanx" not in out and "joint @ 8 frames: peak_allocated_mib" in out and "not a finite number" in out
