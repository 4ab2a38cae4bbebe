"""The synthetic task: determinism, and galleries that differ only in what they claim to."""

from __future__ import annotations

import math

import pytest
import torch

from vfbench.tasks.galleries import BUILDERS, GallerySizes, gallery_chunks, middle_frame, shuffle_frames
from vfbench.tasks.synthetic import (
    Scenes, TaskConfig, captions, clip_batch, hidden_chance, image_batch, permutations, render, sample_scenes, seeded,
    sprite_bank,
)

CFG = TaskConfig()
QUIET = TaskConfig(noise=0.0)
T = 12


def windows(scenes, k_only=None, duration=None):
    """(n, T) bool: frames where any (or event k's) sprite is visible."""
    n, frames = scenes.noise.shape[0], scenes.frames
    duration = CFG.duration(frames) if duration is None else duration
    out = torch.zeros(n, frames, dtype=torch.bool)
    for k in range(scenes.events.shape[1]) if k_only is None else [k_only]:
        for d in range(duration):
            out[torch.arange(n), scenes.starts[:, k] + d] = True
    return out


def test_same_seed_same_clips_and_other_seed_differs():
    a = clip_batch(CFG, T, 24, 0.5, 6, seeded(3, 1, 0))
    b = clip_batch(CFG, T, 24, 0.5, 6, seeded(3, 1, 0))
    c = clip_batch(CFG, T, 24, 0.5, 6, seeded(4, 1, 0))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    for kind in ("random", "temporal", "spatial"):
        sizes = GallerySizes(queries=40)
        first = [ch.video for ch in gallery_chunks(CFG, kind, T, sizes, 5)]
        again = [ch.video for ch in gallery_chunks(CFG, kind, T, sizes, 5)]
        assert all(torch.equal(x, y) for x, y in zip(first, again))


