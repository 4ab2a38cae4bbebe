"""Token masking (arXiv:2312.07395's input masking; FLIP's random_mask):
exact kept counts, train-time only, tube structure, and the pure functions."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vfbench.errors import UserError
from vfbench.methods.masking import keep_count, random_masking, slice_masking, tube_masking
from vfbench.registry import get_method
from vfbench.spec import CellSpec
from vfbench.step import build_setup, train_step


def _positions(B: int, T: int, N: int) -> torch.Tensor:
    """(B, T·N, 2) tokens whose features are their own (t, n) position, so kept tokens can be located."""
    t = torch.arange(T).repeat_interleave(N)
    n = torch.arange(N).repeat(T)
    return torch.stack([t, n], dim=-1).float()[None].expand(B, -1, -1).clone()


@settings(max_examples=40, deadline=None)
@given(B=st.integers(1, 3), S=st.integers(1, 70), ratio=st.floats(0.0, 0.95), seed=st.integers(0, 2**16))
def test_random_masking_keeps_floor_share_of_distinct_tokens(B, S, ratio, seed):
    x = torch.randn(B, S, 4)
    kept, ids = random_masking(x, ratio, torch.Generator().manual_seed(seed))
    n = max(1, math.floor(S * (1 - ratio) + 1e-9))
    assert kept.shape == (B, n, 4) and ids.shape == (B, n)
    for b in range(B):
        assert len(set(ids[b].tolist())) == n  # no token twice
        assert torch.equal(kept[b], x[b, ids[b]])


def test_random_masking_is_per_sample_and_seeded():
    x = torch.randn(4, 64, 8)
    _, a = random_masking(x, 0.75, torch.Generator().manual_seed(1))
    _, b = random_masking(x, 0.75, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert len({tuple(sorted(row.tolist())) for row in a}) > 1  # different samples, different masks


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75, 0.9])
def test_keep_count_is_the_floor(ratio):
    for total in (1, 7, 16, 100, 2048, 32768):
        assert keep_count(total, ratio) == max(1, math.floor(total * (1 - ratio) + 1e-9))
    assert keep_count(10, 0.3) == 7 and keep_count(10, 0.7) == 3 and keep_count(2048, 0.75) == 512


def test_tube_masking_drops_the_same_positions_in_every_slice():
    B, T, N = 3, 5, 16
    kept, ids = tube_masking(_positions(B, T, N), (T, N), 0.75, torch.Generator().manual_seed(0))
    kept = kept.reshape(B, T, 4, 2)  # (B, T', N_keep, (t, n))
    for b in range(B):
        spatial = kept[b, :, :, 1]
        assert (spatial == spatial[0]).all()  # same spatial positions in every slice
        assert torch.equal(kept[b, :, 0, 0], torch.arange(T).float())  # one row per slice, in order
        assert torch.equal(spatial[0].long(), ids[b])


def test_slice_masking_keeps_an_equal_count_per_slice():
    B, T, N = 2, 4, 16
    kept, ids = slice_masking(_positions(B, T, N), (T, N), 0.5, torch.Generator().manual_seed(0))
    kept = kept.reshape(B, T, 8, 2)
    assert torch.equal(kept[..., 0], torch.arange(T).float()[None, :, None].expand(B, T, 8))
    assert (kept[..., 1].diff(dim=-1) > 0).all()  # raster order inside each slice
    assert ids.shape == (B, T, 8)


@pytest.mark.parametrize(
    "method, grid_kept",
    [("mask(ratio=0.75)", None), ("mask(ratio=0.5)", None), ("tube_mask(ratio=0.75)", (4, 4)),
     ("factorized_self_attention+mask(ratio=0.75)", (4, 4)), ("frame_avg+mask(ratio=0.5)", (8, 8))],
)
def test_encoder_masks_in_training_only(method, grid_kept):
    setup = build_setup(CellSpec("tiny", method, 8, 2))
    video = setup.model.video
    total = video.patch.num_tokens(8)
    ratio = setup.composition.by_axis("tokens").p["ratio"]
    train_step(setup)
    assert video.last_layout == video.train_layout(8)  # the hooks' declared layout is what the forward kept
    if grid_kept is None:
        assert video.last_tokens == math.floor((1 - ratio) * total) and video.last_grid is None
    else:
        assert video.last_grid == grid_kept and video.last_tokens == grid_kept[0] * grid_kept[1]
    setup.model.eval()
    with torch.no_grad():
        video(setup.video)
    assert video.last_tokens == total  # evaluation sees every token (FLIP)


def test_zero_ratio_masks_nothing():
    setup = build_setup(CellSpec("tiny", "mask(ratio=0.0)", 8, 2))
    train_step(setup)
    assert setup.model.video.last_tokens == setup.model.video.patch.num_tokens(8)


@pytest.mark.parametrize("text", ["mask(ratio=1.0)", "mask(ratio=1.5)", "mask(ratio=-0.25)", "tube_mask(ratio=1.0)"])
def test_ratio_outside_unit_interval_is_a_user_error(text):
    with pytest.raises(UserError, match=r"\[0, 1\)"):
        get_method(text)


@pytest.mark.parametrize("encoder", ["factorized_self_attention", "factorized_encoder", "frame_avg"])
def test_aligned_masking_keeps_the_same_positions_in_every_slice_of_grid_encoders(encoder):
    """mask(aligned=1) on an encoder that attends over time per position: every slice keeps the same spatial
    positions, so each position's temporal sequence stays whole; without it each slice draws its own."""
    for aligned, same in ((1, True), (0, False)):
        setup = build_setup(CellSpec("tiny", f"{encoder}+mask(ratio=0.75,aligned={aligned})", 8, 2))
        (hook,) = setup.model.video.token_hooks
        T, N = 4, 16
        kept, grid = hook(_positions(3, T, N), (T, N), torch.Generator().manual_seed(aligned))
        positions = kept.reshape(3, T, -1, 2)[..., 1]  # (B, T, N_keep) spatial index of each kept token
        assert grid == (T, 4)
        assert torch.equal(positions, positions[:, :1].expand_as(positions)) == same
        train_step(setup)
        video = setup.model.video
        t, n = video.patch.layout(8).grid
        assert video.last_grid == (t, keep_count(n, 0.75)) and video.last_layout == video.train_layout(8)


def test_aligned_is_a_no_op_for_joint_attention_and_old_labels_keep_their_meaning():
    assert get_method("mask(ratio=0.5)").label == "mask(ratio=0.5)"  # stored records name the same method
    assert get_method("mask(ratio=0.75,aligned=1)").label == "mask(aligned=1,ratio=0.75)"
    a = build_setup(CellSpec("tiny", "mask(ratio=0.75,aligned=1)", 8, 2)).model.video.token_hooks
    b = build_setup(CellSpec("tiny", "mask(ratio=0.75)", 8, 2)).model.video.token_hooks
    assert a == b  # the same unstructured per-clip hook
    with pytest.raises(UserError, match="aligned"):
        get_method("mask(ratio=0.5,aligned=2)")
