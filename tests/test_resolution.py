"""Image size (`--image-size`, `NAME@<size>px`) and the paper-sized presets; stored runs keep their cell keys."""

import argparse
import json
from pathlib import Path

import pytest

from vfbench.cli import main
from vfbench.commands.run_cmd import OPTIONS, _options, build_sweep
from vfbench.errors import UserError
from vfbench.models import get_preset, param_counts_without_memory
from vfbench.models.presets import sized_model
from vfbench.record import Record
from vfbench.spec import CellSpec
from vfbench.step import build_setup, train_step

ROOT = Path(__file__).resolve().parents[1]


def test_image_size_sets_the_token_count():
    spec = get_preset("vit-b@256px")
    assert spec.image_size == 256 and spec.tokens_per_frame == 256 and spec.name == "vit-b@256px"
    assert 128 // spec.tubelet * spec.tokens_per_frame == 16384  # 128 frames at 256 px, tubelet 2
    assert get_preset("vit-b").tokens_per_frame == 196  # 224 px: 128 frames are 12,544 tokens
    setup = build_setup(CellSpec("tiny@64px", "joint", 4, 1))
    train_step(setup)
    assert setup.video.shape[-1] == 64 and setup.model.video.last_tokens == 2 * 64


@pytest.mark.parametrize("bad", ["tiny@30px", "tiny@0px", "nope@64px"])
def test_bad_image_sizes_are_user_errors(bad):
    with pytest.raises(UserError):
        get_preset(bad)


def test_sized_model_plumbing():
    assert sized_model("vit-b", None) == "vit-b" and sized_model("vit-b", "256") == "vit-b@256px"
    for bad in ("abc", "250"):
        with pytest.raises(UserError):
            sized_model("vit-b", bad)
    with pytest.raises(UserError):
        sized_model("vit-b@256px", 224)


def test_paper_presets_have_the_papers_text_tower_sizes():
    assert round(param_counts_without_memory(get_preset("vit-b-paper"))["text"] / 1e6) == 77
    assert round(param_counts_without_memory(get_preset("vit-l-paper"))["text"] / 1e6) == 117


def test_stored_runs_keep_their_cell_keys():
    """Records written before the image size existed still match the cells a resume would expand."""
    lines = (ROOT / "results" / "reference-cpu" / "records.jsonl").read_text().splitlines()
    for line in lines[:20]:
        r = Record.from_dict(json.loads(line))
        assert CellSpec(r.model, r.method, r.frames, r.batch, r.dtype, r.device, r.seed).key == r.key


def test_image_size_on_the_command_line_and_in_yaml(tmp_path, capsys):
    assert main(["estimate", "--model", "tiny", "--image-size", "64", "--methods", "joint", "--frames", "4",
                 "--batch", "1", "--jobs", "1", "--json"]) == 0
    cell = json.loads(capsys.readouterr().out.splitlines()[0])
    assert cell["model"] == "tiny@64px" and cell["tokens"] == 2 * 64
    cfg = tmp_path / "s.yaml"
    cfg.write_text("model: tiny\nimage_size: 64\nmethods: joint\nframes: 4\ndevice: cpu\n")
    args = argparse.Namespace(config=str(cfg), **{k: None for k in OPTIONS})
    sweep, _ = build_sweep(_options(args))
    assert sweep.model == "tiny@64px"
    assert main(["estimate", "--model", "tiny", "--image-size", "30", "--frames", "4"]) == 2
