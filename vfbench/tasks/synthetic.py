"""A procedural video-text task in which temporal order over the whole clip and small spatial details
matter (vfbench's proxy design).

A clip of T frames at R x R px holds K events. An event is a coloured shape at one of a few positions,
visible for `event_frames` frames; event k starts at a random time inside the k-th of K equal parts of
the clip, so the events are ordered and spread over the whole clip. Between events a frame shows only
the clip's flat grey background plus per-frame noise: mostly static, like 1-FPS video. The caption is
the ordered event sequence as token ids, three per event: colour, shape, position.

A clip is described by its *scene* (events, start frames, background level, noise) and rendered from
it, so galleries can build clips that share everything but the one thing they vary (galleries.py).
Everything is drawn from explicit `torch.Generator`s: the same seed gives the same clips.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from vfbench.spec import _Frozen

# Saturated RGB colours in [0, 1]; the first `colours` are used.
PALETTE = ((1.0, 0.1, 0.1), (0.1, 0.9, 0.1), (0.2, 0.3, 1.0), (1.0, 0.9, 0.1), (0.9, 0.2, 0.9), (0.1, 0.9, 0.9))
SHAPES = ("square", "ring", "plus", "cross", "bar")


@dataclass(frozen=True)
class TaskConfig(_Frozen):
    """The task's knobs. Defaults are the set-up measured to work on a 2-core CPU."""

    events: int = 3  # K events per clip, each in its own K-th of the clip
    event_frames: int = 2  # frames an event stays visible (1 = a needle)
    image_size: int = 32  # R
    colours: int = 4
    shapes: int = 3
    positions: int = 4  # centres of a ceil(sqrt(P)) x ceil(sqrt(P)) grid of cells
    shape_size: int = 6  # px; a shape fits inside one 8-px patch when it sits in the patch
    noise: float = 0.1  # std of per-frame Gaussian pixel noise (pixels span [-1, 1])
    misaligned: float = 0.0  # share of training captions that describe another clip (HowTo100M-like noise)

    def __post_init__(self):
        if not 1 <= self.colours <= len(PALETTE):
            raise ValueError(f"colours={self.colours}: accepted 1..{len(PALETTE)}")
        if not 1 <= self.shapes <= len(SHAPES):
            raise ValueError(f"shapes={self.shapes}: accepted 1..{len(SHAPES)}")
        if self.events < 1 or self.event_frames < 1 or self.positions < 1:
            raise ValueError("events, event_frames and positions must be >= 1")
        if self.colours * self.shapes * self.positions < self.events:
            raise ValueError("fewer distinct (colour, shape, position) events than events per clip")
        if not 0.0 <= self.misaligned < 1.0:
            raise ValueError(f"misaligned={self.misaligned}: accepted [0, 1)")

    @property
    def vocab_size(self) -> int:
        return self.colours + self.shapes + self.positions

    @property
    def text_len(self) -> int:
        return 3 * self.events

    @property
    def event_kinds(self) -> int:
        return self.colours * self.shapes * self.positions

    def min_frames(self) -> int:
        """Each of the K parts of the clip must hold one whole event."""
        return self.events * self.event_frames

    def summary(self) -> str:
        return (
            f"K{self.events} dur{self.event_frames} {self.image_size}px c{self.colours} s{self.shapes} "
            f"p{self.positions} shape{self.shape_size}px noise{self.noise:g} misaligned{self.misaligned:g}"
        )


def seeded(*parts: int) -> torch.Generator:
    """A generator seeded from several integers (seed, step, purpose ...) without collisions in practice."""
    seed = 0
    for p in parts:
        seed = (seed * 1_000_003 + int(p)) % (2**63 - 1)
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- sprites

