"""The proxy's training loop, shared by stage 1 (images) and stage 2 (clips), its learning-rate schedules
(linear warm-up, then cosine to zero or constant) and its stopping rules: a fixed number of steps, or until
validation stops improving (`fit_until_plateau`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from vfbench.step import autocast

SCHEDULES = ("cosine", "constant")


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the base learning rate at `step` (0-based) of `total` steps."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; accepted: {', '.join(SCHEDULES)}")
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(total - warmup, 1)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def fit(model, batch_at: Callable[[int], tuple[torch.Tensor, torch.Tensor]], steps: int, lr: float,
        weight_decay: float, warmup: int, schedule: str, grad_clip: float = 0.0,
        device: torch.device | None = None, dtype: torch.dtype | None = None) -> float:
    """Contrastive training of `model` on `batch_at(step)` -> (video, ids) with AdamW and `lr_factor`, the
    trainable parameters' global grad norm clipped at `grad_clip` (0 = off), autocast to `dtype` if given.
    Returns the mean loss of the last 20 steps."""
    return _train(model, batch_at, steps, lr, weight_decay, warmup, schedule, grad_clip, device, dtype).loss_final


@dataclass(frozen=True)
class Plateau:
    """The stopping rule: validate every `every` steps; stop once `patience` validations in a row fail to beat
    the best by more than `min_delta`, or at the cap; keep the best model seen. Until the best validation is
    above `floor` (chance plus a margin) no validation counts toward patience: a run that has not started
    learning is not on a plateau, and a slow starter trains to the cap instead of being stopped at chance."""

    validate: Callable[[], float]  # higher is better (validation R@1)
    every: int
    patience: int
    min_delta: float
    floor: float = -math.inf


def judge(best: float, worse: int, score: float, rule: Plateau) -> tuple[bool, float, int, bool]:
    """One validation under `rule`: (whether it is the new best, best, validations in a row without a gain
    that count toward patience, whether the rule stops the run)."""
    if score > best + rule.min_delta:
        return True, score, 0, False
    worse += best > rule.floor
    return False, best, worse, worse >= rule.patience


def plateau_stop(curve, rule: Plateau) -> int | None:
    """The step at which `rule` stops a run whose validations gave `curve` ((step, score), ...); None when it
    would run to its cap. Replays the rule exactly as a run applies it (`judge`), so a stored curve tells whether
    a run made under another rule is the run this one makes."""
    best, worse = -math.inf, 0
    for step, score in curve:
        _, best, worse, stop = judge(best, worse, score, rule)
        if stop:
            return step
    return None


@dataclass(frozen=True)
class Trace:
    """How a training run went. `steps` trained the returned model (the best validation point under a
    plateau rule; all of them otherwise), `steps_run` were run; `curve` holds (steps, validation score) at each
    validation; `stop` is "fixed" (no rule), "plateau" or "cap"."""

    steps: int
    steps_run: int
    stop: str
    curve: tuple = ()
    loss_final: float = float("nan")
    resumed_from: int | None = None  # the run continued the state a smaller cap left at this step (steps before it not rerun)


def fit_until_plateau(model, batch_at: Callable[[int], tuple[torch.Tensor, torch.Tensor]], cap: int, lr: float,
                      weight_decay: float, warmup: int, grad_clip: float, plateau: Plateau,
                      device: torch.device | None = None, dtype: torch.dtype | None = None,
                      resume: dict | None = None, at_cap: Callable[[dict], None] | None = None) -> Trace:
    """Train as `fit` does, at a constant learning rate after warm-up, until validation stops improving
    (`plateau`) or `cap` steps; the model ends at its best validation point. The learning rate never depends
    on the cap, so a run that stops on its plateau before a cap is the same run under any larger cap, and a
    run that reached a smaller cap continues exactly: `at_cap` receives the whole state of a run that reached
    its cap (model, optimizer, schedule, the rule's best and patience, curve; before the best model is
    restored), and `resume` (such a state) starts from it instead of from step 0."""
    return _train(model, batch_at, cap, lr, weight_decay, warmup, "constant", grad_clip, device, dtype, plateau,
                  resume, at_cap)


def _train(model, batch_at, steps, lr, weight_decay, warmup, schedule, grad_clip, device, dtype,
           plateau: Plateau | None = None, resume: dict | None = None,
           at_cap: Callable[[dict], None] | None = None) -> Trace:
    device = device or torch.device("cpu")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps, warmup, schedule))
    tail: list[float] = []
    curve: list[tuple[int, float]] = []
    best, best_step, best_state, worse = -math.inf, 0, None, 0
    stop, done = ("fixed" if plateau is None else "cap"), 0
    if resume is not None:
        if resume["step"] >= steps:
            raise ValueError(f"cannot resume a run at step {resume['step']} under a cap of {steps}")
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        done, tail, curve = resume["step"], list(resume["tail"]), [tuple(c) for c in resume["curve"]]
        best, best_step, best_state, worse = resume["best"], resume["best_step"], resume["best_state"], resume["worse"]
    for step in range(done, steps):
        video, ids = batch_at(step)
        with autocast(device.type, dtype):
            loss = model(video.to(device), ids.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        sched.step()
        tail = (tail + [loss.item()])[-20:]
        done = step + 1
        if plateau is None or (done % plateau.every and done != steps):
            continue
        score = plateau.validate()
        curve.append((done, round(score, 4)))
        improved, best, worse, stopped = judge(best, worse, score, plateau)
        if improved or best_state is None:
            best_step, best_state = done, _copy(model.state_dict())
        if stopped:
            stop = "plateau"
            break
    if at_cap is not None and stop == "cap":
        at_cap({"step": done, "model": _copy(model.state_dict()), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "tail": tail, "curve": [list(c) for c in curve], "best": best,
                "best_step": best_step, "best_state": best_state, "worse": worse})
    if best_state is not None and best_step != done:
        model.load_state_dict(best_state)
    return Trace(best_step if plateau is not None else done, done, stop, tuple(curve), sum(tail) / max(len(tail), 1))


def _copy(state: dict) -> dict:
    return {k: v.detach().clone() for k, v in state.items()}
