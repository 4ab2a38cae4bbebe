"""Proxy accuracy of a cell: stage 1 (cached image-text pre-training), stage 2 (contrastive training of
the cell's methods on synthetic clips for a fixed budget), evaluation with every token.

The proxy model is one small dual encoder (`proxy_spec`: width 64, depth 2, 4 heads, 32-px frames in
2 x 8 x 8 tubelets, text tower width 64, depth 2), whatever the cell's preset: the preset sizes the
memory and time measurements, while accuracy is measured on this fixed proxy so that every method is
trained the same way in minutes on a CPU. The cell's methods configure and wrap the proxy exactly as
they do the preset (compose(cell.method)). The cell's seed seeds stage 1, the init, the training data
and the masks; the evaluation galleries use `budget.eval_seed`, so seeds differ only in training.

A cell whose methods cannot run on the proxy (e.g. xformers attention on a CPU) raises
`ProxyUnsupported` with the methods' own reasons; the runner records them.

Budget (`ProxyBudget`, the same on every device): the measured proxy set-up (batch 128 of fresh clips,
half in same-events-every-order groups, AdamW 2e-3, 50 warm-up steps, cosine) for 250 steps from the
stage-1 init, where the honesty checks hold with a margin (results/proxy-honesty/honesty.md, "Training
budget": joint learns event order between 120 and 200 steps, and slower learners such as coarse_spatial
lose more at 250 than at 500 steps, which that file shows); plus gradient clipping at norm 1, without which
FST with 75% masking collapsed to a constant embedding at step 60. Stage 1 takes 1000 steps (~10-20 s,
once per seed): 300 left the image model at chance on shape and position.

Short->long (arXiv:2312.07395, Fig. 5, stage 1b): a cell longer than `short_frames` (16) does not train from stage 1.
It starts from the same methods' stage-2 model at 16 frames, which the 16-frame cell caches (or which is
trained here exactly as that cell trains it), and continues for `long_steps` (50) at its own frame count.
So a 32-frame cell costs 50 steps at 32 frames, not 250, and its record says so (acc_init, acc_steps,
acc_short_frames, acc_short_steps). honesty.md compares it with training at 32 frames from stage 1.

Cost of one stage-2 step on 2 otherwise idle cores, OMP_NUM_THREADS=2, batch 128: joint 0.14 s at 16
frames and 0.37 s at 32, frame_avg 0.26 / 0.60 s, joint + 75% masking 0.05 / 0.09 s, plus 0.02-0.05 s to
draw the batch. Evaluation encodes about 5,100 clips (512+ queries per gallery).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vfbench.models.tower import frames_problems
from vfbench.models import build_model
from vfbench.registry import compose
from vfbench.spec import CellSpec, ModelSpec, _Frozen
from vfbench.step import AUTOCAST, resolve_device
from vfbench.tasks.evaluate import evaluate
from vfbench.tasks.galleries import GallerySizes
from vfbench.tasks.pretrain import compact, default_cache_dir, init_from_image, load_or_train_stage1, save_atomic
from vfbench.tasks.result import ProxyAccuracy
from vfbench.tasks.schedule import fit
from vfbench.tasks.synthetic import TaskConfig, clip_batch, seeded, sprite_bank

SHORT_FORMAT = 1  # bump when stage 2 changes meaning, so cached short models are not reused
TRAINING_KEYS = ("steps", "batch", "lr", "warmup", "schedule", "weight_decay", "grad_clip", "hard_fraction", "hard_group",
                 "stage1_steps", "stage1_batch", "stage1_lr", "width", "depth", "heads", "patch", "task")


class ProxyUnsupported(ValueError):
    """The cell's methods cannot run on the proxy here; `reasons` says why, one line each."""

    def __init__(self, reasons: list[str]):
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True)
class ProxyBudget(_Frozen):
    """How the proxy is trained and evaluated; recorded next to the accuracy (acc_* keys)."""

    steps: int = 250  # from stage 1, at frames <= short_frames
    batch: int = 128  # fresh clips per step
    lr: float = 2e-3
    warmup: int = 50
    schedule: str = "cosine"  # linear warm-up, then cosine to 0 (schedule.py)
    weight_decay: float = 0.05
    grad_clip: float = 1.0  # max global grad norm (0 = off); without it FST + 75% masking collapsed at step 60 (measured)
    hard_fraction: float = 0.5  # share of each batch in same-events-every-order groups (measured necessary when the proxy was built)
    hard_group: int = 6  # clips per such group (K! = 6 at K = 3)
    stage1_steps: int = 1000  # 300 left the image model at chance on shape and position (measured)
    stage1_batch: int = 48  # distinct single-event images per step (all 48 at the default task)
    stage1_lr: float = 2e-3
    width: int = 64
    depth: int = 2
    heads: int = 4
    patch: int = 8
    short_frames: int = 16  # longer cells continue the same methods trained here (short->long); 0 = off
    long_steps: int = 50  # steps at the cell's own frame count after short_frames
    long_warmup: int = 10
    eval_queries: int = 512  # per gallery (measured: sampling error ±0.03 at 128)
    eval_seed: int = 20240
    task: TaskConfig = field(default_factory=TaskConfig)

    @property
    def sizes(self) -> GallerySizes:
        return GallerySizes(queries=self.eval_queries)


