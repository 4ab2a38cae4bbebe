"""The command line end to end, and bad input: one line, exit code 2, nothing written."""

import json
import subprocess
import sys

import pytest

from vfbench.cli import main


def run_cli(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "vfbench", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def test_run_two_cells_end_to_end(tmp_path):
    p = run_cli("run", "--model", "tiny", "--methods", "joint", "--frames", "4,8", "--out", str(tmp_path),
                "--run-id", "e2e", "--min-seconds", "0", "--min-repeats", "2", "--no-report", "--no-accuracy")
    assert p.returncode == 0, p.stderr
    lines = (tmp_path / "e2e" / "records.jsonl").read_text().splitlines()
    assert len(lines) == 2
    recs = [json.loads(line) for line in lines]
    assert [r["status"] for r in recs] == ["ok", "ok"] and [r["frames"] for r in recs] == [4, 8]
    info = json.loads((tmp_path / "e2e" / "run.json").read_text())
    assert info["sweep"]["frames"] == [4, 8] and info["env"]["torch"] and "vfbench run" in info["command"]
    assert "joint" in p.stdout and "MiB" in p.stdout  # the final table
    assert "2/2" in p.stderr  # the progress bar


def test_yaml_config_and_command_line_precedence(tmp_path):
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text("model: tiny\nframes: 2..4\nmethods: joint\nmin-seconds: 0\nmin_repeats: 2\nreport: false\naccuracy: false\n")
    p = run_cli("run", "--config", str(cfg), "--frames", "4", "--out", str(tmp_path), "--run-id", "y")
    assert p.returncode == 0, p.stderr
    info = json.loads((tmp_path / "y" / "run.json").read_text())
    assert info["sweep"]["frames"] == [4] and info["sweep"]["model"] == "tiny"


BAD = [
    (["run", "--methods", "jiont"], "unknown method 'jiont' (did you mean 'joint'?)"),
    (["run", "--model", "vit-x"], "unknown model preset 'vit-x'"),
    (["run", "--frames", "16..8"], "bad frame range"),
    (["run", "--frames", "abc"], "cannot read frames"),
    (["run", "--frames", "0"], "must be positive"),
    (["run", "--batch", "zero"], "--batch must be a whole number"),
    (["run", "--dtype", "fp8"], "unknown dtype"),
    (["run", "--device", "tpu"], "unknown device"),
    (["run", "--methods", "joint+joint(x=1)"], "no parameter 'x'"),
    (["run", "--bogus"], "unrecognized arguments"),
    (["run", "--methods", "mask(ratio=1.0)"], "ratio"),
    (["run", "--methods", "mask(ratio=-0.1)"], "ratio"),
    (["run", "--methods", "joint+frame_avg"], "conflicting methods"),
    (["run", "--frames", "4.5"], "cannot read frames"),
    (["run", "--accuracy", "most"], "accepted: auto, on, all, off"),
    (["list", "zzz*"], "no method matches"),
    (["list", "--axis", "tokenz"], "unknown axis 'tokenz' (did you mean 'tokens'?)"),
]


@pytest.mark.parametrize("args,message", BAD)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, message):
    code = main(args + ["--out", str(tmp_path / "out")] if args[0] == "run" else args)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing written


def test_unreadable_yaml_and_unknown_keys(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("frames: [16, 32\nmodel: tiny\n")
    assert main(["run", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    typo = tmp_path / "typo.yaml"
    typo.write_text("framez: 16..32\n")
    assert main(["run", "--config", str(typo), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'framez' (did you mean 'frames'?)" in err
    assert main(["run", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read config" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["run", "--model", "tiny", "--methods", "joint", "--frames", "4", "--out", str(blocker)])
    err = capsys.readouterr().err
    assert code == 2 and "cannot write results" in err and len(err.strip().splitlines()) == 1


def test_resume_of_missing_run(tmp_path, capsys):
    assert main(["run", "--resume", "nope", "--out", str(tmp_path)]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


def test_list_shows_methods_and_models(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "joint" in out and "attention" in out
    assert main(["list", "--axis", "tokens"]) == 0
    out = capsys.readouterr().out
    assert "mask" in out and "joint" not in out
    assert main(["list", "--models"]) == 0
    out = capsys.readouterr().out
    for name in ("tiny", "small", "vit-b", "vit-l", "vit-g"):
        assert name in out


def test_env(capsys):
    assert main(["env", "--json"]) == 0
    env = json.loads(capsys.readouterr().out)
    assert env["torch"] and env["python"]
