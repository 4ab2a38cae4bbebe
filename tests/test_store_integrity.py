"""The store never loses or invents a record: a complete last line is kept, malformed lines and a damaged
run.json are reported (never a traceback), the lock comes before any write, and a failed write stops the
sweep with the store valid and the unmeasured cells missing."""

import datetime
import json
import time
import types
import warnings

import pytest

from test_report import ok, write_run
from vfbench.cli import main
from vfbench.commands import run_cmd
from vfbench.record import Record
from vfbench.store import MalformedRecordWarning, RunStore, StoreWriteError, new_run_folder
from vfbench.spec import CellSpec

QUICK = ["--model", "tiny", "--methods", "joint", "--executor", "inline", "--min-seconds", "0", "--min-repeats", "2",
         "--warmup", "1", "--no-report", "--no-accuracy", "--no-estimate"]


def without(flag):
    """QUICK less `flag` (and its value, or its --no- form): the command line would win over YAML."""
    out = list(QUICK)
    for f in (flag, flag.replace("--", "--no-")):
        if f in out:
            i = out.index(f)
            del out[i: i + (1 if f.startswith("--no-") or out[i + 1].startswith("--") else 2)]
    return out


def run_cli(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


def quick_run(tmp_path, capsys, frames="2,4", run_id="r", *extra):
    rc, out, err = run_cli(capsys, "run", *QUICK, "--frames", frames, "--out", tmp_path, "--run-id", run_id, *extra)
    assert rc == 0, err
    return RunStore(tmp_path / run_id)


def lines(store):
    return store.records_path.read_bytes().splitlines()


# -- 1. a complete last record without its newline ------------------------------------------------

def test_complete_last_record_without_newline_is_kept(tmp_path):
    path = write_run(tmp_path / "r", [ok("joint", 4, 1.0, 10.0), ok("joint", 8, 2.0, 20.0)])
    store = RunStore(path)
    store.records_path.write_bytes(store.records_path.read_bytes().rstrip(b"\n"))  # e.g. an editor's save
    store.append(ok("joint", 16, 4.0, 40.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [r.frames for r in store.records()] == [4, 8, 16]
    assert not (path / "records.torn").exists()


def test_torn_last_line_is_set_aside_not_lost(tmp_path):
    store = RunStore(write_run(tmp_path / "r", [ok("joint", 4, 1.0, 10.0)]))
    with open(store.records_path, "a") as f:
        f.write('{"key": "abc", "status": "o')
    with pytest.warns(MalformedRecordWarning, match="torn"):
        store.append(ok("joint", 8, 2.0, 20.0))
    assert [r.frames for r in store.records()] == [4, 8]
    assert (store.path / "records.torn").read_text() == '{"key": "abc", "status": "o\n'


# -- 2. malformed lines and a damaged run.json ----------------------------------------------------

def _bad_lines(good: Record) -> list[str]:
    d = good.to_dict()
    return ["123", "null", "[1,2]", '{"foo":1}', json.dumps({**d, "schema_version": "2"}),
            json.dumps({**d, "frames": "abc"}), json.dumps({**d, "status": "fine"}), '{"key": "torn", "sta']


def test_malformed_lines_are_counted_and_skipped(tmp_path):
    good = [ok("joint", 4, 1.0, 10.0), ok("joint", 8, 2.0, 20.0)]
    store = RunStore(write_run(tmp_path / "r", good))
    bad = _bad_lines(good[0])
    store.records_path.write_text("\n".join([*bad[:4], json.dumps(good[0].to_dict()), *bad[4:],
                                             json.dumps(good[1].to_dict())]) + "\n")
    with pytest.warns(MalformedRecordWarning, match=f"skipped {len(bad)} malformed"):
        assert store.records() == good
    assert [n for n, _ in store.bad_lines] == [1, 2, 3, 4, 6, 7, 8, 9]


@pytest.mark.parametrize("bad", range(8))
def test_report_and_compare_survive_a_malformed_line(tmp_path, capsys, bad):
    good = [ok("joint", 4, 1.0, 10.0), ok("joint", 8, 2.0, 20.0)]
    a = write_run(tmp_path / "a", good)
    b = write_run(tmp_path / "b", good)
    with open(b / "records.jsonl", "a") as f:
        f.write(_bad_lines(good[0])[bad] + "\n")
    rc, out, err = run_cli(capsys, "compare", a, b)
    assert rc == 0 and "no regression" in out
    assert "vfbench: warning:" in err and "malformed line" in err
    rc, out, err = run_cli(capsys, "report", b)
    assert rc == 0, err


@pytest.mark.parametrize("text", ['{"schema_version": 1, "sweep": {"model": "tiny", "meth', '{"schema_version": "2"}',
                                  "[]", '{"schema_version": 1, "env": "abc"}', '{"sweep": {"frames": "abc"}}',
                                  '{"sweep": {"methods": [1]}}'])
def test_damaged_run_json_is_one_line(tmp_path, capsys, text):
    path = write_run(tmp_path / "r", [ok("joint", 4, 1.0, 10.0)])
    (path / "run.json").write_text(text)
    for args in (["report", path], ["compare", path, path], ["run", "--resume", "r", "--out", tmp_path]):
        rc, out, err = run_cli(capsys, *args)
        assert rc == 2 and "run.json is damaged" in err and len(err.strip().splitlines()) == 1, err


def test_damaged_stored_sweep_is_one_line_on_resume(tmp_path, capsys):
    store = quick_run(tmp_path, capsys, "2")
    info = json.loads(store.run_path.read_text())
    for sweep in ({**info["sweep"], "frames": "abc"}, {**info["sweep"], "timeout_s": float("inf")}, "abc", None):
        store.run_path.write_text(json.dumps({**info, "sweep": sweep}))
        rc, out, err = run_cli(capsys, "run", "--resume", "r", "--out", tmp_path)
        assert rc == 2 and ("stored sweep" in err or "damaged" in err) and len(err.strip().splitlines()) == 1, err


def test_resume_measures_cells_whose_lines_are_malformed(tmp_path, capsys):
    store = quick_run(tmp_path, capsys, "2,4")
    first, second = lines(store)
    store.records_path.write_bytes(b"\n".join([first, *(b.encode() for b in _bad_lines(Record.from_dict(json.loads(first)))[:-1]),
                                               b'{"foo": 1}']) + b"\n")  # the frames-4 record became junk
    rc, out, err = run_cli(capsys, "run", "--resume", "r", "--out", tmp_path)
    assert rc == 0, err
    with pytest.warns(MalformedRecordWarning):
        recs = store.records()
    assert sorted(r.frames for r in recs) == [2, 4] and len({r.key for r in recs}) == 2
    assert len(store.bad_lines) == 8 and lines(store)[0] == first  # only the lost cell ran again


# -- 3. the lock comes before any write; default run ids never collide ----------------------------

def test_loser_of_a_run_id_race_writes_nothing(tmp_path, capsys):
    winner = RunStore(tmp_path / "r")
    winner.prepare()
    winner.lock()  # the other run has taken the folder and not yet written its run.json
    try:
        rc, out, err = run_cli(capsys, "run", *QUICK, "--frames", "2", "--out", tmp_path, "--run-id", "r")
        assert rc == 2 and "in use by another vfbench run" in err
        assert not (tmp_path / "r" / "run.json").exists()
    finally:
        winner.unlock()


def test_default_run_ids_in_the_same_second_do_not_collide(tmp_path, capsys, monkeypatch):
    fixed = datetime.datetime(2026, 1, 2, 3, 4, 5)
    fake = types.SimpleNamespace(datetime=types.SimpleNamespace(now=lambda tz=None: fixed), timezone=datetime.timezone)
    monkeypatch.setattr(run_cmd, "datetime", fake)
    for _ in range(2):
        rc, out, err = run_cli(capsys, "run", *QUICK, "--frames", "3", "--out", tmp_path)  # 3: skipped at once
        assert rc == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20260102-030405", "20260102-030405-2"]
    assert new_run_folder(tmp_path, "x").name == "x" and new_run_folder(tmp_path, "x").name == "x-2"


# -- 5. numbers: finite, typed, bounded, checked before the run folder exists ---------------------

@pytest.mark.parametrize("args", [["--timeout", "nan"], ["--timeout", "inf"], ["--min-seconds", "nan"], ["--batch", "2.9"],
                                  ["--warmup", "-1"], ["--seed", "1e3"], ["--timeout", "1e300"]])
def test_bad_numbers_on_the_command_line(tmp_path, capsys, args):
    rc, out, err = run_cli(capsys, "run", *QUICK, "--frames", "2", "--out", tmp_path / "o", *args)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and args[0] in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("yaml_text,flag", [("timeout: .inf", "--timeout"), ("timeout: .nan", "--timeout"),
                                            ("batch: 2.9", "--batch"), ("report: maybe", "--report"),
                                            ("min_seconds: [1]", "--min-seconds"), ("skip_after_oom: 2", "--skip-after-oom")])
def test_bad_numbers_in_yaml(tmp_path, capsys, yaml_text, flag):
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(yaml_text + "\n")
    rc, out, err = run_cli(capsys, "run", *without(flag), "--frames", "2", "--out", tmp_path / "o", "--config", cfg)
    assert rc == 2 and flag in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_yaml_false_as_text_is_false(tmp_path, capsys):
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text('report: "false"\nbatch: 2.0\n')
    rc, out, err = run_cli(capsys, "run", *without("--report"), "--frames", "3", "--out", tmp_path, "--run-id", "r", "--config", cfg)
    assert rc == 0, err
    assert not (tmp_path / "r" / "report.md").exists() and "report:" not in out


def test_yaml_alias_bomb_is_refused_at_once(tmp_path, capsys):
    """Nine nested aliases under a valid key: 9**9 items once expanded (the "billion laughs")."""
    levels = ["&a [1,1,1,1,1,1,1,1,1]"] + [f"&{c} [{','.join(['*' + p] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")]
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(f"frames: [{', '.join(levels)}]\n")
    t0 = time.time()
    rc, out, err = run_cli(capsys, "run", *QUICK, "--out", tmp_path / "o", "--config", cfg)
    assert rc == 2 and "aliases" in err and not (tmp_path / "o").exists()
    assert time.time() - t0 < 10


# -- 6. a failed write stops the sweep; the store stays valid; resume measures the rest -----------

def test_store_full_mid_line_rolls_back_and_resume_finishes(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VFBENCH_TEST_FAULTS", json.dumps({"joint@4": "store_full"}))
    rc, out, err = run_cli(capsys, "run", *QUICK, "--frames", "2,4,8", "--out", tmp_path, "--run-id", "r")
    assert rc == 1 and len(err.strip().splitlines()[-1:]) == 1
    assert "No space left on device" in err and "1 of 3 cells are recorded" in err and "--resume r" in err
    store = RunStore(tmp_path / "r")
    assert store.records_path.read_bytes().endswith(b"\n") and [r.frames for r in store.records()] == [2]
    monkeypatch.delenv("VFBENCH_TEST_FAULTS")
    rc, out, err = run_cli(capsys, "run", "--resume", "r", "--out", tmp_path)
    assert rc == 0, err
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sorted(r.frames for r in store.records()) == [2, 4, 8]
    assert all(r.status == "ok" for r in store.records())


@pytest.mark.parametrize("executor", ["inline", "local"])
def test_cell_on_a_full_disk_is_no_false_error_record(tmp_path, capsys, monkeypatch, executor):
    monkeypatch.setenv("VFBENCH_TEST_FAULTS", json.dumps({"joint@4": "cell_full"}))
    rc, out, err = run_cli(capsys, "run", *without("--executor"), "--executor", executor, "--frames", "2,4", "--out", tmp_path, "--run-id", "r")
    assert rc == 1 and "joint @ 4 frames" in err, err
    store = RunStore(tmp_path / "r")
    assert [(r.frames, r.status) for r in store.records()] == [(2, "ok")]
    assert not list(store.path.glob("cell-*"))


def make_read_only(path):
    """chmod for a normal user; root writes through modes, so there the immutable attribute."""
    import subprocess

    path.chmod(0o444)
    try:
        open(path, "a").close()
    except PermissionError:
        return lambda: path.chmod(0o644)
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("no way to make a file read-only here (root without chattr)")
    return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)


def test_read_only_records_stop_before_measuring(tmp_path, capsys, monkeypatch):
    store = quick_run(tmp_path, capsys, "2")
    info = json.loads(store.run_path.read_text())
    info["sweep"]["frames"] = [2, 4]
    store.run_path.write_text(json.dumps(info))
    undo = make_read_only(store.records_path)
    measured = []
    monkeypatch.setattr("vfbench.runner.executors.run_cell", lambda cell: measured.append(cell) or 1 / 0)
    try:
        rc, out, err = run_cli(capsys, "run", "--resume", "r", "--out", tmp_path)
    finally:
        undo()
    assert rc == 1 and "cannot write" in err and measured == []
    assert [r.frames for r in store.records()] == [2]


def test_write_error_is_raised_as_store_write_error(tmp_path):
    store = RunStore(tmp_path / "r")
    store.create({})
    store.records_path.mkdir()  # nothing can be appended to a folder
    with pytest.raises(StoreWriteError):
        store.check_writable()
    with pytest.raises(StoreWriteError):
        store.append(Record.for_cell(CellSpec("tiny", "joint", 2, 2), "ok"))


# -- bad method parameters and reference runs -----------------------------------------------------

@pytest.mark.parametrize("methods", ["lora(alpha=1e999)", "mask(ratio=-1e999)", "joint+lora(alpha=1e400)"])
def test_method_parameters_must_be_finite(tmp_path, capsys, methods):
    rc, out, err = run_cli(capsys, "run", *QUICK[:2], "--methods", methods, "--frames", "2", "--out", tmp_path / "o")
    assert rc == 2 and "not a finite number" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_reference_run_from_a_dirty_tree_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("vfbench.measure.env.git_commit", lambda: "abc123+dirty")
    for args in (["run", *QUICK, "--frames", "2", "--out", tmp_path, "--run-id", "reference-cpu"],
                 ["run", "--resume", "reference-cpu", "--out", tmp_path]):
        rc, out, err = run_cli(capsys, *args)
        assert rc == 2 and "uncommitted" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "reference-cpu").exists()
    monkeypatch.setattr("vfbench.measure.env.git_commit", lambda: "abc123")
    rc, out, err = run_cli(capsys, "run", *QUICK, "--frames", "3", "--out", tmp_path, "--run-id", "reference-cpu")
    assert rc == 0, err


def test_the_commit_is_dirty_for_changed_code_and_clean_for_changed_results(tmp_path, monkeypatch):
    """git_commit marks "+dirty" where tracked code differs from HEAD; a run appending to a committed file under
    results/ (a long sweep writing its own results) leaves the commit clean for the cells it starts next."""
    import shutil
    import subprocess

    import vfbench
    from vfbench.measure.env import git_commit

    if shutil.which("git") is None:
        pytest.fail("git is needed to record which commit a run measured")
    repo = tmp_path / "repo"
    (repo / "vfbench").mkdir(parents=True)
    (repo / "results").mkdir()
    (repo / "vfbench" / "__init__.py").write_text("x = 1\n")
    (repo / "results" / "cells.jsonl").write_text("{}\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    monkeypatch.setattr(vfbench, "__file__", str(repo / "vfbench" / "__init__.py"))
    assert git_commit() == head
    (repo / "results" / "cells.jsonl").write_text("{}\n{}\n")
    assert git_commit() == head
    (repo / "vfbench" / "__init__.py").write_text("x = 2\n")
    assert git_commit() == head + "+dirty"


# -- 9. file names made from data ------------------------------------------------------------------

def test_plot_file_names_from_record_keys_stay_in_the_plots_folder(tmp_path, capsys):
    evil = "acc_r1_../../../escaped"
    recs = [ok("joint", 4, 1.0, 10.0, **{evil: 0.5}), ok("mask", 4, 0.5, 6.0, **{evil: 0.4})]
    run = write_run(tmp_path / "deep" / "er" / "r", recs)
    rc, out, err = run_cli(capsys, "report", run)
    assert rc == 0, err
    written = {p.resolve() for p in tmp_path.rglob("*.png")}
    assert written and all(p.parent == (run / "plots").resolve() for p in written), written
    assert any("escaped" in p.name for p in written)
