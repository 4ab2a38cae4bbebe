import torch

from vfbench.models import build_model, get_preset, param_counts_without_memory
from vfbench.models.blocks import block_param_count
from vfbench.models.presets import PRESETS
from vfbench.step import build_setup, train_step


def test_shapes_through_the_encoder(tiny_cell):
    spec = get_preset("tiny")
    model = build_model(spec)
    video = torch.randn(3, 3, 8, 32, 32)  # (B, C, T, H, W)
    tokens, grid = model.video.patch(video)
    assert grid == (4, 16) and tokens.shape == (3, 4 * 16, spec.width)  # (B, T'·N, D)
    assert model.video(video).shape == (3, spec.width)
    assert model.embed_video(video).norm(dim=-1).allclose(torch.ones(3))
    assert model.embed_text(torch.randint(0, spec.vocab_size, (3, spec.text_len))).shape == (3, spec.embed_dim)


def test_any_frame_count_runs():
    model = build_model(get_preset("tiny"))
    for frames in (2, 6, 16, 40):
        assert model.video(torch.randn(1, 3, frames, 32, 32)).shape == (1, 32)


def test_block_parameter_formula_matches_build():
    for spec in PRESETS[:2]:
        model = build_model(spec)
        blk = model.video.blocks[0]
        assert sum(p.numel() for p in blk.parameters()) == block_param_count(spec.width, spec.mlp_dim)


def test_vit_b_encoder_matches_standard_vit_b16_without_allocating():
    """timm's vit_base_patch16_224 without its head has 85,798,656 parameters; minus its 2D patch embedding
    (590,592), position table (151,296) and CLS token (768) that is 85,056,000 in the blocks and final norm."""
    spec = get_preset("vit-b")
    with torch.device("meta"):
        model = build_model(spec)
    video = model.video
    blocks_and_norm = sum(p.numel() for p in video.blocks.parameters()) + sum(p.numel() for p in video.norm.parameters())
    assert blocks_and_norm == 85_056_000
    assert all(p.is_meta for p in video.parameters())
    rest = sum(p.numel() for p in video.patch.parameters())
    assert rest == 3 * 2 * 16 * 16 * 768 + 768 + 196 * 768 + spec.temporal_pos_len * 768


def test_vit_g_is_about_one_billion():
    counts = param_counts_without_memory(get_preset("vit-g"))
    assert 0.95e9 < counts["video"] < 1.05e9


def test_train_step_changes_weights_and_is_seeded(tiny_cell):
    a, b = build_setup(tiny_cell()), build_setup(tiny_cell())
    w0 = a.model.video.blocks[0].attn.qkv.weight.detach().clone()
    la, lb = train_step(a), train_step(b)
    assert torch.equal(la, lb)  # same seed, same loss
    assert not torch.equal(w0, a.model.video.blocks[0].attn.qkv.weight)
