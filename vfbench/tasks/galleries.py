"""Evaluation galleries for text->video retrieval on the synthetic task, and the two temporal controls.

Each gallery is a list of groups; a query caption is ranked against the clips of its own group only,
so the chance level is 1 / group size and each gallery tests exactly one thing:

- random: groups of independent clips; every clip's caption is a query (like in-batch retrieval).
- temporal: a clip and the same events in the other orders, sharing start frames, background and
  noise: only the order differs, so a bag-of-frames model is at chance (vfbench's proxy design). Every
  clip's caption is a query, as every pair in the group differs only in order.
- spatial: a clip and variants with one event's position or shape changed, everything else shared:
  same order, only a small spatial detail differs (vfbench's proxy design). Only the base clip's caption
  is a query: two variants may differ in two details.

Controls on the temporal gallery (vfbench's proxy design): `shuffle_frames` (each clip's frames in a random
order: order information destroyed, but 2-frame events also get split across tubelets, a distribution
shift) and `middle_frame` (the middle frame repeated T times: whatever one frame shows).

Galleries are rendered in chunks of groups from generators seeded by (seed, gallery, chunk), so memory
stays bounded at long T and the same seed always yields the same clips.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator

import torch

from vfbench.tasks.synthetic import Scenes, TaskConfig, captions, permuted_groups, render, sample_scenes, seeded, sprite_bank

KINDS = ("random", "temporal", "spatial")
CHUNK_GROUPS = 64  # groups rendered at once; part of what a seed means, so fixed


@dataclass(frozen=True)
class GallerySizes:
    """Clips per group (the chance level is 1/size) and the number of queries per gallery."""

    random: int = 32
    temporal: int = 6  # K! = 6 at K = 3: every order
    spatial: int = 6
    queries: int = 512

    def size(self, kind: str) -> int:
        return getattr(self, kind)


@dataclass(frozen=True)
class GalleryChunk:
    """video (n·G, 3, T, R, R): n groups of G clips; ids (n, Q, L): Q query captions per group; target
    (n, Q): each query's clip index inside its group."""

    video: torch.Tensor
    ids: torch.Tensor
    target: torch.Tensor

    @property
    def group_size(self) -> int:
        return self.video.shape[0] // self.ids.shape[0]


def groups_needed(kind: str, sizes: GallerySizes) -> int:
    """Groups that give at least `sizes.queries` queries (a whole number of groups)."""
    per_group = sizes.size(kind) if kind in ("random", "temporal") else 1
    return -(-sizes.queries // per_group)


def gallery_chunks(cfg: TaskConfig, kind: str, frames: int, sizes: GallerySizes, seed: int) -> Iterator[GalleryChunk]:
    if kind not in KINDS:
        raise ValueError(f"unknown gallery {kind!r}; accepted: {', '.join(KINDS)}")
    bank = sprite_bank(cfg)
    total = groups_needed(kind, sizes)
    for chunk, start in enumerate(range(0, total, CHUNK_GROUPS)):
        g = seeded(seed, KINDS.index(kind), chunk)
        n = min(CHUNK_GROUPS, total - start)
        scenes, ids, target = BUILDERS[kind](cfg, n, frames, sizes.size(kind), g)
        yield GalleryChunk(render(cfg, scenes, bank), ids, target)


def _random(cfg: TaskConfig, n: int, frames: int, size: int, g: torch.Generator):
    scenes = sample_scenes(cfg, n * size, frames, g)
    ids = captions(cfg, scenes.events).reshape(n, size, -1)
    return scenes, ids, torch.arange(size).expand(n, -1)


def _shuffle_within_groups(scenes: Scenes, n: int, size: int, g: torch.Generator) -> tuple[Scenes, torch.Tensor]:
    """Put each group's clips in a random order; returns the scenes and where each clip went (n, size)."""
    order = torch.rand(n, size, generator=g).argsort(dim=1)  # order[i, j] = old index placed at j
    index = (torch.arange(n)[:, None] * size + order).reshape(-1)
    return scenes.select(index), order.argsort(dim=1)


def _temporal(cfg: TaskConfig, n: int, frames: int, size: int, g: torch.Generator):
    grouped = permuted_groups(cfg, sample_scenes(cfg, n, frames, g), size, g)
    scenes, target = _shuffle_within_groups(grouped, n, size, g)
    ids = captions(cfg, grouped.events).reshape(n, size, -1)  # (n, G, L): every order is a query
    return scenes, ids, target


def spatial_variants(cfg: TaskConfig, events: torch.Tensor, count: int, rnd: random.Random) -> list[torch.Tensor]:
    """`count` distinct variants of one clip's events (K, 3), each with exactly one event's position or
    shape changed; the changed event stays distinct from the clip's other events."""
    options = []
    for k in range(cfg.events):
        for field, n_values in ((2, cfg.positions), (1, cfg.shapes)):
            for value in range(n_values):
                if value == int(events[k, field]):
                    continue
                changed = events.clone()
                changed[k, field] = value
                if not any(torch.equal(changed[k], changed[j]) for j in range(cfg.events) if j != k):
                    options.append(changed)
    if len(options) < count:
        raise ValueError(f"only {len(options)} one-detail variants exist for this task; lower the spatial gallery size")
    return rnd.sample(options, count)


def _spatial(cfg: TaskConfig, n: int, frames: int, size: int, g: torch.Generator):
    base = sample_scenes(cfg, n, frames, g)
    rnd = random.Random(int(torch.randint(0, 2**31, (1,), generator=g)))
    events = torch.stack([torch.stack([e, *spatial_variants(cfg, e, size - 1, rnd)]) for e in base.events])  # (n, G, K, 3)
    shared = base.select(torch.arange(n).repeat_interleave(size))
    grouped = Scenes(events.reshape(n * size, cfg.events, 3), shared.starts, shared.background, shared.noise)
    scenes, target = _shuffle_within_groups(grouped, n, size, g)
    return scenes, captions(cfg, base.events)[:, None], target[:, :1]  # the base clip's caption only


BUILDERS = {"random": _random, "temporal": _temporal, "spatial": _spatial}


def shuffle_frames(video: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """(n, 3, T, R, R) -> each clip's frames in its own random order."""
    n, _, T = video.shape[:3]
    order = torch.rand(n, T, generator=g).argsort(dim=1)  # (n, T)
    return video.gather(2, order[:, None, :, None, None].expand_as(video))


def middle_frame(video: torch.Tensor) -> torch.Tensor:
    """(n, 3, T, R, R) -> the middle frame repeated T times (a static clip the encoder can take)."""
    T = video.shape[2]
    return video[:, :, T // 2 : T // 2 + 1].expand_as(video).contiguous()
