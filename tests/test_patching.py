"""Patching methods (arXiv:2312.07395's multi-resolution patches and TubeViT): token counts equal their closed forms."""

import math

import pytest
import torch

from vfbench.errors import UserError
from vfbench.methods.patching import coarse_patch_size
from vfbench.models import build_video_encoder, get_preset
from vfbench.models.tubevit import TUBEVIT_TUBES, TubeViTEmbed
from vfbench.registry import compose, get_method

FRAMES = (4, 8, 16, 32)


def _encoder(method: str, preset: str = "tiny"):
    return build_video_encoder(compose(method).configure(get_preset(preset))).eval()


def _tokens_seen(encoder, frames: int) -> int:
    with torch.no_grad():
        encoder(torch.randn(1, 3, frames, encoder.spec.image_size, encoder.spec.image_size))
    return encoder.last_tokens


@pytest.mark.parametrize("frames", FRAMES)
@pytest.mark.parametrize(
    "method, tubelet, patch",
    [("joint", 2, 8), ("coarse_temporal", 4, 8), ("coarse_spatial", 2, 16), ("coarse_both", 4, 16), ("frame_avg", 1, 8)],
)
def test_tubelet_token_counts(method, tubelet, patch, frames):
    """S = (T / t_p) · (H / p)² on tiny (32 px, 8-px patches)."""
    enc = _encoder(method)
    expected = (frames // tubelet) * (32 // patch) ** 2
    assert enc.patch.num_tokens(frames) == expected == _tokens_seen(enc, frames)


@pytest.mark.parametrize("preset, coarse", [("tiny", 16), ("small", 32), ("vit-b", 32), ("vit-l", 32), ("vit-g", 28)])
def test_coarse_spatial_doubles_each_presets_patch(preset, coarse):
    spec = compose("coarse_spatial").configure(get_preset(preset))
    assert spec.patch_size == coarse == coarse_patch_size(get_preset(preset).patch_size)
    assert spec.tokens_per_frame == (spec.image_size // coarse) ** 2


def _tube_formula(frames, size, patch, tubes):
    """Independent restatement: scale spatial sizes by patch/16, clamp to the input, prod ceil((X-o-k+1)/s)."""
    total = 0
    for k, s, o in tubes:
        count = 1
        for d, x in enumerate((frames, size, size)):
            kd, sd, od = (k[d], s[d], o[d]) if d == 0 else (
                max(1, round(k[d] * patch / 16)), max(1, round(s[d] * patch / 16)), round(o[d] * patch / 16))
            od = od if x - od >= 1 else 0
            kd = min(kd, x - od)
            count *= math.ceil((x - od - kd + 1) / sd)
        total += count
    return total


def test_tubevit_default_set_at_its_reference_size():
    """32 x 224 x 224 at 16-px patches: 98 + 147 + 98 + 196 = 539 tokens by the per-tube formula."""
    embed = TubeViTEmbed(3, 6, 224, 16)
    assert [math.prod(s) for s in embed.tube_shapes(32)] == [98, 147, 98, 196]
    with torch.no_grad():
        tokens, grid = embed(torch.randn(1, 3, 32, 224, 224))
    assert tokens.shape == (1, 539, 6) and grid is None


@pytest.mark.parametrize("frames", FRAMES + (3, 64))
@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_tubevit_token_count_matches_formula(preset, frames):
    enc = _encoder("tubevit", preset)
    spec = enc.spec
    expected = _tube_formula(frames, spec.image_size, spec.patch_size, TUBEVIT_TUBES)
    assert enc.patch.num_tokens(frames) == expected == _tokens_seen(enc, frames)


def test_tubevit_custom_tubes_and_fixed_positions():
    enc = _encoder("tubevit(tubes=k2x8x8s2x8x8o0x0x0_k1x16x16s4x16x16o1x0x0)")
    # Custom spatial sizes are written at 16-px patches too, so tiny (8-px patches) halves them:
    # tube 1 -> kernel = stride 2x4x4: 4 · 8 · 8; tube 2 -> 1x8x8 / (4, 8, 8) / (1, 0, 0): ceil(7/4) · 4 · 4.
    assert enc.patch.num_tokens(8) == 4 * 8 * 8 + 2 * 4 * 4 == _tokens_seen(enc, 8)
    # Only the convolutions have parameters: the 3D sin-cos position embeddings are fixed.
    assert {n.split(".")[0] for n, _ in enc.patch.named_parameters()} == {"convs"}
    pos = enc.patch.positions((2, 4, 4), (2, 4, 4), (0, 0, 0), (2, 2, 2), "cpu")
    assert pos.shape == (8, 32) and torch.equal(pos, enc.patch.positions((2, 4, 4), (2, 4, 4), (0, 0, 0), (2, 2, 2), "cpu"))
    assert len({tuple(r.tolist()) for r in pos}) == 8  # every voxel centre distinct


@pytest.mark.parametrize("tubes", ["nope", "k1x1x1s0x1x1o0x0x0", "k1x1x1s1x1x1"])
def test_tubevit_rejects_bad_tube_strings(tubes):
    with pytest.raises(UserError, match="k<T>x<H>x<W>"):
        get_method(f"tubevit(tubes={tubes})")
