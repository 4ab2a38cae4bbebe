"""The proxy accuracy of one cell, typed: what `measure_accuracy` returns and the runner records.

On disk it stays the flat acc_* keys of the record (`to_dict`), in the order they have always been
written; `from_dict` reads those keys back. `AccuracyOutcome` is what the runner adds to a measured
record: the accuracy, or why there is none (acc_reason: the methods cannot train on the proxy;
acc_error: the training failed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

GALLERIES = ("random", "temporal", "spatial", "shuffled", "single_frame")


@dataclass(frozen=True)
class GalleryScore:
    """R@1 on one gallery (or control), its chance level and its number of queries."""

    gallery: str
    r1: float
    queries: int
    chance: float

    def to_dict(self) -> dict:
        g = self.gallery
        return {f"acc_r1_{g}": self.r1, f"acc_queries_{g}": self.queries, f"acc_chance_{g}": self.chance}

    @classmethod
    def from_dict(cls, gallery: str, data: dict) -> "GalleryScore":
        return cls(gallery, data[f"acc_r1_{gallery}"], data[f"acc_queries_{gallery}"], data[f"acc_chance_{gallery}"])


@dataclass(frozen=True)
class Stage1:
    """The cached image-text model the cell started from."""

    cached: bool
    key: str
    seconds: float

    def to_dict(self) -> dict:
        return {"acc_stage1_cached": self.cached, "acc_stage1_key": self.key, "acc_stage1_s": self.seconds}

    @classmethod
    def from_dict(cls, data: dict) -> "Stage1":
        return cls(data["acc_stage1_cached"], data["acc_stage1_key"], data["acc_stage1_s"])


@dataclass(frozen=True)
class ProxyAccuracy:
    scores: tuple  # GalleryScore per gallery, in GALLERIES order
    init: str  # "stage1", or "stage2 at <short_frames> frames" (short->long)
    steps: int
    warmup: int
    short_frames: Optional[int]  # set for a short->long cell, with short_steps
    short_steps: Optional[int]
    batch: int
    lr: float
    weight_decay: float
    grad_clip: float
    schedule: str
    hard_fraction: float
    train_s: float
    eval_s: float
    loss_final: float
    model: str  # the proxy's size, e.g. "proxy w64 d2 h4 patch8"
    task: str  # TaskConfig.summary()
    stage1: Stage1
    fresh_init: str  # parameters left at fresh init (pretrain.compact)
    short_cached: Optional[bool]  # set where a short stage-2 model applies: was it read from the cache
    # The stopping rule and the training compute (records written before rules existed read as "fixed").
    rule: str = "fixed"  # "plateau" (until validation stops improving, steps capped) or "fixed"
    steps_run: Optional[int] = None  # steps run at the first stage-2 frame count (>= the best point kept)
    stop: str = "fixed"  # why training stopped: "plateau", "cap" or "fixed"
    curve: tuple = ()  # (steps, validation mean R@1) at each validation of that stage
    step_flops: Optional[int] = None  # FLOPs of one training step of that stage (formula: step.model_step_flops)
    train_flops: Optional[int] = None  # FLOPs of every stage-2 step run for this model, continuation included
    resumed_from: Optional[int] = None  # that stage continued the state a smaller cap left at this step (train_s: the rest)

    def score(self, gallery: str) -> GalleryScore:
        return next(s for s in self.scores if s.gallery == gallery)

    def to_dict(self) -> dict:
        out: dict = {}
        for s in self.scores:
            out.update(s.to_dict())
        out.update(acc_init=self.init, acc_steps=self.steps, acc_warmup=self.warmup)
        if self.short_frames is not None:
            out.update(acc_short_frames=self.short_frames, acc_short_steps=self.short_steps)
        out.update(
            acc_batch=self.batch, acc_lr=self.lr, acc_weight_decay=self.weight_decay, acc_grad_clip=self.grad_clip,
            acc_schedule=self.schedule, acc_hard_fraction=self.hard_fraction, acc_train_s=self.train_s,
            acc_eval_s=self.eval_s, acc_loss_final=self.loss_final, acc_model=self.model, acc_task=self.task,
        )
        out.update(self.stage1.to_dict())
        out["acc_fresh_init"] = self.fresh_init
        if self.short_cached is not None:
            out["acc_short_cached"] = self.short_cached
        out.update(acc_rule=self.rule, acc_steps_run=self.steps_run, acc_stop=self.stop, acc_curve=format_curve(self.curve))
        if self.step_flops is not None:
            out.update(acc_step_flops=self.step_flops, acc_train_flops=self.train_flops)
        if self.resumed_from is not None:
            out["acc_resumed_from"] = self.resumed_from
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "ProxyAccuracy":
        d = data
        return cls(
            scores=tuple(GalleryScore.from_dict(g, d) for g in GALLERIES if f"acc_r1_{g}" in d),
            init=d["acc_init"], steps=d["acc_steps"], warmup=d["acc_warmup"],
            short_frames=d.get("acc_short_frames"), short_steps=d.get("acc_short_steps"),
            batch=d["acc_batch"], lr=d["acc_lr"], weight_decay=d["acc_weight_decay"], grad_clip=d["acc_grad_clip"],
            schedule=d["acc_schedule"], hard_fraction=d["acc_hard_fraction"], train_s=d["acc_train_s"],
            eval_s=d["acc_eval_s"], loss_final=d["acc_loss_final"], model=d["acc_model"], task=d["acc_task"],
            stage1=Stage1.from_dict(d), fresh_init=d["acc_fresh_init"], short_cached=d.get("acc_short_cached"),
            rule=d.get("acc_rule", "fixed"), steps_run=d.get("acc_steps_run"), stop=d.get("acc_stop", "fixed"),
            curve=parse_curve(d.get("acc_curve") or ""), step_flops=d.get("acc_step_flops"), train_flops=d.get("acc_train_flops"),
            resumed_from=d.get("acc_resumed_from"),
        )


def format_curve(curve) -> str:
    """(steps, score) pairs as one flat field, "50:0.612 100:0.83", so summary.csv stays one value per cell."""
    return " ".join(f"{int(n)}:{score:g}" for n, score in curve)


def parse_curve(text: str) -> tuple:
    return tuple((int(n), float(v)) for n, v in (part.split(":") for part in text.split()))


@dataclass(frozen=True)
class AccuracyOutcome:
    """Accuracy next to a measured cell: the result, or the reason or error why there is none."""

    accuracy: Optional[ProxyAccuracy] = None
    reason: str = ""  # acc_reason: the methods cannot train on the proxy (their own reasons)
    error: str = ""  # acc_error: the tail of the traceback of a failed training

    def to_dict(self) -> dict:
        if self.accuracy is not None:
            return self.accuracy.to_dict()
        return {"acc_reason": self.reason} if self.reason else {"acc_error": self.error}

    @classmethod
    def from_dict(cls, data: dict) -> "AccuracyOutcome":
        if "acc_reason" in data or "acc_error" in data:
            return cls(reason=data.get("acc_reason", ""), error=data.get("acc_error", ""))
        return cls(ProxyAccuracy.from_dict(data))
