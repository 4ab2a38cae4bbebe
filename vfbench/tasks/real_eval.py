"""Accuracy on real video-text data: `--task video-folder:PATH --init open_clip:NAME:WEIGHTS`.

A cell starts from the image-text checkpoint inflated into vfbench's CLIP-shaped model (tasks/clip_init.py,
arXiv:2312.07395 §3), applies its methods exactly as on any vfbench model, trains contrastively on the
folder's training split for a small fixed budget (`VideoBudget`: symmetric InfoNCE with the checkpoint's
temperature, AdamW, linear warm-up then cosine, the proxy's training loop `schedule.fit`), and evaluates
text->video and video->text retrieval on the held-out split (tasks/video_folder.py), every token kept.

Record keys (acc_*, as the synthetic proxy's, so the same reports read them): `acc_r1_t2v`, `acc_r5_t2v`,
`acc_r1_v2t`, `acc_r5_v2t` (recall at 1 and 5 over the held-out pairs, ties counted against the
match), their chance levels `acc_chance_r<k>_<dir>` (k/n), `acc_eval_pairs` (n), the same recalls of the
inflated model before training (`acc_init_r<k>_<dir>`: what the image-text model gives zero-shot), the
budget (`acc_steps`, `acc_batch`, `acc_lr`, ...), the data (`acc_task`, `acc_train_videos`,
`acc_unusable_rows`) and what was skipped: `acc_skipped_missing`, `acc_skipped_unreadable` and a few
examples with the decoder's reason (`acc_skipped_examples`).

Budget: `VideoBudget` defaults, replaced field by field by the JSON in $VFBENCH_VIDEO_BUDGET (e.g.
`{"steps": 500, "batch": 32, "fps": 1}`); the record carries the budget used.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vfbench.errors import UserError
from vfbench.models.clip import build_clip_model, clip_problems
from vfbench.models.tower import frames_problems
from vfbench.registry import compose
from vfbench.spec import CellSpec, _Frozen
from vfbench.step import AUTOCAST, autocast, resolve_device
from vfbench.tasks.clip_init import clip_spec, load_into, load_open_clip, parse_init
from vfbench.tasks.proxy import ProxyUnsupported
from vfbench.tasks.schedule import fit
from vfbench.tasks.synthetic import seeded
from vfbench.tasks.video_folder import ClipSource, Skipped, open_folder

BUDGET_ENV = "VFBENCH_VIDEO_BUDGET"  # JSON of VideoBudget fields that replace the defaults
RECALL_AT = (1, 5)


@dataclass(frozen=True)
class VideoBudget(_Frozen):
    """How a video-folder cell trains and evaluates; recorded next to its accuracy (acc_* keys)."""

    steps: int = 50
    batch: int = 16  # clips per step (fewer when the training split is smaller)
    lr: float = 1e-5  # fine-tuning a pre-trained image-text model
    warmup: int = 5
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    fps: float = 2.0  # frames sampled per second of video
    eval_share: float = 0.2  # of the videos held out (at least 2)
    tubelet: int = 2  # frames per tubelet: the paper's 2 x 16 x 16
    image_size: int = 0  # 0 = the checkpoint's; smaller runs a large model cheaply (positions resampled)
    eval_batch: int = 32


def budget_from_env() -> VideoBudget:
    override = os.environ.get(BUDGET_ENV)
    if not override:
        return VideoBudget()
    try:
        return VideoBudget.from_dict({**VideoBudget().to_dict(), **json.loads(override)})
    except (json.JSONDecodeError, TypeError, AttributeError) as exc:
        raise UserError(f"${BUDGET_ENV} is not a JSON object of VideoBudget fields ({exc})") from None


def recalls(sim: torch.Tensor, ks=RECALL_AT) -> dict[str, float]:
    """Recall@k both ways of an (n texts, n videos) similarity matrix whose pair i is (text i, video i).
    A pair counts at k when fewer than k others score at least as high (ties count against it, so a
    constant embedding scores 0, not 1)."""
    out = {}
    for direction, s in (("t2v", sim), ("v2t", sim.T)):
        own = s.diagonal()[:, None]
        rank = (s >= own).sum(dim=1) - 1  # others at least as similar
        for k in ks:
            out[f"r{k}_{direction}"] = round(float((rank < k).float().mean()), 4)
    return out


@torch.no_grad()
def retrieval(model, clips: list[torch.Tensor], ids: torch.Tensor, device, dtype, batch: int) -> dict[str, float]:
    """Recall@k of held-out clips (3, T, H, W) against their captions' token ids, in eval mode."""
    was_training = model.training
    model.eval()
    with autocast(device.type, dtype):
        v = torch.cat([model.embed_video(torch.stack(clips[i:i + batch]).to(device)).float() for i in range(0, len(clips), batch)])
        t = torch.cat([model.embed_text(ids[i:i + batch].to(device)).float() for i in range(0, len(ids), batch)])
    model.train(was_training)
    return recalls(F.normalize(t, dim=-1) @ F.normalize(v, dim=-1).T)


