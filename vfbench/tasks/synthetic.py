"""A procedural video-text task in which temporal order over the whole clip and small spatial details
matter (vfbench's proxy design).

A clip of T frames at R x R px holds K events. An event is a coloured shape at one of a few positions; event
k starts at a random time inside the k-th of K equal parts of the clip, so the events are ordered and spread
over the whole clip. Outside events a frame shows only the clip's flat grey background plus per-frame noise.
The caption is the ordered event sequence as token ids, three per event: colour, shape, position.

Redundancy: how long an event stays in view (`TaskConfig.duration`). By default (`event_share` 1.0) an event
fills its part of the clip, floor(T/K) frames, as a shot fills seconds of 1-FPS video: at T = 16 an event
lasts 5 frames (5 s at 1 FPS, 2-3 tubelets), at T = 256, 85. Masking then hides a share of an event's tokens,
rarely all of them (`hidden_chance`). `event_share` 0 gives the earlier fixed `event_frames` (2: one tubelet,
a needle that 75% masking hides entirely about a third of the time).

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
    event_share: float = 1.0  # an event stays visible for this share of its part, floor(T/K) frames (0 = fixed event_frames)
    event_frames: int = 2  # frames an event stays visible when event_share is 0 (1 = a needle)
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
        if not 0.0 <= self.event_share <= 1.0:
            raise ValueError(f"event_share={self.event_share}: accepted [0, 1] (0 = fixed event_frames)")

    @property
    def vocab_size(self) -> int:
        return self.colours + self.shapes + self.positions

    @property
    def text_len(self) -> int:
        return 3 * self.events

    @property
    def event_kinds(self) -> int:
        return self.colours * self.shapes * self.positions

    def duration(self, frames: int) -> int:
        """Frames each event stays visible in a clip of `frames`: round(event_share·floor(T/K)), at least 1,
        or the fixed `event_frames` when event_share is 0. The same for every event of a clip, so how long an
        event is shown says nothing of its place in the order."""
        if self.event_share > 0:
            return max(1, round(self.event_share * (frames // self.events)))
        return self.event_frames

    def min_frames(self) -> int:
        """Each of the K parts of the clip must hold one whole event."""
        return self.events * (1 if self.event_share > 0 else self.event_frames)

    def redundancy(self) -> str:
        return f"share{self.event_share:g}" if self.event_share > 0 else f"dur{self.event_frames}"

    def summary(self) -> str:
        return (
            f"K{self.events} {self.redundancy()} {self.image_size}px c{self.colours} s{self.shapes} "
            f"p{self.positions} shape{self.shape_size}px noise{self.noise:g} misaligned{self.misaligned:g}"
        )


def seeded(*parts: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A generator seeded from several integers (seed, step, purpose ...) without collisions in practice.
    On a CUDA device the draws happen there (a CUDA generator's stream differs from the CPU one's)."""
    seed = 0
    for p in parts:
        seed = (seed * 1_000_003 + int(p)) % (2**63 - 1)
    return torch.Generator(device=device).manual_seed(seed)


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