def default_budget(device: str) -> ProxyBudget:
    """The same training on every device, so CPU and CUDA accuracies compare; devices differ only in
    which cells train by default (`cpu_default_subset`)."""
    resolve_device(device)  # validates the name
    return ProxyBudget()


def proxy_spec(budget: ProxyBudget) -> ModelSpec:
    """The proxy dual encoder for the budget's task (the measured proxy set-up)."""
    t = budget.task
    return ModelSpec(
        "proxy", width=budget.width, depth=budget.depth, heads=budget.heads, mlp_dim=4 * budget.width,
        image_size=t.image_size, patch_size=budget.patch, tubelet=2, temporal_pos_len=8,
        text_width=budget.width, text_depth=2, text_heads=budget.heads, text_mlp_dim=4 * budget.width,
        vocab_size=t.vocab_size, text_len=t.text_len, embed_dim=budget.width,
    )


def proxy_problems(cell: CellSpec, budget: ProxyBudget) -> list[str]:
    """Why the cell cannot train on the proxy (empty when it can)."""
    comp = compose(cell.method)
    spec = comp.configure(proxy_spec(budget))
    reasons = frames_problems(spec, cell.frames)
    if cell.frames < budget.task.min_frames():
        reasons.append(f"{cell.frames} frames cannot hold {budget.task.events} events of {budget.task.event_frames} frames")
    if (spec.precision or cell.dtype) not in AUTOCAST:
        reasons.append(f"precision {spec.precision or cell.dtype!r} is not supported by the proxy")
    proxy_cell = dataclasses.replace(cell, device=resolve_device(cell.device))
    return reasons + comp.not_supported_reasons(proxy_cell, spec)


def measure_accuracy(cell: CellSpec, budget: ProxyBudget, cache_dir: Path | None = None) -> ProxyAccuracy:
    """Train the cell's methods on the proxy and return its accuracy (the record's acc_* keys: to_dict)."""
    reasons = proxy_problems(cell, budget)
    if reasons:
        raise ProxyUnsupported(reasons)
    device = torch.device(resolve_device(cell.device))
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    model, stage1, fresh_init = start_model(cell, budget, cache)
    model.to(device).train()
    dtype = autocast_dtype(cell, budget)
    short = short_cell(cell, budget)
    init, steps, warmup, short_frames, short_steps, short_cached = "stage1", budget.steps, budget.warmup, None, None, None
    start = time.perf_counter()
    if short is None:
        loss = train(model, budget, cell.frames, cell.seed, device, dtype, budget.steps, budget.warmup)
    else:
        loss, cached = load_or_train_short(model, short, budget, cache, device)
        short_cached = cached
    if short is not None and short.frames < cell.frames:  # short->long (arXiv:2312.07395, Fig. 5, stage 1b)
        loss = train(model, budget, cell.frames, cell.seed, device, dtype, budget.long_steps, budget.long_warmup)
        init, steps, warmup = f"stage2 at {short.frames} frames", budget.long_steps, budget.long_warmup
        short_frames, short_steps = short.frames, budget.steps
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    scores = evaluate(model, budget.task, cell.frames, budget.sizes, budget.eval_seed, device, dtype)
    return ProxyAccuracy(
        scores=scores, init=init, steps=steps, warmup=warmup, short_frames=short_frames, short_steps=short_steps,
        batch=budget.batch, lr=budget.lr, weight_decay=budget.weight_decay, grad_clip=budget.grad_clip,
        schedule=budget.schedule, hard_fraction=budget.hard_fraction, train_s=round(train_s, 2),
        eval_s=round(time.perf_counter() - start, 2), loss_final=round(loss, 4),
        model=f"proxy w{budget.width} d{budget.depth} h{budget.heads} patch{budget.patch}",
        task=budget.task.summary(), stage1=stage1, fresh_init=fresh_init, short_cached=short_cached,
    )


