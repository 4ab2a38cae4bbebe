"""Proxy accuracy of a cell: stage 1 (cached image-text pre-training), stage 2 (contrastive training of
the cell's methods on synthetic clips until validation stops improving), evaluation with every token.

The proxy model is one small dual encoder (`proxy_spec`: width 64, depth 2, 4 heads, 32-px frames in
2 x 8 x 8 tubelets, text tower width 64, depth 2), whatever the cell's preset: the preset sizes the
memory and time measurements, while accuracy is measured on this fixed proxy so that every method is
trained the same way in minutes on a CPU. The cell's methods configure and wrap the proxy exactly as
they do the preset (compose(cell.method)). The cell's seed seeds stage 1, the init, the training data
and the masks; the evaluation galleries use `budget.eval_seed`, so seeds differ only in training.

A cell whose methods cannot run on the proxy (e.g. xformers attention on a CPU) raises
`ProxyUnsupported` with the methods' own reasons; the runner records them.

Budget (`ProxyBudget`, the same on every device): the measured proxy set-up (batch 128 of fresh clips,
half in same-events-every-order groups, AdamW 2e-3, 50 warm-up steps, gradient clipping at norm 1, without
which FST with 75% masking collapsed to a constant embedding at step 60) from the stage-1 init, trained by a
rule that is fair to slow learners: until validation stops improving (`rule` "plateau": mean R@1 over the
random, temporal and spatial galleries, on 256 validation queries each drawn apart from the test galleries,
every 50 steps; stop after 3 validations without a gain above 0.005, keep the best model; at most `steps`,
500; validations count toward those 3 only once the best is 0.05 above chance, so a run that has not started
learning trains on to the cap instead of being stopped at chance, as TubeViT with 2-frame events was at 200
steps). A fixed budget (`rule` "fixed", cosine over `steps`) favoured fast learners: joint learns event order
by 200 steps, 50% masking by 500, so a 250-step budget judged the budget, not the method. The learning rate
is constant after warm-up under the plateau rule, so a cell that stops on its plateau is the same run under
any larger cap, and one that reached its cap continues exactly from the state it left there (acc_resumed_from).
The record keeps the rule, where it stopped and why, the validation curve and the training FLOPs (`acc_rule`,
`acc_steps`, `acc_steps_run`, `acc_stop`, `acc_curve`, `acc_step_flops`, `acc_train_flops`), so accuracy can
be read against training compute. Stage 1 takes 1000 steps (~10-20 s, once per seed): 300 left the image model
at chance on shape and position.

Short->long (arXiv:2312.07395, Fig. 5, stage 1b): a cell longer than `short_frames` (16) does not train from stage 1.
It starts from the same methods' stage-2 model at 16 frames, which the 16-frame cell caches (or which is
trained here exactly as that cell trains it), and continues for `long_steps` (50) at its own frame count.
So a 32-frame cell costs 50 steps at 32 frames, not a whole stage-2 run, and its record says so (acc_init, acc_steps,
acc_short_frames, acc_short_steps; acc_steps_run, acc_stop and acc_curve describe the 16-frame stage).
results/proxy-honesty/cells-fixed250.jsonl compares it with training at 32 frames from stage 1.

Cost of one stage-2 step on 2 otherwise idle cores, OMP_NUM_THREADS=2, batch 128 (2026-11 machine): joint 0.14 s
at 16 frames and 0.37 s at 32, frame_avg 0.26 / 0.60 s, joint + 75% masking 0.05 / 0.09 s, plus 0.02-0.05 s to
draw the batch. The 2-core machine of 2026-12 is about 3x slower: joint at 16 frames 0.14 s forward, 0.25 s
backward, 0.15 s to draw the batch; a validation 2 s. Evaluation encodes about 5,100 clips (512+ queries per gallery).
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
from vfbench.registry import compose, recipes
from vfbench.spec import CellSpec, ModelSpec, _Frozen
from vfbench.step import AUTOCAST, model_step_flops, resolve_device
from vfbench.tasks.evaluate import evaluate, validator
from vfbench.tasks.galleries import KINDS, GallerySizes
from vfbench.tasks.pretrain import compact, default_cache_dir, init_from_image, load_or_train_stage1, save_atomic
from vfbench.tasks.result import ProxyAccuracy
from vfbench.tasks.schedule import Plateau, Trace, fit, fit_until_plateau
from vfbench.tasks.synthetic import TaskConfig, clip_batch, seeded, sprite_bank

SHORT_FORMAT = 3  # bump when stage 2 changes meaning, so cached short models are not reused (2: stopping rules; 3: floor)
FLOOR_MARGIN = 0.05  # mean validation R@1 above chance a run must reach before the plateau rule may stop it
TRAINING_KEYS = ("rule", "steps", "batch", "lr", "warmup", "schedule", "weight_decay", "grad_clip", "hard_fraction", "hard_group",
                 "val_every", "patience", "min_delta", "val_queries", "val_seed",
                 "stage1_steps", "stage1_batch", "stage1_lr", "width", "depth", "heads", "patch", "task")
RULES = ("plateau", "fixed")


class ProxyUnsupported(ValueError):
    """The cell's methods cannot run on the proxy here; `reasons` says why, one line each."""

    def __init__(self, reasons: list[str]):
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True)
class ProxyBudget(_Frozen):
    """How the proxy is trained and evaluated; recorded next to the accuracy (acc_* keys)."""

    rule: str = "plateau"  # plateau: until validation R@1 stops improving, `steps` the cap; fixed: `steps` steps, `schedule`
    steps: int = 500  # from stage 1, at frames <= short_frames: the cap (plateau) or the count (fixed)
    batch: int = 128  # fresh clips per step
    lr: float = 2e-3
    warmup: int = 50
    schedule: str = "cosine"  # fixed rule and the short->long continuation: linear warm-up, then cosine to 0 (schedule.py)
    val_every: int = 50  # plateau: validate every so many steps (and at the cap)
    patience: int = 3  # plateau: stop after this many validations in a row without a gain above min_delta
    min_delta: float = 0.005
    val_queries: int = 256  # per validation gallery; drawn from val_seed, apart from the test galleries
    val_seed: int = 20250
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

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"rule={self.rule!r}: accepted {', '.join(RULES)}")

    @property
    def sizes(self) -> GallerySizes:
        return GallerySizes(queries=self.eval_queries)

    @property
    def val_sizes(self) -> GallerySizes:
        return GallerySizes(queries=self.val_queries)


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
        reasons.append(f"{cell.frames} frames cannot hold {budget.task.events} events of {budget.task.duration(cell.frames)} frames")
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
    start = time.perf_counter()
    if short is None:
        trace = train(model, budget, cell.frames, cell.seed, device, dtype)
        short_cached, main_frames = None, cell.frames
    else:
        trace, short_cached = load_or_train_short(model, short, budget, cache, device)
        main_frames = short.frames
    step_flops = model_step_flops(model, main_frames, budget.batch, budget.task.text_len, model.video.train_layout(main_frames))
    flops = step_flops * trace.steps_run
    init, steps, warmup, short_frames, short_steps = "stage1", trace.steps, budget.warmup, None, None
    schedule = budget.schedule if budget.rule == "fixed" else "constant"
    loss = trace.loss_final
    if short is not None and short.frames < cell.frames:  # short->long (arXiv:2312.07395, Fig. 5, stage 1b)
        loss = train(model, budget, cell.frames, cell.seed, device, dtype, budget.long_steps, budget.long_warmup).loss_final
        init, steps, warmup, schedule = f"stage2 at {short.frames} frames", budget.long_steps, budget.long_warmup, budget.schedule
        short_frames, short_steps = short.frames, trace.steps
        flops += budget.long_steps * model_step_flops(
            model, cell.frames, budget.batch, budget.task.text_len, model.video.train_layout(cell.frames))
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    scores = evaluate(model, budget.task, cell.frames, budget.sizes, budget.eval_seed, device, dtype)
    return ProxyAccuracy(
        scores=scores, init=init, steps=steps, warmup=warmup, short_frames=short_frames, short_steps=short_steps,
        batch=budget.batch, lr=budget.lr, weight_decay=budget.weight_decay, grad_clip=budget.grad_clip,
        schedule=schedule, hard_fraction=budget.hard_fraction, train_s=round(train_s, 2),
        eval_s=round(time.perf_counter() - start, 2), loss_final=round(loss, 4),
        model=f"proxy w{budget.width} d{budget.depth} h{budget.heads} patch{budget.patch}",
        task=budget.task.summary(), stage1=stage1, fresh_init=fresh_init, short_cached=short_cached,
        rule=budget.rule, steps_run=trace.steps_run, stop=trace.stop, curve=trace.curve, step_flops=step_flops,
        train_flops=flops, resumed_from=trace.resumed_from,
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


def training_label(method: str) -> str:
    """The composition a cell trains, with a recipe's name resolved to its methods: shortvivit is joint (full
    fine-tuning) and imagevit is frame_avg on the proxy, so they share the cached model instead of training it twice."""
    label = compose(method).label
    recipe = recipes().get(label)
    return compose(recipe.text).label if recipe is not None else label


def short_key(cell: CellSpec, budget: ProxyBudget) -> str:
    ident = {"format": SHORT_FORMAT, "method": training_label(cell.method), "frames": cell.frames, "seed": cell.seed,
             "device": resolve_device(cell.device), "dtype": str(autocast_dtype(cell, budget)),
             "budget": {k: v for k, v in budget.to_dict().items() if k in TRAINING_KEYS}}
    return hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def load_or_train_short(model, short: CellSpec, budget: ProxyBudget, cache: Path, device) -> tuple[Trace, bool]:
    """Bring `model` (fresh from `start_model` with the short cell's methods and seed) to the short cell's
    trained stage-2 state: from the cache, or trained exactly as the short cell's own record trains it and
    then cached atomically. Returns (how that training went, whether it came from the cache).
    Under the plateau rule a run that reaches its cap also leaves its whole state (`cap_path`), and a run under
    a larger cap continues from the largest such state below it instead of from step 0: the same run, since
    the learning rate does not depend on the cap (`fit_until_plateau`), for the cost of the steps past it."""
    path = cache / f"short-{short_key(short, budget)}.pt"
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["model"])
        t = saved["trace"]
        return Trace(t["steps"], t["steps_run"], t["stop"], tuple(map(tuple, t["curve"])), t["loss_final"],
                     t.get("resumed_from")), True
    resume = at_cap = None
    if budget.rule == "plateau":
        prefix = cap_prefix(short, budget)
        caps = [int(n) for f in cache.glob(f"{prefix}*.pt") if (n := f.stem[len(prefix) :]).isdigit() and int(n) < budget.steps]
        if caps:
            resume = torch.load(cap_path(short, budget, cache, max(caps)), map_location="cpu", weights_only=True)
        at_cap = lambda state: save_atomic(state, cap_path(short, budget, cache, budget.steps))  # noqa: E731
    trace = train(model, budget, short.frames, short.seed, device, autocast_dtype(short, budget), resume=resume,
                  at_cap=at_cap)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_atomic({"model": state, "trace": {**dataclasses.asdict(trace), "curve": [list(c) for c in trace.curve]}}, path)
    return trace, False


