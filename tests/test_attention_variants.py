"""Factorised and frame-level encoders (arXiv:2312.07395's factorized ST-ViViT and frame-level baselines):
what mixes with what, init identities, param overheads."""

import pytest
import torch

from vfbench.models import build_video_encoder, get_preset, param_counts_without_memory
from vfbench.models.factorized import FactorizedSelfAttentionBlock, fst_extra_params
from vfbench.models.frame import SliceBlock
from vfbench.registry import compose

B, T, N, D = 2, 4, 16, 32


def _spec(method: str):
    return compose(method).configure(get_preset("tiny"))


@pytest.fixture
def fst_block():
    torch.manual_seed(0)
    return FactorizedSelfAttentionBlock(D, 2, 4 * D)


def test_spatial_sub_block_never_mixes_time_slices(fst_block):
    x = torch.randn(B, T, N, D)  # (B, T', N, D)
    y = x.clone()
    y[:, 2] += torch.randn(B, N, D)  # perturb one slice
    with torch.no_grad():
        out_x, out_y = fst_block.spatial(x), fst_block.spatial(y)
    others = [0, 1, 3]
    assert torch.equal(out_x[:, others], out_y[:, others])
    assert not torch.allclose(out_x[:, 2], out_y[:, 2])


def test_temporal_sub_block_mixes_slices_once_the_gate_opens(fst_block):
    x = torch.randn(B, T, N, D)
    y = x.clone()
    y[:, 2] += torch.randn(B, N, D)  # not a constant: LayerNorm would remove it
    with torch.no_grad():
        fst_block.alpha.fill_(0.5)
        out_x, out_y = fst_block.temporal(x), fst_block.temporal(y)
    assert not torch.allclose(out_x[:, 0], out_y[:, 0])  # slice 0 sees slice 2 through time


def test_with_closed_gate_the_block_is_the_image_block_per_slice(fst_block):
    image = SliceBlock(D, 2, 4 * D)
    image.load_state_dict(fst_block.state_dict(), strict=False)  # same spatial / MLP weights
    x = torch.randn(B, T * N, D)
    with torch.no_grad():
        assert torch.equal(fst_block(x, (T, N)), image(x, (T, N)))


def test_temporal_weights_start_as_copies_of_the_spatial_ones(fst_block):
    for a, b in zip(fst_block.attn.parameters(), fst_block.attn_t.parameters()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()  # copies, not shared
    assert fst_block.alpha.item() == 0.0


def test_whole_fst_encoder_starts_as_a_per_slice_image_encoder():
    torch.manual_seed(0)
    fst = build_video_encoder(_spec("factorized_self_attention"))
    video = torch.randn(B, 3, 8, 32, 32)
    with torch.no_grad():
        x, grid = fst.patch(video)
        # At init (alpha = 0) every FST block is the image block applied per slice.
        image = [SliceBlock(D, 2, 4 * D) for _ in fst.blocks]
        for img, blk in zip(image, fst.blocks):
            img.load_state_dict(blk.state_dict(), strict=False)
        ref = x
        for img in image:
            ref = img(ref, grid)
        assert torch.allclose(fst.run_blocks(x, grid), ref, atol=1e-6)


def test_frame_encoder_never_mixes_frames():
    torch.manual_seed(0)
    enc = build_video_encoder(_spec("frame_avg")).eval()
    video = torch.randn(1, 3, 6, 32, 32)
    other = video.clone()
    other[:, :, 3] += torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        (xa, grid), (xb, _) = enc.patch(video), enc.patch(other)
        assert grid == (6, 16)  # tubelet 1: one slice per frame
        ya = enc.run_blocks(xa, grid).reshape(1, 6, 16, D)
        yb = enc.run_blocks(xb, grid).reshape(1, 6, 16, D)
    keep = [0, 1, 2, 4, 5]
    assert torch.equal(ya[:, keep], yb[:, keep]) and not torch.allclose(ya[:, 3], yb[:, 3])


def test_attention_pool_reads_every_frame():
    torch.manual_seed(0)
    enc = build_video_encoder(_spec("frame_attnpool")).eval()
    video = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        out = enc(video)
        video[:, :, 3] += torch.randn(2, 3, 32, 32)
        assert out.shape == (2, D) and not torch.allclose(out, enc(video))


def test_factorized_encoder_depth_split():
    enc = build_video_encoder(_spec("factorized_encoder(temporal_layers=3)"))
    assert len(enc.blocks) == 2 + 3 and enc.spatial_layers == 2
    with torch.no_grad():
        out = enc.eval()(torch.randn(2, 3, 8, 32, 32))
    assert out.shape == (2, D) and enc.last_tokens == 4 * 16  # tokens entering the (spatial) blocks


@pytest.mark.parametrize("preset, expected_m", [("vit-b", 28), ("vit-l", 101)])
def test_fst_parameter_overhead_without_allocating(preset, expected_m):
    spec = get_preset(preset)
    joint = param_counts_without_memory(spec)["video"]
    fst = param_counts_without_memory(compose("factorized_self_attention").configure(spec))["video"]
    extra = fst - joint
    assert extra == fst_extra_params(spec.width, spec.depth)
    assert round(extra / 1e6) == expected_m  # 4D² + LN per layer: ~+28M (ViT-B), ~+101M (ViT-L)
