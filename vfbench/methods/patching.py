"""The patching axis: how a clip becomes tokens (arXiv:2312.07395 §4, "multi-resolution patchification").

The default tubelet is 2 x 16 x 16 (arXiv:2312.07395 §3). Coarse variants double the tubelet along time and/or
space; TubeViT replaces the tubelet with several sparse tubes.
"""

from __future__ import annotations

import dataclasses

from vfbench.errors import UserError
from vfbench.models.tubevit import TUBES_HELP, parse_tubes
from vfbench.registry import Method, register_method
from vfbench.spec import CellSpec, ModelSpec

COARSE_TUBELET = 4  # frames per tubelet in the paper's coarse temporal variant (arXiv:2312.07395 §4)
FRAMES_PER_TABLE = 16  # the temporal position table covers the paper's 16-frame clips (arXiv:2312.07395 §3)


def coarse_patch_size(patch: int) -> int:
    """The paper's 32 px is 2x its 16 px default; every preset gets 2x its own patch size (vit-b/l 16 -> 32,
    vit-g 14 -> 28, small 16 -> 32, tiny 8 -> 16), so N drops to 1/4 at any resolution."""
    return 2 * patch


def _coarse_temporal(spec: ModelSpec) -> ModelSpec:
    # Keep the temporal table spanning 16 frames: 16 / 4 = 4 slices.
    return dataclasses.replace(spec, tubelet=COARSE_TUBELET, temporal_pos_len=FRAMES_PER_TABLE // COARSE_TUBELET)


def _coarse_spatial(spec: ModelSpec) -> ModelSpec:
    return dataclasses.replace(spec, patch_size=coarse_patch_size(spec.patch_size))


def _fits(spec: ModelSpec) -> list[str]:
    if spec.image_size < spec.patch_size:
        return [f"image size {spec.image_size} px is smaller than the coarse patch {spec.patch_size} px"]
    return []


@register_method
class CoarseTemporal(Method):
    """Coarse temporal tubelets 4 x 16 x 16 instead of 2 x 16 x 16: S halves (arXiv:2312.07395 §4)."""

    name = "coarse_temporal"
    axis = "patching"
    summary = "tubelets of 4 frames instead of 2 (half the tokens)"
    reference = "arXiv:2312.07395 §4"

    def configure(self, spec: ModelSpec) -> ModelSpec:
        return _coarse_temporal(spec)


@register_method
class CoarseSpatial(Method):
    """Coarse spatial tubelets 2 x 32 x 32 instead of 2 x 16 x 16: S drops to 1/4 (arXiv:2312.07395 §4).
    Presets with other patch sizes use 2x their own patch (tiny 8 -> 16, vit-g 14 -> 28)."""

    name = "coarse_spatial"
    axis = "patching"
    summary = "2x larger spatial patches (32 px at the default 16; a quarter of the tokens)"
    reference = "arXiv:2312.07395 §4"

    def configure(self, spec: ModelSpec) -> ModelSpec:
        return _coarse_spatial(spec)

    def not_supported_reasons(self, cell: CellSpec, spec: ModelSpec) -> list[str]:
        return _fits(spec)


@register_method
class CoarseBoth(Method):
    """Both coarse variants: tubelets 4 x 32 x 32 (2x each preset's patch), S drops to 1/8 (arXiv:2312.07395 §4)."""

    name = "coarse_both"
    axis = "patching"
    summary = "4-frame tubelets with 2x larger patches (an eighth of the tokens)"
    reference = "arXiv:2312.07395 §4"

    def configure(self, spec: ModelSpec) -> ModelSpec:
        return _coarse_spatial(_coarse_temporal(spec))

    def not_supported_reasons(self, cell: CellSpec, spec: ModelSpec) -> list[str]:
        return _fits(spec)


@register_method
class TubeViT(Method):
    """Sparse multi-tube tokenizer (arXiv:2312.07395 §4; Piergiovanni et al. 2023, TubeViT, arXiv 2212.03229;
    tube set from daniel-code/TubeViT MODEL.md): 4 sparse 3D convolutions (kernel T×H×W / stride / offset)
    8×8×8/(16,32,32)/0, 16×4×4/(6,32,32)/(4,8,8), 4×12×12/(16,32,32)/(0,16,16), 1×16×16/(32,16,16)/0,
    tokens concatenated, fixed 3D sin-cos positions at voxel centres.

    Scaling [R]: spatial sizes are for 16-px patches and scale by patch/16 (tiny: halved); kernels larger
    than the input are clamped to it (time: the conv weight is cropped to its central frames). Custom sets:
    `tubes` takes the identifier form in vfbench.models.tubevit.TUBES_HELP."""

    name = "tubevit"
    axis = "patching"
    summary = "several sparse 3D tube convolutions with fixed sin-cos positions (TubeViT)"
    reference = "arXiv:2312.07395 §4; Piergiovanni et al. 2023, TubeViT; daniel-code/TubeViT"
    params = {"tubes": "tubevit"}

    def check(self) -> None:
        try:
            parse_tubes(self.p["tubes"])
        except ValueError as exc:
            raise UserError(f"tubevit: {exc}") from None
        if not self.p["tubes"].isidentifier():
            raise UserError(f"tubevit: tubes={self.p['tubes']!r} must be one word; {TUBES_HELP}")

    def configure(self, spec: ModelSpec) -> ModelSpec:
        return dataclasses.replace(spec, patching="tubevit").with_options(tubes=self.p["tubes"])
