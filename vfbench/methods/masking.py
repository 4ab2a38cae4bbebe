"""The tokens axis: drop input tokens after the patch and position embeddings, at train time only.

No mask tokens and no reconstruction loss: the encoder simply sees fewer tokens (arXiv:2312.07395 §4, FLIP).
The functions are pure, x, ratio, generator -> kept, ids (MAE's `random_masking`); the methods install
them as the encoder's token hooks, which run only in training (eval sees every token, as in FLIP).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vfbench.errors import UserError
from vfbench.models.tower import TokenLayout
from vfbench.registry import Method, register_method
from vfbench.spec import CellSpec, ModelSpec


def keep_count(total: int, ratio: float) -> int:
    """floor(total·(1−r)), at least 1 so pooling never sees an empty set. The epsilon absorbs float error
    in 1−r (e.g. 0.7·10 = 7.000000000000001 is fine, but 0.3 stored as 0.29999… must not lose a token)."""
    return max(1, math.floor(total * (1.0 - ratio) + 1e-9))


def uniform(generator: torch.Generator | None, x: torch.Tensor, *shape: int) -> torch.Tensor:
    """Uniform noise of `shape` on x's device, drawn from `generator` (on its own device, so a CPU
    generator seeds a CUDA run the same way) or, when None, from the global stream."""
    if generator is None:
        return torch.rand(*shape, device=x.device)
    return torch.rand(*shape, generator=generator, device=generator.device).to(x.device)


def random_masking(x: torch.Tensor, ratio: float, generator: torch.Generator | None = None):
    """Per-sample unstructured masking (facebookresearch/flip models_flip.py `random_mask`, MAE).

    x (B, S, D) -> kept (B, S_keep, D), ids (B, S_keep) with S_keep = floor(S(1−r)): uniform noise
    [B, S], argsort, keep the first S_keep indices.
    """
    B, S, D = x.shape
    noise = uniform(generator, x, B, S)  # (B, S)
    ids = noise.argsort(dim=1)[:, : keep_count(S, ratio)]  # (B, S_keep)
    return x.gather(1, ids[..., None].expand(-1, -1, D)), ids


def slice_masking(x: torch.Tensor, grid: tuple, ratio: float, generator: torch.Generator | None = None):
    """Random masking with an equal count per time slice, for encoders that need a (T', N) grid.

    x (B, T'·N, D) -> kept (B, T'·N_keep, D), ids (B, T', N_keep) with N_keep = floor(N(1−r)); each slice
    draws its own positions, kept in raster order so the j-th survivors of the slices are near each other.
    """
    B, _, D = x.shape
    T, N = grid
    noise = uniform(generator, x, B, T, N)  # (B, T', N)
    ids = noise.argsort(dim=2)[..., : keep_count(N, ratio)].sort(dim=2).values  # (B, T', N_keep)
    kept = x.reshape(B, T, N, D).gather(2, ids[..., None].expand(-1, -1, -1, D))  # (B, T', N_keep, D)
    return kept.reshape(B, -1, D), ids


def tube_masking(x: torch.Tensor, grid: tuple, ratio: float, generator: torch.Generator | None = None):
    """One spatial mask per clip repeated over all time slices (MCG-NJU/VideoMAE masking_generator.py
    `TubeMaskingGenerator`). x (B, T'·N, D) -> kept (B, T'·N_keep, D), ids (B, N_keep); grid becomes (T', N_keep)."""
    B, _, D = x.shape
    T, N = grid
    noise = uniform(generator, x, B, N)  # (B, N)
    ids = noise.argsort(dim=1)[:, : keep_count(N, ratio)].sort(dim=1).values  # (B, N_keep)
    index = ids[:, None, :, None].expand(-1, T, -1, D)  # (B, T', N_keep, D)
    kept = x.reshape(B, T, N, D).gather(2, index)
    return kept.reshape(B, -1, D), ids


@dataclass(frozen=True)
class RandomMaskHook:
    """The encoder's token hook for `mask`: unstructured per clip, or an equal count per slice when the
    encoder needs its (T', N) grid (`per_slice`)."""

    ratio: float
    per_slice: bool

    def __call__(self, x: torch.Tensor, grid: tuple | None, generator: torch.Generator | None = None):
        if self.per_slice:
            return slice_masking(x, grid, self.ratio, generator)[0], (grid[0], keep_count(grid[1], self.ratio))
        return random_masking(x, self.ratio, generator)[0], None  # an unstructured set: no grid any more

    def layout(self, layout: TokenLayout) -> TokenLayout:
        if self.per_slice:
            t, n = layout.grid
            return TokenLayout(t * keep_count(n, self.ratio), (t, keep_count(n, self.ratio)))
        return TokenLayout(keep_count(layout.tokens, self.ratio), None)


@dataclass(frozen=True)
class TubeMaskHook:
    """The encoder's token hook for `tube_mask`: the grid survives as (T', floor(N(1-r)))."""

    ratio: float

    def __call__(self, x: torch.Tensor, grid: tuple | None, generator: torch.Generator | None = None):
        return tube_masking(x, grid, self.ratio, generator)[0], (grid[0], keep_count(grid[1], self.ratio))

    def layout(self, layout: TokenLayout) -> TokenLayout:
        t, n = layout.grid
        return TokenLayout(t * keep_count(n, self.ratio), (t, keep_count(n, self.ratio)))


class _Masking(Method):
    axis = "tokens"
    params = {"ratio": 0.5}

    def check(self) -> None:
        r = self.p["ratio"]
        if not 0.0 <= r < 1.0:
            raise UserError(f"{self.name}: ratio={r} is outside [0, 1); the ratio is the dropped share, e.g. {self.name}(ratio=0.75)")


@register_method
class RandomMask(_Masking):
    """Random per-sample token masking at train time (arXiv:2312.07395 §4; FLIP, Li et al. 2023,
    facebookresearch/flip `random_mask`; MAE `random_masking`). Keeps floor(S(1−r)) tokens per clip.
    Encoders that need a (T', N) grid (factorised, frame-level) get the per-slice form instead:
    floor(N(1−r)) tokens in every slice (`slice_masking`), each slice drawing its own positions, so the
    temporal attention of factorised self-attention (ViViT model 3) mixes tokens of different positions.

    `aligned=1`, for those grid encoders only: every slice keeps the same positions (`tube_masking`), so an
    encoder that attends over time per position still sees one position's tokens across time. Joint attention
    is unchanged by it (its tokens are one unstructured set). It tests whether factorised attention degrades
    under masking because of masking itself or because per-slice masks break its per-position temporal
    attention (the paper masks FST without saying which, arXiv:2312.07395 §4)."""

    name = "mask"
    summary = "drop a random share of tokens per clip at train time (FLIP); aligned=1: same positions per slice on grid encoders"
    reference = "arXiv:2312.07395 §4; Li et al. 2023, FLIP, facebookresearch/flip models_flip.py random_mask"
    params = {"ratio": 0.5, "aligned": 0}
    quiet = ("aligned",)

    def check(self) -> None:
        super().check()
        if self.p["aligned"] not in (0, 1):
            raise UserError(f"mask: aligned={self.p['aligned']} is not accepted; accepted: 0 (each slice draws its own positions) "
                            "or 1 (the same positions in every slice, for factorised encoders)")

    def apply(self, model) -> None:
        if self.p["ratio"] <= 0:
            return
        if self.p["aligned"] and model.video.needs_grid:
            model.video.add_token_hook(TubeMaskHook(self.p["ratio"]))
        else:
            model.video.add_token_hook(RandomMaskHook(self.p["ratio"], model.video.needs_grid))


@register_method
class TubeMask(_Masking):
    """Tube masking: one random spatial mask per clip repeated over every time slice (VideoMAE, Tong et
    al. 2022, MCG-NJU/VideoMAE masking_generator.py). Not tested in the paper (arXiv:2312.07395 §4, alternative
    for ablation). Keeps the grid (T', floor(N(1−r))), so factorised encoders run it exactly."""

    name = "tube_mask"
    summary = "drop the same random spatial positions in every time slice (VideoMAE tube masking)"
    reference = "arXiv:2312.07395 §4; Tong et al. 2022, VideoMAE, MCG-NJU/VideoMAE masking_generator.py"

    def apply(self, model) -> None:
        if self.p["ratio"] > 0:
            model.video.add_token_hook(TubeMaskHook(self.p["ratio"]))

    def not_supported_reasons(self, cell: CellSpec, spec: ModelSpec) -> list[str]:
        if spec.patching != "tubelet":
            return [f"tube masking needs a (T', N) token grid; {spec.patching} patching yields an unstructured set"]
        return []