def shape_mask(name: str, size: int) -> torch.Tensor:
    """(size, size) bool mask of a shape. Shapes differ only inside their size x size box: a small detail."""
    i = torch.arange(size)
    r, c = i[:, None], i[None, :]
    mid, half = (size - 1) / 2, max(size // 6, 1) / 2 + 0.01
    if name == "square":
        return torch.ones(size, size, dtype=torch.bool)
    if name == "ring":
        return (r == 0) | (c == 0) | (r == size - 1) | (c == size - 1)
    if name == "plus":
        return ((r - mid).abs() < half + 0.5) | ((c - mid).abs() < half + 0.5)
    if name == "cross":
        return (r == c) | (r + c == size - 1)
    if name == "bar":
        return (r - mid).abs() < half + 0.5
    raise ValueError(f"unknown shape {name!r}; accepted: {', '.join(SHAPES)}")


def position_corners(cfg: TaskConfig) -> list[tuple[int, int]]:
    """Top-left pixel of each position: the shape centred in a cell of a g x g grid, g = ceil(sqrt(P))."""
    g = math.ceil(math.sqrt(cfg.positions))
    cell = cfg.image_size / g
    out = []
    for p in range(cfg.positions):
        row, col = divmod(p, g)
        top = int(round(row * cell + (cell - cfg.shape_size) / 2))
        left = int(round(col * cell + (cell - cfg.shape_size) / 2))
        out.append((top, left))
    return out


def sprite_bank(cfg: TaskConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(colour, shape, position) -> RGB image and mask: (Ncol, Nsh, Npos, 3, R, R) in [-1, 1], and
    (Nsh, Npos, 1, R, R) bool."""
    R, s = cfg.image_size, cfg.shape_size
    masks = torch.zeros(cfg.shapes, cfg.positions, 1, R, R, dtype=torch.bool)
    for si, name in enumerate(SHAPES[: cfg.shapes]):
        m = shape_mask(name, s)
        for pi, (top, left) in enumerate(position_corners(cfg)):
            masks[si, pi, 0, top : top + s, left : left + s] = m
    rgb = torch.tensor(PALETTE[: cfg.colours]) * 2 - 1  # (Ncol, 3) in [-1, 1]
    images = rgb[:, None, None, :, None, None] * masks[None].float()  # (Ncol, Nsh, Npos, 3, R, R)
    return images, masks


# ---------------------------------------------------------------- scenes

@dataclass(frozen=True)
class Scenes:
    """Descriptions of n clips: events (n, K, 3) as (colour, shape, position) ids, start frames (n, K),
    background grey level (n,), and noise (n, 3, T, R, R), already in the clips' layout so rendering
    does not transpose. Tensors in a frozen container: not to be mutated."""

    events: torch.Tensor
    starts: torch.Tensor
    background: torch.Tensor
    noise: torch.Tensor

    @property
    def frames(self) -> int:
        return self.noise.shape[2]

    def select(self, index: torch.Tensor) -> "Scenes":
        return Scenes(self.events[index], self.starts[index], self.background[index], self.noise[index])


def sample_events(cfg: TaskConfig, n: int, g: torch.Generator) -> torch.Tensor:
    """(n, K, 3) events, distinct within each clip (so permuted orders always give distinct captions)."""
    codes = torch.rand(n, cfg.event_kinds, generator=g).argsort(dim=1)[:, : cfg.events]  # (n, K) distinct
    return decode(cfg, codes)


def decode(cfg: TaskConfig, codes: torch.Tensor) -> torch.Tensor:
    """Event codes in [0, C·S·P) -> (..., 3) (colour, shape, position)."""
    colour = codes // (cfg.shapes * cfg.positions)
    shape = (codes // cfg.positions) % cfg.shapes
    return torch.stack([colour, shape, codes % cfg.positions], dim=-1)


def sample_starts(cfg: TaskConfig, n: int, frames: int, g: torch.Generator) -> torch.Tensor:
    """(n, K) start frames: event k starts uniformly inside [floor(kT/K), floor((k+1)T/K) - duration]."""
    if frames < cfg.min_frames():
        raise ValueError(f"{frames} frames cannot hold {cfg.events} events of {cfg.event_frames} frames")
    lo = torch.tensor([k * frames // cfg.events for k in range(cfg.events)])
    hi = torch.tensor([(k + 1) * frames // cfg.events - cfg.event_frames for k in range(cfg.events)])
    u = torch.rand(n, cfg.events, generator=g)
    return lo + (u * (hi - lo + 1).float()).long().clamp(max=(hi - lo))


def sample_scenes(cfg: TaskConfig, n: int, frames: int, g: torch.Generator) -> Scenes:
    events = sample_events(cfg, n, g)
    starts = sample_starts(cfg, n, frames, g)
    background = torch.rand(n, generator=g) * 0.4 - 0.6  # dark grey in [-0.6, -0.2]
    noise = torch.randn(n, 3, frames, cfg.image_size, cfg.image_size, generator=g) * cfg.noise
    return Scenes(events, starts, background, noise)


def render(cfg: TaskConfig, scenes: Scenes, bank: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Scenes -> clips (n, 3, T, R, R): background plus noise, each event's sprite (plus the same noise)
    over its frames. One pass over the clip, then writes to the event frames only."""
    images, masks = bank if bank is not None else sprite_bank(cfg)
    n = scenes.noise.shape[0]
    video = scenes.noise + scenes.background[:, None, None, None, None]  # (n, 3, T, R, R)
    rows = torch.arange(n)
    for k in range(cfg.events):
        col, shp, pos = scenes.events[:, k].unbind(-1)
        sprite, mask = images[col, shp, pos], masks[shp, pos]  # (n, 3, R, R), (n, 1, R, R)
        for d in range(cfg.event_frames):
            t = scenes.starts[:, k] + d
            video[rows, :, t] = torch.where(mask, sprite + scenes.noise[rows, :, t], video[rows, :, t])
    return video


def captions(cfg: TaskConfig, events: torch.Tensor) -> torch.Tensor:
    """(n, K, 3) events -> (n, 3K) token ids: colour, then C + shape, then C + S + position, per event."""
    offsets = torch.tensor([0, cfg.colours, cfg.colours + cfg.shapes])
    return (events + offsets).reshape(events.shape[0], -1)


def permutations(k: int) -> torch.Tensor:
    """All k! orders of k items, identity first: (k!, k)."""
    return torch.tensor(list(itertools.permutations(range(k))))


# ---------------------------------------------------------------- training batches

def permuted_groups(cfg: TaskConfig, base: Scenes, group: int, g: torch.Generator) -> Scenes:
    """Each base scene becomes `group` clips with the same events in different orders (identity first,
    the rest drawn from the K! orders) sharing start frames, background and noise: (n·group) scenes."""
    perms = permutations(cfg.events)
    if group > len(perms):
        raise ValueError(f"a group of {group} orders needs K! >= {group}; K={cfg.events} gives {len(perms)}")
    n = base.events.shape[0]
    picks = [torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(len(perms) - 1, generator=g)[: group - 1]]) for _ in range(n)]
    order = perms[torch.stack(picks)]  # (n, group, K)
    out = base.select(torch.arange(n).repeat_interleave(group))
    events = base.events[:, None].expand(-1, group, -1, -1).gather(2, order[..., None].expand(-1, -1, -1, 3))
    return Scenes(events.reshape(n * group, cfg.events, 3), out.starts, out.background, out.noise)