def cap_prefix(short: CellSpec, budget: ProxyBudget) -> str:
    """The file-name prefix of the short cell's saved cap states: its key with the cap left out."""
    return f"cap-{short_key(short, dataclasses.replace(budget, steps=0))}-"


def cap_path(short: CellSpec, budget: ProxyBudget, cache: Path, cap: int) -> Path:
    """Where the whole state of the short cell's plateau run at step `cap` (its cap then) is kept."""
    return cache / f"{cap_prefix(short, budget)}{cap}.pt"


def plateau_rule(budget: ProxyBudget, validate=None) -> Plateau:
    """The budget's plateau rule. Its floor is the validation galleries' chance level (mean of 1/size over random,
    temporal and spatial: 0.12 at the default sizes) plus FLOOR_MARGIN: a run still at chance (one that has not
    started learning) is not on a plateau and trains on to the cap."""
    sizes = budget.val_sizes
    chance = sum(1 / sizes.size(kind) for kind in KINDS) / len(KINDS)
    return Plateau(validate, budget.val_every, budget.patience, budget.min_delta, chance + FLOOR_MARGIN)


def train(model, budget: ProxyBudget, frames: int, seed: int, device: torch.device, dtype, steps: int | None = None,
          warmup: int | None = None, resume: dict | None = None, at_cap=None) -> Trace:
    """Stage 2: contrastive training on fresh clips, drawn and rendered on `device`. Without `steps`, by the
    budget's rule: until validation R@1 stops improving (plateau, `budget.steps` the cap) or `budget.steps`
    steps (fixed); with `steps` (the short->long continuation), that many on the budget's schedule. The masks
    (the encoder's token hooks) draw from their own generator, seeded from (seed, frames), so a long cell masks
    the same whether its short stage came from the cache or was trained just now. On CUDA the clips come
    from a CUDA generator, whose stream differs from the CPU one: the same seed draws other clips there.
    `resume` / `at_cap` (plateau rule only): continue a run from the state a smaller cap left / keep this run's
    state when it reaches its cap (`fit_until_plateau`), the mask generator's state included."""
    bank = sprite_bank(budget.task, device)
    model.video.token_generator = seeded(seed, 2, frames)
    batch_at = lambda step: clip_batch(budget.task, frames, budget.batch, budget.hard_fraction,  # noqa: E731
                                       budget.hard_group, seeded(seed, 1, frames, step, device=device), bank)
    warmup = budget.warmup if warmup is None else warmup
    if steps is not None or budget.rule == "fixed":
        steps = budget.steps if steps is None else steps
        loss = fit(model, batch_at, steps, budget.lr, budget.weight_decay, warmup, budget.schedule, budget.grad_clip,
                   device, dtype)
        return Trace(steps, steps, "fixed", (), loss)
    score = validator(model, budget.task, frames, budget.val_sizes, budget.val_seed, device, dtype)
    rule = plateau_rule(budget, score)
    masks = model.video.token_generator
    if resume is not None:
        masks.set_state(resume["masks"])
    keep = None if at_cap is None else (lambda state: at_cap({**state, "masks": masks.get_state()}))
    trace = fit_until_plateau(model, batch_at, budget.steps, budget.lr, budget.weight_decay, warmup, budget.grad_clip,
                              rule, device, dtype, resume, keep)
    return trace if resume is None else dataclasses.replace(trace, resumed_from=resume["step"])