@dataclass(frozen=True)
class VideoAccuracy:
    """The accuracy of one cell on a video folder; `to_dict` is the record's acc_* keys."""

    scores: dict
    init_scores: dict
    eval_pairs: int
    train_videos: int
    task: str
    init: str
    model: str
    budget: VideoBudget
    train_s: float
    eval_s: float
    loss_final: float
    fresh_init: str
    unusable_rows: int
    skipped: Skipped

    def to_dict(self) -> dict:
        out = {f"acc_{k}": v for k, v in self.scores.items()}
        n = self.eval_pairs
        out.update({f"acc_chance_{k}": round(min(int(k[1:].split("_")[0]), n) / n, 4) for k in self.scores})
        out.update({f"acc_init_{k}": v for k, v in self.init_scores.items()})
        b = self.budget
        out.update(
            acc_eval_pairs=n, acc_train_videos=self.train_videos, acc_task=self.task, acc_init=self.init,
            acc_init_weights=parse_init(self.init).weights or "random", acc_model=self.model, acc_steps=b.steps,
            acc_batch=b.batch, acc_lr=b.lr, acc_warmup=b.warmup, acc_weight_decay=b.weight_decay, acc_grad_clip=b.grad_clip,
            acc_schedule="cosine", acc_fps=b.fps, acc_eval_share=b.eval_share, acc_train_s=self.train_s,
            acc_eval_s=self.eval_s, acc_loss_final=self.loss_final, acc_fresh_init=self.fresh_init,
            acc_unusable_rows=self.unusable_rows, **self.skipped.to_dict(),
        )
        return out


