"""Text->video R@1 on the galleries, with every token (model.eval(): masking hooks are train-only).

Ties are scored fairly: a query whose clip ties with k-1 others for the top score counts 1/k, so a
model that cannot tell a group apart (a bag-of-frames model on the temporal gallery) scores chance
exactly, not 0 or 1 depending on the tie-break.
"""

from __future__ import annotations

from typing import Callable

import torch

from vfbench.step import autocast
from vfbench.tasks.galleries import KINDS, GallerySizes, gallery_chunks, middle_frame, shuffle_frames
from vfbench.tasks.result import GalleryScore
from vfbench.tasks.synthetic import TaskConfig, seeded

EVAL_BATCH = 192  # clips per forward pass


def recall_at_1(sim: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """sim (Q, G) query-by-candidate scores, target (Q,) -> (Q,) per-query R@1 in [0, 1] (ties share)."""
    best = sim.max(dim=1).values  # (Q,)
    hit = sim.gather(1, target[:, None])[:, 0] == best
    ties = (sim == best[:, None]).sum(dim=1)
    return hit.float() / ties.float()


def group_recall(text: torch.Tensor, video: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """text (n, Q, E), video (n, G, E), target (n, Q) -> per-query R@1 (n·Q,) within each group."""
    sim = torch.einsum("nqe,nge->nqg", text, video)  # (n, Q, G)
    return recall_at_1(sim.reshape(-1, sim.shape[-1]), target.reshape(-1))


@torch.no_grad()
def embed_videos(model, video: torch.Tensor, device: torch.device, autocast_dtype=None) -> torch.Tensor:
    out = []
    for i in range(0, video.shape[0], EVAL_BATCH):
        clip = video[i : i + EVAL_BATCH].to(device)
        with autocast(device.type, autocast_dtype):
            out.append(model.embed_video(clip).float().cpu())
    return torch.cat(out)


def chunk_recall(model, chunk, video: torch.Tensor, device: torch.device, autocast_dtype=None) -> torch.Tensor:
    """Per-query R@1 of one gallery chunk with `video` standing for its clips (the chunk's own or a control)."""
    n, G = chunk.ids.shape[0], chunk.group_size
    text = model.embed_text(chunk.ids.reshape(-1, chunk.ids.shape[-1]).to(device)).float().cpu()
    text = text.reshape(n, chunk.ids.shape[1], -1)
    emb = embed_videos(model, video, device, autocast_dtype).reshape(n, G, -1)
    return group_recall(text, emb, chunk.target)


@torch.no_grad()
def evaluate(model, cfg: TaskConfig, frames: int, sizes: GallerySizes, seed: int, device: torch.device,
             autocast_dtype=None) -> tuple[GalleryScore, ...]:
    """R@1 on the random, temporal and spatial galleries, plus the shuffled-frames and middle-frame
    controls on the temporal gallery; the chance level of each, and its number of queries (at least
    `sizes.queries`: whole groups)."""
    was_training = model.training
    model.eval()
    scores: dict[str, list[torch.Tensor]] = {k: [] for k in ("random", "temporal", "spatial", "shuffled", "single_frame")}
    for kind in KINDS:
        for i, chunk in enumerate(gallery_chunks(cfg, kind, frames, sizes, seed)):
            views = {kind: chunk.video}
            if kind == "temporal":
                views["shuffled"] = shuffle_frames(chunk.video, seeded(seed, 99, i))
                views["single_frame"] = middle_frame(chunk.video)
            for name, video in views.items():
                scores[name].append(chunk_recall(model, chunk, video, device, autocast_dtype))
    model.train(was_training)
    out = []
    for name, parts in scores.items():
        per_query = torch.cat(parts)
        size = sizes.random if name == "random" else sizes.spatial if name == "spatial" else sizes.temporal
        out.append(GalleryScore(name, round(float(per_query.mean()), 4), per_query.numel(), 1.0 / size))
    return tuple(out)


def validator(model, cfg: TaskConfig, frames: int, sizes: GallerySizes, seed: int, device: torch.device,
              autocast_dtype=None) -> Callable[[], float]:
    """A function that scores `model` on validation galleries (rendered once, from their own seed, apart
    from the test galleries): mean R@1 over random, temporal and spatial, the quantity the findings compare."""
    chunks = {kind: list(gallery_chunks(cfg, kind, frames, sizes, seed)) for kind in KINDS}

    @torch.no_grad()
    def score() -> float:
        was_training = model.training
        model.eval()
        means = [float(torch.cat([chunk_recall(model, c, c.video, device, autocast_dtype) for c in parts]).mean())
                 for parts in chunks.values()]
        model.train(was_training)
        return sum(means) / len(means)

    return score
