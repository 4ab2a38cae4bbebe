"""Stage 1 of the proxy: image-text contrastive pre-training of the spatial backbone, cached on disk,
and the transfer of its weights into any method's video model.

The paper starts every video model from an image-text model (arXiv:2312.07395 §3 "Init"), and the adapter,
LoRA and frozen-layer methods need a backbone that already knows something. Stage 1 trains the
frame-level form of the proxy model (2D patches, tubelet 1) on single frames that each hold one
event, captioned with that event's three tokens. It does not depend on the frame count or the method,
so one checkpoint per (proxy model, task, stage-1 budget, seed) serves every cell.

Transfer (`init_from_image`): tensors with the same name and shape are copied. The 2D patch kernel is
inflated along time by repetition divided by t (scenic `average_frame_initializer`; arXiv:2312.07395 §3 "3D
conv init"), and for coarser patches it is tiled over the sub-patches and divided by their count, so a
coarse token starts as the mean of the fine tokens it covers; the spatial position table is area-
resampled to the new grid. The temporal table, TubeViT's tubes, attention pools and ViViT model 2's
temporal layers have no image counterpart and keep their fresh init (listed in the record).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from vfbench.models import build_model
from vfbench.registry import compose
from vfbench.spec import ModelSpec
from vfbench.tasks.result import Stage1
from vfbench.tasks.schedule import fit
from vfbench.tasks.synthetic import TaskConfig, image_batch, seeded, sprite_bank

CACHE_ENV = "VFBENCH_CACHE"
STAGE1_FORMAT = 2  # bump when stage 1 changes meaning, so old checkpoints are not reused (2: noise drawn in clip layout)


def default_cache_dir() -> Path:
    """$VFBENCH_CACHE if set, else ~/.cache/vfbench/proxy."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vfbench" / "proxy"


def image_spec(spec: ModelSpec) -> ModelSpec:
    """The image model of a proxy spec: the frame-level encoder (2D patches, no temporal table)."""
    return compose("frame_avg").configure(spec)


def stage1_key(spec: ModelSpec, task: TaskConfig, steps: int, batch: int, lr: float, seed: int) -> str:
    ident = {"format": STAGE1_FORMAT, "model": image_spec(spec).to_dict(), "task": task.to_dict(),
             "steps": steps, "batch": batch, "lr": lr, "seed": seed}
    return hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def train_image_model(spec: ModelSpec, task: TaskConfig, steps: int, batch: int, lr: float, seed: int) -> dict:
    """Contrastive image-text training on single frames; returns the state dict."""
    torch.manual_seed(seed)
    model = build_model(image_spec(spec)).train()
    bank = sprite_bank(task)
    batch_at = lambda step: image_batch(task, batch, seeded(seed, 7, step), bank)  # noqa: E731  (n, 3, 1, R, R), (n, 3)
    fit(model, batch_at, steps, lr, weight_decay=0.05, warmup=max(steps // 10, 1), schedule="cosine")
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def load_or_train_stage1(spec: ModelSpec, task: TaskConfig, steps: int, batch: int, lr: float, seed: int,
                         cache_dir: Path) -> tuple[dict, Stage1]:
    """The stage-1 state dict from the cache, or trained and cached, and where it came from (Stage1).
    Written atomically, so concurrent cells never read half a file."""
    key = stage1_key(spec, task, steps, batch, lr, seed)
    path = Path(cache_dir) / f"stage1-{key}.pt"
    if path.exists():
        state = torch.load(path, map_location="cpu", weights_only=True)
        return state, Stage1(cached=True, key=key, seconds=0.0)
    start = time.perf_counter()
    state = train_image_model(spec, task, steps, batch, lr, seed)
    seconds = round(time.perf_counter() - start, 2)
    save_atomic(state, path)
    meta = {"key": key, "model": image_spec(spec).to_dict(), "task": task.to_dict(), "steps": steps,
            "batch": batch, "lr": lr, "seed": seed, "train_s": seconds}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return state, Stage1(cached=False, key=key, seconds=seconds)


def save_atomic(state: dict, path: Path) -> None:
    """torch.save through a temporary file and a rename, so concurrent cells never read half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def inflate_patch_kernel(w: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """(D, C, 1, p, p) image kernel -> (D, C, t, P, P): repeat over t and over (P/p)² sub-patches, divide
    by the count, so the video token starts as the mean of the image tokens it covers. A P that is not a
    multiple of p is resized bilinearly and rescaled by (p/P)² (the same mean-preserving intent)."""
    D, C, t, P, _ = shape
    p = w.shape[-1]
    if P % p == 0:
        w = w.repeat(1, 1, 1, P // p, P // p) / (P // p) ** 2
    else:
        w = F.interpolate(w[:, :, 0], size=(P, P), mode="bilinear", align_corners=False)[:, :, None] * (p / P) ** 2
    return w.repeat(1, 1, t, 1, 1) / t


def resample_grid(table: torch.Tensor, n: int) -> torch.Tensor:
    """(N0, D) spatial position table on a sqrt(N0) grid -> (n, D) on a sqrt(n) grid (area resampling)."""
    g0, g = math.isqrt(table.shape[0]), math.isqrt(n)
    grid = table.T.reshape(1, -1, g0, g0)
    mode = "area" if g <= g0 else "bilinear"
    out = F.interpolate(grid, size=(g, g), mode=mode, **({} if mode == "area" else {"align_corners": False}))
    return out.reshape(-1, n).T


@torch.no_grad()
def init_from_image(model, state: dict) -> list[str]:
    """Load the stage-1 image weights into a freshly built video model (before methods wrap it).
    Returns the names left at their fresh init."""
    missing = []
    own = model.state_dict()
    for name, tensor in own.items():
        src = state.get(name)
        if src is not None and src.shape == tensor.shape:
            tensor.copy_(src)
        elif src is not None and name.endswith("patch.proj.weight"):
            tensor.copy_(inflate_patch_kernel(src, tensor.shape))
        elif src is not None and name.endswith("patch.pos_space"):
            tensor.copy_(resample_grid(src, tensor.shape[0]))
        elif name.startswith("video.spatial_norm.") and name.replace("spatial_norm", "norm") in state:
            tensor.copy_(state[name.replace("spatial_norm", "norm")])  # ViViT model 2 pools each slice like the image model
        else:
            missing.append(name)
    for blk in getattr(model.video, "blocks", []):
        if hasattr(blk, "copy_spatial_to_temporal"):
            blk.copy_spatial_to_temporal()  # FST: temporal MSA starts as a copy of the spatial one (arXiv:2312.07395 §4)
            missing = [m for m in missing if ".attn_t." not in m and ".norm_t." not in m]
    return missing


def compact(names: list[str]) -> str:
    """Names left at fresh init, collapsed to their module ('video.blocks.3', 'video.pool') except for
    single tensors that sit next to transferred ones ('video.patch.pos_time', FST's '...alpha')."""
    out: list[str] = []
    for name in names:
        parts = name.split(".")
        if name.endswith("alpha") or ".".join(parts[:-1]) in ("video", "video.patch"):
            keep = name
        else:
            keep = ".".join(parts[:3] if parts[1] in ("blocks", "patch") else parts[:2])
        if keep not in out:
            out.append(keep)
    return ",".join(out)
