"""Proxy accuracy: evaluation on hand-built cases, the stage-1 cache, weight transfer, the interface."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from vfbench.models import build_model
from vfbench.registry import compose
from vfbench.spec import CellSpec
from vfbench.sweep_spec import cpu_default_subset
from vfbench.tasks import pretrain, proxy
from vfbench.tasks.evaluate import group_recall, recall_at_1
from vfbench.tasks.pretrain import default_cache_dir, inflate_patch_kernel, init_from_image, resample_grid
from vfbench.tasks.proxy import (
    ProxyBudget, ProxyUnsupported, default_budget, measure_accuracy, proxy_spec,
)
from vfbench.tasks.result import ProxyAccuracy
from vfbench.tasks.schedule import Plateau, fit_until_plateau, lr_factor, plateau_stop
from vfbench.tasks.synthetic import clip_batch, seeded, sprite_bank

# A budget that exercises every stage in a few seconds; it learns nothing, which is not what is tested.
TINY = ProxyBudget(rule="fixed", steps=3, batch=24, warmup=1, stage1_steps=2, stage1_batch=16, width=32, heads=2, eval_queries=12,
                   val_queries=12, val_every=2)
KEYS = [f"acc_{p}_{g}" for p in ("r1", "chance") for g in ("random", "temporal", "spatial", "shuffled", "single_frame")]


def cell(method="joint", frames=6, seed=0, device="cpu"):
    return CellSpec("small", method, frames, 2, "fp32", device, seed)


def test_recall_at_1_on_a_known_similarity_matrix():
    sim = torch.tensor([
        [0.9, 0.1, 0.2],  # target 0 on top: 1
        [0.5, 0.4, 0.3],  # target 1 below 0: 0
        [0.2, 0.7, 0.7],  # target 2 tied with 1 at the top: 1/2
        [0.3, 0.3, 0.3],  # all tied: 1/3 (chance, as a bag-of-frames model on permuted clips)
    ])
    r = recall_at_1(sim, torch.tensor([0, 1, 2, 0]))
    assert torch.allclose(r, torch.tensor([1.0, 0.0, 0.5, 1 / 3]))


def test_group_recall_ranks_within_each_group_only():
    e = torch.eye(4)
    text = torch.stack([e[0:1], e[2:3]])  # (2 groups, 1 query, E)
    video = torch.stack([torch.stack([e[1], e[0]]), torch.stack([e[2], e[3]])])  # (2, 2, E)
    # group 0's query matches its clip 1; group 1's matches its clip 0. Clips of other groups never count.
    assert group_recall(text, video, torch.tensor([[1], [0]])).tolist() == [1.0, 1.0]
    assert group_recall(text, video, torch.tensor([[0], [1]])).tolist() == [0.0, 0.0]


def test_lr_schedule():
    assert lr_factor(0, 100, 10, "cosine") == pytest.approx(0.1)
    assert lr_factor(10, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(99, 100, 10, "cosine") < 0.01
    assert lr_factor(50, 100, 10, "constant") == 1.0
    with pytest.raises(ValueError):
        lr_factor(0, 10, 1, "linear")


def test_coarse_patch_starts_as_the_mean_of_the_fine_patches():
    fine = torch.randn(5, 3, 1, 8, 8)
    coarse = inflate_patch_kernel(fine, torch.Size([5, 3, 4, 16, 16]))
    clip = torch.randn(1, 3, 4, 16, 16)
    out = torch.nn.functional.conv3d(clip, coarse, stride=(4, 16, 16)).flatten()
    frames = [torch.nn.functional.conv2d(clip[:, :, t], fine[:, :, 0], stride=8) for t in range(4)]  # (1, 5, 2, 2)
    assert torch.allclose(out, torch.stack(frames).mean(dim=(0, 3, 4)).flatten(), atol=1e-5)
    table = torch.arange(16.0)[:, None].expand(16, 2)  # 4x4 grid -> 2x2 grid: means of 2x2 blocks
    assert resample_grid(table, 4)[:, 0].tolist() == [2.5, 4.5, 10.5, 12.5]


def test_transfer_copies_the_image_backbone():
    spec = proxy_spec(TINY)
    image = build_model(pretrain.image_spec(spec))
    video = build_model(compose("joint").configure(spec))
    missing = init_from_image(video, image.state_dict())
    assert missing == ["video.patch.pos_time"]
    assert torch.equal(video.video.blocks[1].mlp.fc2.weight, image.video.blocks[1].mlp.fc2.weight)
    fst = build_model(compose("factorized_self_attention").configure(spec))
    missing = init_from_image(fst, image.state_dict())
    assert torch.equal(fst.video.blocks[0].attn_t.qkv.weight, image.video.blocks[0].attn.qkv.weight)
    assert all(".attn_t." not in m for m in missing)


def test_metrics_cache_and_repeatability(tmp_path, monkeypatch):
    result = measure_accuracy(cell(), TINY, tmp_path)
    first = result.to_dict()  # the record's flat acc_* keys, read back into the same typed result
    assert ProxyAccuracy.from_dict(first) == result and list(ProxyAccuracy.from_dict(first).to_dict()) == list(first)
    assert all(k in first for k in KEYS)
    assert result.score("random").chance == pytest.approx(1 / 32) and first["acc_chance_temporal"] == pytest.approx(1 / 6)
    assert result.stage1.cached is False and result.steps == 3 and first["acc_schedule"] == "cosine"
    # whole groups: 12 queries ask for 1 random group of 32, 2 temporal groups of 6, 12 spatial groups of 1 query
    assert tuple(result.score(g).queries for g in ("random", "temporal", "spatial")) == (32, 12, 12)
    assert first["acc_queries_shuffled"] == first["acc_queries_single_frame"] == 12
    assert len(list(tmp_path.glob("stage1-*.pt"))) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("stage 1 ran again although it is cached")

    monkeypatch.setattr(pretrain, "train_image_model", no_training)
    second = measure_accuracy(cell(), TINY, tmp_path).to_dict()
    assert second["acc_stage1_cached"] is True
    for k in KEYS + ["acc_loss_final"]:  # same seed, same numbers
        assert second[k] == first[k], k
    monkeypatch.undo()
    other = measure_accuracy(cell(seed=1), TINY, tmp_path)  # a new seed is a new stage-1 key
    assert other.stage1.cached is False and len(list(tmp_path.glob("stage1-*.pt"))) == 2


def test_methods_run_on_the_proxy(tmp_path):
    for method in ("effshortvivit", "lora", "coarse_spatial"):
        out = measure_accuracy(cell(method, frames=8), TINY, tmp_path)
        assert 0.0 <= out.score("temporal").r1 <= 1.0


def test_unsupported_cells_raise_with_reasons(tmp_path):
    with pytest.raises(ProxyUnsupported, match="xformers"):
        measure_accuracy(cell("attn_kernel(kind=xformers)"), TINY, tmp_path)
    with pytest.raises(ProxyUnsupported, match="multiple of the tubelet"):
        measure_accuracy(cell(frames=7), TINY, tmp_path)
    with pytest.raises(ProxyUnsupported, match="cannot hold"):
        measure_accuracy(cell(frames=2), TINY, tmp_path)


def test_long_cells_continue_the_cached_short_model(tmp_path, monkeypatch):
    """Short->long: a cell longer than short_frames starts from the same methods' stage-2 model at
    short_frames (cached by that cell, or trained exactly as it trains) and trains long_steps at its own T."""
    budget = dataclasses.replace(TINY, short_frames=6, long_steps=2, long_warmup=1)
    calls, seen = [], {}
    real_train, real_eval = proxy.train, proxy.evaluate

    def train(model, b, frames, seed, device, dtype, steps=None, warmup=None, **kwargs):
        calls.append((frames, b.steps if steps is None else steps))
        return real_train(model, b, frames, seed, device, dtype, steps, warmup, **kwargs)

    def evaluate(model, *args, **kwargs):
        seen["state"] = {k: v.clone() for k, v in model.state_dict().items()}
        return real_eval(model, *args, **kwargs)

    monkeypatch.setattr(proxy, "train", train)
    monkeypatch.setattr(proxy, "evaluate", evaluate)
    short = measure_accuracy(cell(frames=6), budget, tmp_path / "a")
    assert calls == [(6, 3)] and short.init == "stage1" and short.short_cached is False
    (saved,) = (tmp_path / "a").glob("short-*.pt")
    assert all(torch.equal(v, seen["state"][k]) for k, v in torch.load(saved)["model"].items())  # the evaluated model

    calls.clear()
    no_op = proxy.Trace(2, 2, "fixed", (), 0.0)
    monkeypatch.setattr(proxy, "train", lambda model, *a, **kw: calls.append(a[1:2] + a[5:6]) or no_op)  # no-op: see the start
    measure_accuracy(cell(frames=12), budget, tmp_path / "a")
    assert calls == [(12, 2)]  # only the continuation, at its own T, for long_steps
    assert all(torch.equal(v, seen["state"][k]) for k, v in torch.load(saved)["model"].items())  # it started there

    calls.clear()
    monkeypatch.setattr(proxy, "train", train)
    long = measure_accuracy(cell(frames=12), budget, tmp_path / "b")  # empty cache: trains the short model first
    assert calls == [(6, 3), (12, 2)]
    assert long.init == "stage2 at 6 frames" and long.short_cached is False
    assert long.steps == 2 and long.short_frames == 6 and long.short_steps == 3
    (again,) = (tmp_path / "b").glob("short-*.pt")
    first, second = torch.load(saved)["model"], torch.load(again)["model"]
    assert all(torch.equal(first[k], second[k]) for k in first)  # the same model the short cell trained
    repeat = measure_accuracy(cell(frames=6), budget, tmp_path / "b")
    assert repeat.short_cached is True and all(repeat.to_dict()[k] == short.to_dict()[k] for k in KEYS)


def test_cpu_default_subset_and_budget():
    subset = cpu_default_subset(["joint", "frame_avg", "effshortvivit", "mask(ratio=0.5)", "lora"], [64, 32, 16])
    assert subset == [(m, t) for m in ("joint", "frame_avg", "effshortvivit") for t in (32, 16)]  # up to 32 frames
    assert cpu_default_subset(["joint"], []) == []
    budget = default_budget("cpu")
    assert ProxyBudget.from_dict(budget.to_dict()) == budget
    assert default_budget("cpu") == ProxyBudget()


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("VFBENCH_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("VFBENCH_CACHE")
    assert default_cache_dir().parts[-3:] == (".cache", "vfbench", "proxy")


def _tiny_training(seed=0):
    """A tiny proxy model and a deterministic batch source for stopping-rule tests."""
    torch.manual_seed(seed)
    model = build_model(proxy_spec(TINY)).train()
    bank = sprite_bank(TINY.task)
    return model, lambda step: clip_batch(TINY.task, 6, 12, 0.5, 6, seeded(seed, 1, step), bank)


def test_plateau_stops_when_validation_stops_improving_and_keeps_the_best_model():
    model, batch_at = _tiny_training()
    scores = iter([0.2, 0.5, 0.503, 0.49, 0.45, 0.9])  # best at the 2nd validation; +0.003 is no gain at min_delta 0.005
    states = []

    def validate():
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(scores)

    trace = fit_until_plateau(model, batch_at, 40, 1e-3, 0.0, 1, 0.0, Plateau(validate, 2, 3, 0.005))
    assert trace.stop == "plateau" and trace.steps_run == 10 and trace.steps == 4
    assert trace.curve == ((2, 0.2), (4, 0.5), (6, 0.503), (8, 0.49), (10, 0.45))
    assert all(torch.equal(v, states[1][k]) for k, v in model.state_dict().items())  # back at step 4's model
    capped = fit_until_plateau(*_tiny_training(), 5, 1e-3, 0.0, 1, 0.0, Plateau(lambda: 0.1, 2, 9, 0.0))
    assert capped.stop == "cap" and capped.steps_run == 5 and [n for n, _ in capped.curve] == [2, 4, 5]


def test_a_run_still_at_chance_is_not_on_a_plateau_and_a_stored_curve_replays_the_rule():
    """Validations count toward patience only once the best is above the floor (chance plus a margin): a slow
    starter is not stopped at chance. plateau_stop replays a stored curve to the step where the rule stops it."""
    for floor, stops_at in ((-math.inf, 8), (0.2, 16)):
        model, batch_at = _tiny_training()
        scores = iter([0.1, 0.1, 0.1, 0.1, 0.5, 0.5, 0.5, 0.5, 0.9])
        rule = Plateau(scores.__next__, 2, 3, 0.005, floor)
        trace = fit_until_plateau(model, batch_at, 40, 1e-3, 0.0, 1, 0.0, rule)
        assert trace.stop == "plateau" and trace.steps_run == stops_at
        assert trace.steps == (2 if floor < 0 else 10)  # the best validation's step
        assert plateau_stop(trace.curve, rule) == stops_at
        assert plateau_stop(trace.curve[:-1], rule) is None  # one validation fewer: the run goes on
    default = proxy.plateau_rule(ProxyBudget())  # 1/32, 1/6, 1/6 chance on the validation galleries, + 0.05
    assert default.floor == pytest.approx((1 / 32 + 1 / 6 + 1 / 6) / 3 + 0.05)


def test_a_run_that_stops_on_its_plateau_is_the_same_run_under_a_larger_cap():
    """The learning rate does not depend on the cap (constant after warm-up), so the 2x-budget result of a cell
    that plateaued before the default cap is that same run: the honesty benchmark relies on it."""
    runs = []
    for cap in (30, 60):
        model, batch_at = _tiny_training()
        trace = fit_until_plateau(model, batch_at, cap, 1e-3, 0.0, 2, 1.0, Plateau(lambda: 0.3, 3, 2, 0.005))
        runs.append((trace, model.state_dict()))
    (a, sa), (b, sb) = runs
    assert a == b and a.stop == "plateau" and a.steps_run == 9
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_larger_cap_continues_the_run_a_smaller_cap_left_exactly(tmp_path):
    """A cell that reached its cap leaves its whole state (model, optimizer, the rule's patience, the mask
    generator); under a larger cap it continues from there and ends exactly where training from step 0 ends."""
    small = dataclasses.replace(TINY, rule="plateau", steps=4, val_every=2, patience=9, short_frames=6)
    large = dataclasses.replace(small, steps=8)
    first = measure_accuracy(cell("mask(ratio=0.5)"), small, tmp_path / "a")
    assert first.stop == "cap" and first.resumed_from is None
    assert list((tmp_path / "a").glob("cap-*-4.pt"))
    resumed = measure_accuracy(cell("mask(ratio=0.5)"), large, tmp_path / "a")
    scratch = measure_accuracy(cell("mask(ratio=0.5)"), large, tmp_path / "b")
    assert resumed.resumed_from == 4 and scratch.resumed_from is None
    assert resumed.steps_run == scratch.steps_run == 8 and resumed.curve == scratch.curve
    assert [n for n, _ in resumed.curve] == [2, 4, 6, 8] and resumed.curve[:2] == first.curve
    assert resumed.scores == scratch.scores and resumed.loss_final == scratch.loss_final
    assert resumed.train_flops == scratch.train_flops == 8 * scratch.step_flops
    assert ProxyAccuracy.from_dict(resumed.to_dict()).resumed_from == 4


def test_plateau_budget_records_its_rule_curve_and_compute(tmp_path):
    budget = dataclasses.replace(TINY, rule="plateau", steps=4, val_every=2, patience=5)
    out = measure_accuracy(cell("mask(ratio=0.5)"), budget, tmp_path)
    assert out.rule == "plateau" and out.stop == "cap" and out.steps_run == 4 and [n for n, _ in out.curve] == [2, 4]
    assert out.schedule == "constant" and 1 <= out.steps <= 4
    full = measure_accuracy(cell("joint"), budget, tmp_path)
    assert out.train_flops == 4 * out.step_flops and 0 < out.step_flops < full.step_flops  # masking halves the tokens
    back = ProxyAccuracy.from_dict(out.to_dict())
    assert back == out and back.curve == out.curve
    with pytest.raises(ValueError, match="rule"):
        ProxyBudget(rule="until-bored")


def test_a_recipe_shares_the_cached_model_of_the_methods_it_names(tmp_path):
    """shortvivit is joint with full fine-tuning: on the proxy it trains exactly joint's model, so its 16-frame
    cell reads joint's cached model (the same accuracy) instead of training it again."""
    budget = dataclasses.replace(TINY, short_frames=6)
    assert proxy.training_label("shortvivit") == proxy.training_label("joint") == "joint"
    assert proxy.training_label("imagevit") == "frame_avg" and proxy.training_label("longvivit") != "longvivit"
    joint = measure_accuracy(cell("joint"), budget, tmp_path)
    recipe = measure_accuracy(cell("shortvivit"), budget, tmp_path)
    assert joint.short_cached is False and recipe.short_cached is True
    assert [s.r1 for s in recipe.scores] == [s.r1 for s in joint.scores]