def hard_group_size(cfg: TaskConfig, wanted: int) -> int:
    return min(math.factorial(cfg.events), wanted)


def clip_batch(cfg: TaskConfig, frames: int, batch: int, hard_fraction: float, hard_group: int, g: torch.Generator,
               bank=None) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch (video (B, 3, T, R, R), ids (B, 3K)) of fresh clips.

    `hard_fraction` of the batch is in-batch hard negatives: groups of clips with the same events in
    different orders (measured when the proxy was built: without them order is learnt late and unreliably). A
    `misaligned` share of captions is swapped among themselves (alignment noise, vfbench's proxy design).
    """
    size = hard_group_size(cfg, hard_group)
    n_groups = int(batch * hard_fraction) // size if size > 1 else 0
    parts = []
    if n_groups:
        parts.append(permuted_groups(cfg, sample_scenes(cfg, n_groups, frames, g), size, g))
    rest = batch - n_groups * size
    if rest:
        parts.append(sample_scenes(cfg, rest, frames, g))
    scenes = Scenes(*(torch.cat(t) for t in zip(*[(s.events, s.starts, s.background, s.noise) for s in parts])))
    ids = captions(cfg, scenes.events)
    m = round(cfg.misaligned * batch)
    if m >= 2:
        who = torch.randperm(batch, generator=g)[:m]
        ids[who] = ids[who.roll(1)]
    return render(cfg, scenes, bank), ids


def image_batch(cfg: TaskConfig, batch: int, g: torch.Generator, bank=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage-1 image-text pairs: single frames (n, 3, 1, R, R) holding one event each, captions (n, 3).
    The n = min(batch, C·S·P) events are distinct, so no caption is a false negative of another."""
    n = min(batch, cfg.event_kinds)
    events = decode(cfg, torch.randperm(cfg.event_kinds, generator=g)[:n])[:, None]  # (n, 1, 3)
    single = TaskConfig(**{**cfg.to_dict(), "events": 1, "event_frames": 1})
    base = sample_scenes(single, n, 1, g)
    scenes = Scenes(events, torch.zeros(n, 1, dtype=torch.long), base.background, base.noise)
    return render(single, scenes, bank), captions(single, events)