def measure_video_accuracy(cell: CellSpec, budget: VideoBudget) -> VideoAccuracy:
    """Train the cell's methods on the folder's training split from the image-text checkpoint, evaluate
    retrieval on the held-out split. Raises ProxyUnsupported when the methods cannot run on the
    CLIP-shaped model, or too few videos decode."""
    folder = open_folder(cell.task)
    loaded = load_open_clip(parse_init(cell.init))
    comp = compose(cell.method)
    spec = comp.configure(clip_spec(loaded.name, loaded.cfg, budget.tubelet, budget.image_size))
    reasons = clip_problems(spec) + frames_problems(spec, cell.frames)
    if (spec.precision or cell.dtype) not in AUTOCAST:
        reasons.append(f"precision {spec.precision or cell.dtype!r} is not supported here")
    reasons += comp.not_supported_reasons(dataclasses.replace(cell, device=resolve_device(cell.device)), spec)
    if reasons:
        raise ProxyUnsupported(reasons)
    device = torch.device(resolve_device(cell.device))
    dtype = AUTOCAST[spec.precision or cell.dtype]
    torch.manual_seed(cell.seed)
    model = build_clip_model(spec)
    fresh = load_into(model, loaded.state)
    comp.apply(model)
    model.to(device)
    tokenizer = loaded.tokenizer()

    train, held = folder.split(budget.eval_share)
    skipped = Skipped(missing=list(folder.missing))
    source = ClipSource(cell.frames, budget.fps, spec.image_size, loaded.mean, loaded.std, skipped)
    start = time.perf_counter()
    pairs = [(c, v.captions[0]) for v in held if (c := source.get(v)) is not None]
    if len(pairs) < 2:
        raise ProxyUnsupported([f"{len(pairs)} of the {len(held)} held-out videos decode; retrieval needs 2 or more"])
    clips, ids = [c for c, _ in pairs], tokenizer([cap for _, cap in pairs])
    init_scores = retrieval(model, clips, ids, device, dtype, budget.eval_batch)
    eval_s = time.perf_counter() - start

    pool = list(train)

    def batch_at(step: int):
        g = seeded(cell.seed, 13, cell.frames, step)
        pool[:] = [v for v in pool if v.rel not in skipped.unreadable]
        got, caps = [], []
        for j in torch.randperm(len(pool), generator=g).tolist():
            c = source.get(pool[j])
            if c is not None:
                got.append(c)
                caps.append(pool[j].captions[int(torch.randint(len(pool[j].captions), (1,), generator=g))])
            if len(got) == budget.batch:
                break
        if len(got) < 2:
            raise RuntimeError(f"{len(got)} training videos decode; contrastive training needs 2 or more "
                               f"({len(skipped.unreadable)} unreadable)")
        return torch.stack(got), tokenizer(caps)

    model.video.token_generator = seeded(cell.seed, 2, cell.frames)  # masks: their own stream, as the proxy's
    model.train()
    start = time.perf_counter()
    loss = fit(model, batch_at, budget.steps, budget.lr, budget.weight_decay, budget.warmup, "cosine", budget.grad_clip,
               device, dtype)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    scores = retrieval(model, clips, ids, device, dtype, budget.eval_batch)
    eval_s += time.perf_counter() - start
    return VideoAccuracy(
        scores=scores, init_scores=init_scores, eval_pairs=len(pairs), train_videos=len(train) - sum(
            v.rel in skipped.unreadable for v in train), task=cell.task, init=loaded.init.label,
        model=f"{spec.name} w{spec.width} d{spec.depth} patch{spec.patch_size} tubelet{spec.tubelet} {spec.image_size}px",
        budget=budget, train_s=round(train_s, 2), eval_s=round(eval_s, 2), loss_final=round(loss, 4),
        fresh_init=",".join(fresh), unusable_rows=folder.unusable_rows, skipped=skipped,
    )


def check_video_task(task: str, init: str) -> str:
    """Everything about --task video-folder / --init that can be checked before any cell runs (the extra
    installed, the folder and captions, the init string, the weights against the model, the budget).
    Returns a one-line summary; raises UserError."""
    from vfbench.tasks.clip_init import require_video_extra

    if not init:
        raise UserError("--task video-folder:... needs --init open_clip:NAME[:WEIGHTS] (the image-text model it starts from)")
    parse_init(init)
    require_video_extra("--task video-folder")
    budget = budget_from_env()
    folder = open_folder(task)
    loaded = load_open_clip(parse_init(init))
    spec = clip_spec(loaded.name, loaded.cfg, budget.tubelet, budget.image_size)
    with torch.device("meta"):
        model = build_clip_model(spec)
    try:
        load_into(model, {k: v.to("meta") for k, v in loaded.state.items()})
    except ValueError as exc:
        raise UserError(f"--init: {loaded.init.label} does not fit vfbench's CLIP-shaped model: {exc}") from None
    train, held = folder.split(budget.eval_share)
    weights = "random weights (no WEIGHTS given)" if not loaded.init.weights else f"weights {loaded.init.weights}"
    missing = f", {len(folder.missing)} listed videos missing (skipped)" if folder.missing else ""
    return (f"video-folder task: {folder.captions_file}: {len(train)} videos to train, {len(held)} held out{missing}; "
            f"init open_clip {loaded.name} with {weights}")