def test_batch_shapes_captions_and_event_times():
    video, ids = clip_batch(CFG, T, 16, 0.0, 6, seeded(0))
    assert video.shape == (16, 3, T, 32, 32) and ids.shape == (16, 9)
    assert ids.max() < CFG.vocab_size
    scenes = sample_scenes(CFG, 200, T, seeded(1))
    for k in range(CFG.events):  # event k lies whole inside the k-th third of the clip
        assert (scenes.starts[:, k] >= k * T // 3).all()
        assert (scenes.starts[:, k] + CFG.duration(T) <= (k + 1) * T // 3).all()
    codes = scenes.events[..., 0] * 100 + scenes.events[..., 1] * 10 + scenes.events[..., 2]
    assert all(len(set(row.tolist())) == CFG.events for row in codes)  # distinct events per clip


def test_sprites_show_exactly_in_their_frames():
    scenes = sample_scenes(QUIET, 8, T, seeded(2))
    video = render(QUIET, scenes).permute(0, 2, 1, 3, 4)  # (n, T, 3, R, R)
    flat = video.flatten(2)
    background = scenes.background[:, None, None]
    visible = (flat != background).any(dim=2)  # (n, T)
    assert torch.equal(visible, windows(scenes))
    images, masks = sprite_bank(QUIET)
    col, shp, pos = scenes.events[0, 1].tolist()
    frame = video[0, scenes.starts[0, 1]]
    assert torch.equal(frame[masks[shp, pos].expand(3, -1, -1)], images[col, shp, pos][masks[shp, pos].expand(3, -1, -1)])


def test_temporal_gallery_differs_only_in_order():
    scenes, ids, target = BUILDERS["temporal"](CFG, 5, T, 6, seeded(7))
    noise = scenes.noise.reshape(5, 6, -1)
    assert (noise == noise[:, :1]).all() and noise.abs().sum() > 0  # the same per-frame noise in a group
    quiet = Scenes(scenes.events, scenes.starts, scenes.background, torch.zeros_like(scenes.noise))
    video = render(CFG, quiet).reshape(5, 6, 3, T, 32, 32)  # noise-free, to compare frame contents
    events = scenes.events.reshape(5, 6, 3, 3)
    win = windows(scenes).reshape(5, 6, T)
    assert ids.shape == (5, 6, 9) and target.shape == (5, 6)
    for i in range(5):
        assert sorted(target[i].tolist()) == list(range(6))  # every clip is one query's target
        assert torch.equal(captions(CFG, events[i, target[i]]), ids[i])
        # every order once: six distinct captions made of the same three events
        assert len({tuple(e.flatten().tolist()) for e in events[i]}) == 6
        assert all(sorted(map(tuple, e.tolist())) == sorted(map(tuple, events[i, 0].tolist())) for e in events[i])
        assert (win[i] == win[i, 0]).all()  # same start frames
        outside = ~win[i, 0]
        assert (video[i][:, :, outside] == video[i, 0][:, outside]).all()  # identical outside the events
        inside = video[i][:, :, ~outside].sum(dim=(1, 3, 4))  # (6, frames inside): per-frame content sums
        assert torch.allclose(inside.sort(dim=1).values, inside[0].sort().values.expand_as(inside), atol=1e-3)
        assert not torch.equal(video[i, 0], video[i, 1])


def test_spatial_gallery_differs_in_one_detail():
    scenes, ids, target = BUILDERS["spatial"](CFG, 6, T, 6, seeded(8))
    video = render(CFG, scenes).reshape(6, 6, 3, T, 32, 32)
    events = scenes.events.reshape(6, 6, 3, 3)
    for i in range(6):
        t = target[i, 0]
        assert torch.equal(captions(CFG, events[i, t][None]), ids[i, 0][None])
        for j in range(6):
            if j == t:
                continue
            diff = (events[i, j] != events[i, t])  # (K, 3)
            assert diff.sum() == 1 and not diff[:, 0].any()  # one position or shape, never a colour
            k = int(diff.any(dim=1).nonzero())
            frames = torch.zeros(T, dtype=torch.bool)
            frames[scenes.starts[i * 6 + j, k] : scenes.starts[i * 6 + j, k] + CFG.duration(T)] = True
            changed = (video[i, j] != video[i, t]).any(dim=(0, 2, 3))  # (T,)
            assert changed.any() and not changed[~frames].any()  # pixels differ only in that event's frames
            assert (ids[i, 0] != captions(CFG, events[i, j][None])[0]).sum() == 1


def test_random_gallery_groups_and_chance():
    chunk = next(gallery_chunks(CFG, "random", T, GallerySizes(queries=64), 0))
    assert chunk.ids.shape == (2, 32, 9) and chunk.group_size == 32
    assert torch.equal(chunk.target[0], torch.arange(32))


def test_hard_groups_in_training_batches_share_everything_but_order():
    video, ids = clip_batch(CFG, T, 24, 0.5, 6, seeded(9))  # two groups of six, then twelve random clips
    for g in range(2):
        group = video[6 * g : 6 * g + 6]
        caps = ids[6 * g : 6 * g + 6].reshape(6, 3, 3)
        assert len({tuple(c.flatten().tolist()) for c in caps}) == 6
        assert all(sorted(map(tuple, c.tolist())) == sorted(map(tuple, caps[0].tolist())) for c in caps)
        assert torch.allclose(group.sum(dim=(1, 2, 3, 4)), group[0].sum().expand(6), atol=1e-2)


def test_misaligned_captions_are_swapped():
    noisy = TaskConfig(misaligned=0.5)
    _, clean = clip_batch(CFG, T, 32, 0.0, 6, seeded(4))
    _, swapped = clip_batch(noisy, T, 32, 0.0, 6, seeded(4))
    changed = (clean != swapped).any(dim=1).sum()
    assert 8 <= changed <= 16  # 16 captions drawn, a few may land on their own


def test_controls():
    video = render(CFG, sample_scenes(CFG, 4, T, seeded(5)))
    shuffled = shuffle_frames(video, seeded(6))
    sums = lambda v: v.sum(dim=(1, 3, 4)).sort(dim=1).values  # noqa: E731
    assert torch.allclose(sums(shuffled), sums(video)) and not torch.equal(shuffled, video)
    still = middle_frame(video)
    assert (still == video[:, :, T // 2 : T // 2 + 1]).all()


def test_images_for_stage1_are_distinct_single_events():
    images, ids = image_batch(CFG, 128, seeded(1))
    assert images.shape == (CFG.event_kinds, 3, 1, 32, 32) and ids.shape == (CFG.event_kinds, 3)
    assert len({tuple(r.tolist()) for r in ids}) == CFG.event_kinds


def test_bad_configs_and_permutations():
    assert permutations(3).shape == (math.factorial(3), 3) and permutations(3)[0].tolist() == [0, 1, 2]
    with pytest.raises(ValueError):
        TaskConfig(colours=99)
    with pytest.raises(ValueError):
        sample_scenes(CFG, 1, 2, seeded(0))  # 2 frames cannot hold 3 events
    with pytest.raises(ValueError):
        sample_scenes(TaskConfig(event_share=0.0), 1, 4, seeded(0))  # 4 frames cannot hold 3 events of 2 frames


@pytest.mark.parametrize("frames", [6, 12, 16, 32, 64])
def test_default_redundancy_fills_each_part_and_is_the_same_for_every_event(frames):
    """event_share 1: every event is shown for floor(T/K) frames, inside its own part; durations never differ
    between events, so a bag of frames cannot read the order off how long each event is shown."""
    dur = CFG.duration(frames)
    assert dur == frames // CFG.events
    scenes = sample_scenes(QUIET, 64, frames, seeded(9))
    video = render(QUIET, scenes).permute(0, 2, 1, 3, 4).flatten(2)  # (n, T, 3·R·R)
    shown = (video != scenes.background[:, None, None]).any(dim=2)  # (n, T)
    assert torch.equal(shown, windows(scenes, duration=dur))
    assert (shown.sum(dim=1) == CFG.events * dur).all()


def test_fixed_duration_is_still_available_and_needles_are_hidden_more_often():
    needle = TaskConfig(event_share=0.0, event_frames=2)
    assert needle.duration(16) == needle.duration(64) == 2
    scenes = sample_scenes(TaskConfig(event_share=0.0, event_frames=2, noise=0.0), 32, 16, seeded(4))
    video = render(TaskConfig(event_share=0.0, event_frames=2, noise=0.0), scenes).permute(0, 2, 1, 3, 4).flatten(2)
    shown = (video != scenes.background[:, None, None]).any(dim=2)
    assert torch.equal(shown, windows(scenes, duration=2))
    # masking 75% of tokens hides a whole 2-frame event far more often than an event that fills its part
    assert hidden_chance(needle, 16, 0.75) > 5 * hidden_chance(CFG, 16, 0.75)
    assert hidden_chance(CFG, 64, 0.75) < hidden_chance(CFG, 32, 0.75) < hidden_chance(CFG, 16, 0.75)
    assert hidden_chance(CFG, 16, 0.0) == 0.0 and 0.0 < hidden_chance(needle, 16, 0.9) < 1.0
    with pytest.raises(ValueError, match="event_share"):
        TaskConfig(event_share=1.5)


def test_hidden_chance_matches_masking_real_tokens():
    """The formula against counting: mask real token grids of rendered needle clips and count events with no
    visible token (tokens = 8-px patches x 2-frame tubelets, as the proxy patches clips)."""
    from vfbench.methods.masking import random_masking

    cfg = TaskConfig(event_share=0.0, event_frames=2, noise=0.0)
    n, frames = 400, 12
    scenes = sample_scenes(cfg, n, frames, seeded(11))
    video = render(cfg, scenes)  # (n, 3, T, R, R)
    hidden = 0
    for k in range(cfg.events):
        solo = Scenes(scenes.events[:, k : k + 1], scenes.starts[:, k : k + 1], scenes.background, scenes.noise)
        one = render(TaskConfig(**{**cfg.to_dict(), "events": 1}), solo)
        touched = (one != scenes.background[:, None, None, None, None]).any(dim=1)  # (n, T, R, R)
        tokens = touched.reshape(n, frames // 2, 2, 4, 8, 4, 8).any(dim=(2, 4, 6)).reshape(n, -1)  # (n, S)
        _, ids = random_masking(tokens[..., None].float(), 0.75, seeded(12, k))
        hidden += int((tokens.gather(1, ids).sum(dim=1) == 0).sum())
    assert video.shape[2] == frames
    expected = hidden_chance(cfg, frames, 0.75)
    assert abs(hidden / (n * cfg.events) - expected) < 0.05, (hidden / (n * cfg.events), expected)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_clips_are_drawn_on_the_generators_device():
    """On CUDA the batch is drawn and rendered there: no host-side clip, no copy per step."""
    video, ids = clip_batch(CFG, 16, 12, 0.5, 6, seeded(1, device="cuda"))
    assert video.device.type == "cuda" and ids.device.type == "cuda"
    again, _ = clip_batch(CFG, 16, 12, 0.5, 6, seeded(1, device="cuda"))
    assert torch.equal(video, again)