def sprite_bank(cfg: TaskConfig, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
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
    return images.to(device), masks.to(device)


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
    codes = torch.rand(n, cfg.event_kinds, generator=g, device=g.device).argsort(dim=1)[:, : cfg.events]  # (n, K) distinct
    return decode(cfg, codes)


def decode(cfg: TaskConfig, codes: torch.Tensor) -> torch.Tensor:
    """Event codes in [0, C·S·P) -> (..., 3) (colour, shape, position)."""
    colour = codes // (cfg.shapes * cfg.positions)
    shape = (codes // cfg.positions) % cfg.shapes
    return torch.stack([colour, shape, codes % cfg.positions], dim=-1)


def sample_starts(cfg: TaskConfig, n: int, frames: int, g: torch.Generator) -> torch.Tensor:
    """(n, K) start frames: event k starts uniformly inside [floor(kT/K), floor((k+1)T/K) - duration]."""
    if frames < cfg.min_frames():
        raise ValueError(f"{frames} frames cannot hold {cfg.events} events of {cfg.duration(frames)} frames")
    dur = cfg.duration(frames)
    lo = torch.tensor([k * frames // cfg.events for k in range(cfg.events)], device=g.device)
    hi = torch.tensor([(k + 1) * frames // cfg.events - dur for k in range(cfg.events)], device=g.device)
    u = torch.rand(n, cfg.events, generator=g, device=g.device)
    return lo + (u * (hi - lo + 1).float()).long().clamp(max=(hi - lo))


def sample_scenes(cfg: TaskConfig, n: int, frames: int, g: torch.Generator) -> Scenes:
    events = sample_events(cfg, n, g)
    starts = sample_starts(cfg, n, frames, g)
    background = torch.rand(n, generator=g, device=g.device) * 0.4 - 0.6  # dark grey in [-0.6, -0.2]
    noise = torch.randn(n, 3, frames, cfg.image_size, cfg.image_size, generator=g, device=g.device) * cfg.noise
    return Scenes(events, starts, background, noise)


def render(cfg: TaskConfig, scenes: Scenes, bank: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Scenes -> clips (n, 3, T, R, R): background plus noise, each event's sprite (plus the same noise)
    over its `cfg.duration(T)` frames, on the scenes' device."""
    device = scenes.noise.device
    images, masks = bank if bank is not None else sprite_bank(cfg, device)
    T = scenes.frames
    video = scenes.noise + scenes.background[:, None, None, None, None]  # (n, 3, T, R, R)
    t = torch.arange(T, device=device)
    for k in range(cfg.events):
        col, shp, pos = scenes.events[:, k].unbind(-1)
        sprite, mask = images[col, shp, pos], masks[shp, pos]  # (n, 3, R, R), (n, 1, R, R)
        start = scenes.starts[:, k, None]
        shown = (t >= start) & (t < start + cfg.duration(T))  # (n, T)
        video = torch.where(shown[:, None, :, None, None] & mask[:, :, None], sprite[:, :, None] + scenes.noise, video)
    return video


def captions(cfg: TaskConfig, events: torch.Tensor) -> torch.Tensor:
    """(n, K, 3) events -> (n, 3K) token ids: colour, then C + shape, then C + S + position, per event."""
    offsets = torch.tensor([0, cfg.colours, cfg.colours + cfg.shapes], device=events.device)
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
    picks = [torch.cat([torch.zeros(1, dtype=torch.long, device=g.device),
                        1 + torch.randperm(len(perms) - 1, generator=g, device=g.device)[: group - 1]]) for _ in range(n)]
    order = perms.to(g.device)[torch.stack(picks)]  # (n, group, K)
    out = base.select(torch.arange(n, device=g.device).repeat_interleave(group))
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
        who = torch.randperm(batch, generator=g, device=g.device)[:m]
        ids[who] = ids[who.roll(1)]
    return render(cfg, scenes, bank), ids


def image_batch(cfg: TaskConfig, batch: int, g: torch.Generator, bank=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage-1 image-text pairs: single frames (n, 3, 1, R, R) holding one event each, captions (n, 3).
    The n = min(batch, C·S·P) events are distinct, so no caption is a false negative of another."""
    n = min(batch, cfg.event_kinds)
    events = decode(cfg, torch.randperm(cfg.event_kinds, generator=g, device=g.device)[:n])[:, None]  # (n, 1, 3)
    single = TaskConfig(**{**cfg.to_dict(), "events": 1, "event_frames": 1, "event_share": 0.0})
    base = sample_scenes(single, n, 1, g)
    scenes = Scenes(events, torch.zeros(n, 1, dtype=torch.long, device=g.device), base.background, base.noise)
    return render(single, scenes, bank), captions(single, events)


# ---------------------------------------------------------------- redundancy

def hidden_chance(cfg: TaskConfig, frames: int, ratio: float, patch: int = 8, tubelet: int = 2) -> float:
    """Chance that random masking of `ratio` of a clip's tokens hides every token of one event, averaged over
    the event's positions and start frames: an event covers m tokens (the patches its sprite's box touches,
    times the tubelets its frames touch) of S, and keeping k = floor(S(1-r)) at random misses all m with
    probability C(S-m, k) / C(S, k). What redundancy means for masking: near 0 where events last."""
    from vfbench.methods.masking import keep_count  # noqa: PLC0415 (tasks do not depend on methods at import)

    S = (frames // tubelet) * (cfg.image_size // patch) ** 2
    keep = keep_count(S, ratio)
    dur = cfg.duration(frames)
    total, count = 0.0, 0
    for top, left in position_corners(cfg):
        rows = (top + cfg.shape_size - 1) // patch - top // patch + 1
        cols = (left + cfg.shape_size - 1) // patch - left // patch + 1
        for k in range(cfg.events):
            lo, hi = k * frames // cfg.events, (k + 1) * frames // cfg.events - dur
            for start in range(lo, hi + 1):
                m = rows * cols * ((start + dur - 1) // tubelet - start // tubelet + 1)
                total += math.comb(S - m, keep) / math.comb(S, keep) if S - m >= keep else 0.0
                count += 1
    return total / count