def autocast_dtype(cell: CellSpec, budget: ProxyBudget):
    """The autocast dtype the cell trains the proxy in (None = plain fp32): its methods' precision or its own."""
    return AUTOCAST[compose(cell.method).configure(proxy_spec(budget)).precision or cell.dtype]


def start_model(cell: CellSpec, budget: ProxyBudget, cache: Path):
    """The cell's proxy model initialised from stage 1 (trained and cached on first use), methods applied;
    seeds the global stream (fresh parameters) from the cell's seed."""
    comp = compose(cell.method)
    base = proxy_spec(budget)
    state, stage1 = load_or_train_stage1(
        base, budget.task, budget.stage1_steps, budget.stage1_batch, budget.stage1_lr, cell.seed, cache)
    torch.manual_seed(cell.seed)
    model = build_model(comp.configure(base))
    missing = init_from_image(model, state)
    comp.apply(model)
    return model, stage1, compact(missing)


def short_cell(cell: CellSpec, budget: ProxyBudget) -> CellSpec | None:
    """The cell at `short_frames` with the same methods, seed and precision, whose stage-2 model is cached
    and continued by longer cells; None when the cell is shorter, or that cell cannot train here."""
    if not budget.short_frames or cell.frames < budget.short_frames:
        return None
    short = dataclasses.replace(cell, frames=budget.short_frames)
    return None if proxy_problems(short, budget) else short


def short_key(cell: CellSpec, budget: ProxyBudget) -> str:
    ident = {"format": SHORT_FORMAT, "method": compose(cell.method).label, "frames": cell.frames, "seed": cell.seed,
             "device": resolve_device(cell.device), "dtype": str(autocast_dtype(cell, budget)),
             "budget": {k: v for k, v in budget.to_dict().items() if k in TRAINING_KEYS}}
    return hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def load_or_train_short(model, short: CellSpec, budget: ProxyBudget, cache: Path, device) -> tuple[float, bool]:
    """Bring `model` (fresh from `start_model` with the short cell's methods and seed) to the short cell's
    trained stage-2 state: from the cache, or trained exactly as the short cell's own record trains it and
    then cached atomically. Returns (final loss, whether it came from the cache)."""
    path = cache / f"short-{short_key(short, budget)}.pt"
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["model"])
        return float(saved["loss_final"]), True
    loss = train(model, budget, short.frames, short.seed, device, autocast_dtype(short, budget), budget.steps, budget.warmup)
    save_atomic({"model": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "loss_final": loss}, path)
    return loss, False


def train(model, budget: ProxyBudget, frames: int, seed: int, device: torch.device, dtype, steps: int,
          warmup: int) -> float:
    """Stage 2: contrastive training on fresh clips; returns the mean loss of the last 20 steps. The
    masks (the encoder's token hooks) draw from their own generator, seeded from (seed, frames), so a
    long cell masks the same whether its short stage came from the cache or was trained just now."""
    bank = sprite_bank(budget.task)
    model.video.token_generator = seeded(seed, 2, frames)
    batch_at = lambda step: clip_batch(budget.task, frames, budget.batch, budget.hard_fraction,  # noqa: E731
                                       budget.hard_group, seeded(seed, 1, frames, step), bank)
    return fit(model, batch_at, steps, budget.lr, budget.weight_decay, warmup, budget.schedule, budget.grad_clip,
               device, dtype)


