"""Accuracy on a folder of real clips and captions from an image-text checkpoint (arXiv:2312.07395 §3):
decoding and sampling with PyAV, the open_clip weights inflated into vfbench's CLIP-shaped model (equal to
the image model on static clips at init), retrieval evaluation, and bad input. Small mp4 files and a tiny
randomly initialised open_clip model are written here; nothing is downloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.video_folder_demo import clip_frames, make_demo, write_mp4
from vfbench.cli import main
from vfbench.errors import UserError
from vfbench.models.clip import build_clip_model
from vfbench.spec import CellSpec
from vfbench.tasks.clip_init import clip_spec, load_into, load_open_clip, parse_init
from vfbench.tasks.proxy import ProxyUnsupported
from vfbench.tasks.real_eval import VideoBudget, check_video_task, measure_video_accuracy, recalls
from vfbench.tasks.video_folder import UnreadableVideo, decode_frames, open_folder, sample_times

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    paths = make_demo(folder, videos=10, frames=16)
    return folder, paths


@pytest.fixture(scope="module")
def loaded(demo):
    _, paths = demo
    return load_open_clip(parse_init(f"open_clip:{paths['config']}:{paths['weights']}"))


def _init(paths) -> str:
    return f"open_clip:{paths['config']}:{paths['weights']}"


# ---------------------------------------------------------------- decoding and sampling

def test_decoding_samples_frames_at_the_given_rate(tmp_path):
    # Frame t shows its index as brightness, so the decoded frames say which instants were sampled.
    frames = np.stack([np.full((32, 32, 3), 10 + 12 * t, np.uint8) for t in range(16)])
    path = tmp_path / "ramp.mp4"
    write_mp4(path, frames, fps=8)
    got = decode_frames(path, 4, 4.0, 32).float().mean(dim=(1, 2, 3))  # 4 frames at 4 fps: every 2nd source frame
    times = sample_times(4, 4.0, 2.0)
    assert times == pytest.approx([0.625, 0.875, 1.125, 1.375])  # a 0.75 s window centred in 2 s
    expected = torch.tensor([10 + 12 * round(t * 8) for t in times], dtype=torch.float)
    assert torch.allclose(got, expected, atol=4)  # mpeg4 is lossy


def test_short_video_repeats_its_last_frame_and_resizes(tmp_path):
    frames = np.stack([np.full((24, 48, 3), 40 * t, np.uint8) for t in range(4)])  # 4 frames, wider than tall
    path = tmp_path / "short.mp4"
    write_mp4(path, frames, fps=8)
    got = decode_frames(path, 8, 8.0, 16)
    assert got.shape == (8, 3, 16, 16)
    last = got[3:].float().mean(dim=(1, 2, 3))
    assert torch.allclose(last, last[:1].expand_as(last), atol=1) and last[0] > 100


def test_unreadable_files_raise_with_the_decoders_reason(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00not a video" * 50)
    with pytest.raises(UnreadableVideo, match="InvalidData"):
        decode_frames(bad, 4, 2.0, 32)


def test_captions_csv_and_jsonl_and_the_held_out_split(tmp_path):
    for i in range(6):
        write_mp4(tmp_path / f"v{i}.mp4", clip_frames("red", "still", 4))
    (tmp_path / "captions.jsonl").write_text("\n".join(
        [json.dumps({"path": f"v{i}.mp4", "caption": f"clip {i}"}) for i in range(6)]
        + [json.dumps({"path": "v0.mp4", "caption": "clip zero again"}), "{broken", json.dumps({"path": "v9.mp4", "caption": "gone"}),
           json.dumps({"path": "v1.mp4"})]))
    folder = open_folder(f"video-folder:{tmp_path}")
    assert [v.rel for v in folder.videos] == [f"v{i}.mp4" for i in range(6)]
    assert folder.videos[0].captions == ("clip 0", "clip zero again")
    assert folder.unusable_rows == 2 and folder.missing == ["v9.mp4"]
    train, held = folder.split(0.2)
    assert len(held) == 2 and len(train) == 4 and not {v.rel for v in train} & {v.rel for v in held}
    # The split depends on the paths only: the same with the rows reversed.
    folder.videos.reverse()
    assert {v.rel for v in folder.split(0.2)[1]} == {v.rel for v in held}


# ---------------------------------------------------------------- initialisation

def test_inflated_model_equals_the_image_model_on_static_clips(loaded):
    import open_clip

    spec = clip_spec(loaded.name, loaded.cfg)
    model = build_clip_model(spec)
    load_into(model, loaded.state)
    model.eval()
    image = open_clip.create_model(loaded.name, pretrained=None)
    image.load_state_dict(loaded.state)
    image.eval()
    frames = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        want = image.encode_image(frames, normalize=True)
        for t in (2, 8):  # one and four time slices
            got = model.embed_video(frames[:, :, None].repeat(1, 1, t, 1, 1))
            assert torch.allclose(got, want, atol=1e-5), (t, (got - want).abs().max())
        moving = torch.randn(3, 3, 8, 32, 32)  # not static: the video model sees more than one frame
        assert not torch.allclose(model.embed_video(moving), image.encode_image(moving[:, :, 0], normalize=True), atol=1e-3)
        ids = loaded.tokenizer()(["a red square moving right", "two dogs"])
        assert torch.allclose(model.embed_text(ids), image.encode_text(ids, normalize=True), atol=1e-5)
    assert model.logit_scale.item() == pytest.approx(image.logit_scale.item())
    # The paper's inflation: the 2D kernel repeated over the tubelet and divided by its depth; time table at zero.
    w = model.video.patch.proj.weight
    assert torch.allclose(w.sum(dim=2), loaded.state["visual.conv1.weight"], atol=1e-6)
    assert torch.equal(w[:, :, 0], w[:, :, 1]) and not model.video.patch.pos_time.any()


def test_weights_of_another_model_are_refused(tmp_path, demo):
    _, paths = demo
    other = json.loads(Path(paths["config"]).read_text())
    other["vision_cfg"]["width"] = 32
    cfg = tmp_path / "other-clip.json"
    cfg.write_text(json.dumps(other))
    with pytest.raises(UserError, match="do not load into open_clip model 'other-clip'"):
        load_open_clip(parse_init(f"open_clip:{cfg}:{paths['weights']}"))
    with pytest.raises(UserError, match="does not exist"):
        load_open_clip(parse_init(f"open_clip:{paths['config']}:{tmp_path / 'nope.pt'}"))
    for bad in ("open_clip", "clip:ViT-B-16", "open_clip::w.pt", ""):
        with pytest.raises(UserError, match="accepted: open_clip:NAME"):
            parse_init(bad)


def test_unsupported_configs_are_named(tmp_path, demo):
    _, paths = demo
    cfg = json.loads(Path(paths["config"]).read_text())
    cfg["vision_cfg"]["ls_init_value"] = 1e-5
    path = tmp_path / "layerscale-clip.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="ls_init_value"):
        load_open_clip(parse_init(f"open_clip:{path}"))


# ---------------------------------------------------------------- evaluation

def test_recalls_count_ties_against_the_match():
    perfect = torch.eye(4)
    assert recalls(perfect) == {"r1_t2v": 1.0, "r5_t2v": 1.0, "r1_v2t": 1.0, "r5_v2t": 1.0}
    assert recalls(torch.ones(4, 4))["r1_t2v"] == 0.0  # a constant embedding retrieves nothing
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.5, 0.0], [0.0, 0.0, 1.0]])  # text 1 prefers video 0
    r = recalls(sim, ks=(1, 2))
    assert r["r1_t2v"] == pytest.approx(2 / 3, abs=1e-4) and r["r2_t2v"] == 1.0
    assert r["r1_v2t"] == pytest.approx(1.0)  # video 0 -> text 0 (0.9 > 0.8), video 1 -> text 1 (0.5 > 0.1)


def test_a_cell_trains_and_evaluates_and_counts_what_it_skipped(demo):
    folder, paths = demo
    budget = VideoBudget(steps=4, batch=4, lr=1e-3, warmup=1, fps=8.0)
    cell = CellSpec("tiny", "mask(ratio=0.5)", 8, 2, task=f"video-folder:{folder}", init=_init(paths))
    out = measure_video_accuracy(cell, budget).to_dict()
    n = out["acc_eval_pairs"]
    assert n == 2 and out["acc_chance_r1_t2v"] == pytest.approx(1 / n)
    for key in ("acc_r1_t2v", "acc_r5_t2v", "acc_r1_v2t", "acc_r5_v2t", "acc_init_r1_t2v"):
        assert 0.0 <= out[key] <= 1.0
    assert out["acc_r5_t2v"] == 1.0  # 2 pairs: both within the top 5
    assert out["acc_skipped_missing"] == 1 and "missing.mp4 (missing)" in out["acc_skipped_examples"]
    held = {v.rel for v in open_folder(cell.task).split(budget.eval_share)[1]}
    if "clips/corrupt.mp4" in held:  # decoded for evaluation, or while drawing training batches
        assert out["acc_skipped_unreadable"] == 1
    assert out["acc_skipped_unreadable"] in (0, 1) and out["acc_steps"] == 4 and out["acc_lr"] == 1e-3
    assert out["acc_init_weights"] == str(paths["weights"]) and out["acc_fresh_init"]


def test_methods_the_clip_model_cannot_run_are_reasons(demo):
    folder, paths = demo
    cell = CellSpec("tiny", "factorized_self_attention", 8, 2, task=f"video-folder:{folder}", init=_init(paths))
    with pytest.raises(ProxyUnsupported, match="joint attention over tubelets"):
        measure_video_accuracy(cell, VideoBudget(steps=1))


# ---------------------------------------------------------------- the command line

def test_bad_input_is_one_line_and_exit_2(tmp_path, demo, capsys):
    folder, paths = demo
    init = _init(paths)
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "rows.csv").write_text("path,caption\n,no path\nx.mp4,\n")
    (tmp_path / "noheader.csv").write_text("a.mp4,a caption\n")
    cases = {
        f"video-folder:{tmp_path / 'absent'}": "does not exist",
        f"video-folder:{empty}": "no captions.csv or captions.jsonl",
        f"video-folder:{tmp_path / 'rows.csv'}": "no usable rows",
        f"video-folder:{tmp_path / 'noheader.csv'}": "no header row",
        "youtube:abc": "unknown --task",
    }
    for task, message in cases.items():
        assert main(["run", "--methods", "joint", "--frames", "8", "--task", task, "--init", init, "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, (task, err)
    for extra, message in ((["--init", "open_clip"], "cannot read --init"), ([], "needs --init"),
                           (["--init", f"open_clip:{paths['config']}:{tmp_path / 'nope.pt'}"], "does not exist"),
                           (["--init", init, "--no-accuracy"], "drop --no-accuracy")):
        assert main(["run", "--methods", "joint", "--frames", "8", "--task", f"video-folder:{folder}", *extra,
                     "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, (extra, err)
    assert not any(p.name != "empty" and p.is_dir() and (p / "run.json").exists() for p in tmp_path.iterdir())


def test_missing_extra_is_one_line_naming_it(tmp_path, demo):
    folder, paths = demo
    # A fresh interpreter where PyAV cannot be imported.
    code = ("import sys; sys.modules['av'] = None; from vfbench.cli import main; "
            f"raise SystemExit(main(['run', '--methods', 'joint', '--frames', '8', '--task', 'video-folder:{folder}', "
            f"'--init', '{_init(paths)}', '--out', '{tmp_path}']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert proc.returncode == 2 and 'pip install -e ".[video]"' in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_check_names_the_split_and_the_model(demo):
    folder, paths = demo
    text = check_video_task(f"video-folder:{folder}", _init(paths))
    assert "9 videos to train, 2 held out" in text and "1 listed videos missing" in text and "tiny-clip" in text


def test_a_smaller_image_size_resamples_the_positions(loaded):
    """VideoBudget.image_size runs a model at a lower resolution: its position grid is area-resampled."""
    spec = clip_spec(loaded.name, loaded.cfg, image_size=16)
    model = build_clip_model(spec)
    load_into(model, loaded.state)
    assert model.video.patch.pos_space.shape == (4, spec.width)
    full = loaded.state["visual.positional_embedding"][1:].reshape(2, 2, 2, 2, -1).mean(dim=(1, 3)).reshape(4, -1)
    assert torch.allclose(model.video.patch.pos_space, full, atol=1e-6)
    with torch.no_grad():
        out = model.eval().embed_video(torch.randn(1, 3, 4, 16, 16))
    assert out.shape == (1, spec.embed_dim)
