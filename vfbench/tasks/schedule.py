"""The proxy's training loop, shared by stage 1 (images) and stage 2 (clips), and its learning-rate
schedules: linear warm-up, then cosine to zero or constant."""

from __future__ import annotations

import math
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
    device = device or torch.device("cpu")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps, warmup, schedule))
    tail = []
    for step in range(steps):
        video, ids = batch_at(step)
        with autocast(device.type, dtype):
            loss = model(video.to(device), ids.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        sched.step()
        if step >= steps - 20:
            tail.append(loss.item())
    return sum(tail) / max(len(tail), 1)
