"""Parameter-efficient tuning (arXiv:2312.07395's adapters, LoRA, temporal-only and last-k): identity at init, exactly the right parameters train,
and the frozen prefix of last_k keeps no activations."""

import pytest
import torch

from vfbench.measure.memory import track_step_memory
from vfbench.models.peft import Adapter, LoRALinear
from vfbench.spec import CellSpec
from vfbench.step import build_setup, train_step

ALWAYS_TRAIN = ("text.", "video_proj.", "text_proj.", "logit_scale")


def _setup(method: str, frames: int = 8):
    return build_setup(CellSpec("tiny", method, frames, 2))


def _trainable(setup) -> set[str]:
    return {n for n, p in setup.model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize(
    "base, adapted",
    [("joint", "lora"), ("joint", "adapter"), ("joint", "lora(rank=2,alpha=4.0)"), ("joint", "adapter(bottleneck=64)"),
     ("factorized_self_attention", "factorized_self_attention+lora"),
     ("factorized_self_attention", "factorized_self_attention+adapter"), ("frame_avg", "frame_avg+lora")],
)
def test_adapted_model_equals_the_base_model_at_init(base, adapted):
    a, b = _setup(base), _setup(adapted)  # same seed: same base weights
    with torch.no_grad():
        assert torch.equal(a.model.embed_video(a.video), b.model.embed_video(b.video))
        assert torch.equal(a.model(a.video, a.ids), b.model(b.video, b.ids))


@pytest.mark.parametrize(
    "method, video_trains",
    [
        ("lora", lambda n: "lora_" in n or n.startswith("video.patch.")),
        ("adapter", lambda n: ".post_mlp." in n or n.startswith("video.patch.")),
        ("fst_temporal", lambda n: any(k in n for k in (".attn_t.", ".norm_t.", ".alpha")) or n.startswith("video.patch.")),
        ("last_k(k=1)", lambda n: n.startswith(("video.blocks.1.", "video.norm."))),
        ("frame_attnpool+lora", lambda n: "lora_" in n or n.startswith(("video.patch.", "video.pool."))),
    ],
)
def test_exactly_the_intended_parameters_train(method, video_trains):
    setup = _setup(method)
    train_step(setup)
    state = setup.optimizer.state
    for name, p in setup.model.named_parameters():
        should = name.startswith(ALWAYS_TRAIN) or (name.startswith("video.") and video_trains(name))
        assert p.requires_grad == should, name
        if not should:
            assert p.grad is None and p not in state, name  # no gradient, no optimizer state
        else:
            assert p in state, name


def test_lora_wraps_every_attention_and_mlp_linear_with_the_loralib_init():
    setup = _setup("factorized_self_attention+lora(rank=4,alpha=8.0)")
    loras = [m for m in setup.model.video.modules() if isinstance(m, LoRALinear)]
    assert len(loras) == 2 * (2 + 2 + 2)  # per layer: qkv, proj, temporal qkv, temporal proj, fc1, fc2
    assert all(m.rank == 4 and m.scaling == 2.0 for m in loras)
    assert all(torch.count_nonzero(m.lora_B) == 0 and torch.count_nonzero(m.lora_A) > 0 for m in loras)
    assert not any(isinstance(m, LoRALinear) for m in setup.model.text.modules())  # video tower only


def test_adapters_sit_after_every_mlp_with_zero_up_projection():
    setup = _setup("adapter")
    blocks = setup.model.video.blocks
    assert all(isinstance(b.post_mlp, Adapter) for b in blocks)
    assert all(b.post_mlp.down.out_features == 8 for b in blocks)  # 0.25 · D (D = 32)
    assert all(torch.count_nonzero(b.post_mlp.up.weight) == 0 for b in blocks)


def test_peft_still_learns():
    setup = _setup("lora")
    before = [m.lora_B.clone() for m in setup.model.video.modules() if isinstance(m, LoRALinear)]
    for _ in range(2):  # B gets a gradient once A is multiplied by the incoming signal
        train_step(setup)
    after = [m.lora_B for m in setup.model.video.modules() if isinstance(m, LoRALinear)]
    assert any(not torch.equal(x, y) for x, y in zip(before, after))


def test_last_k_clamps_to_depth_and_freezes_the_patch_embedding():
    setup = _setup("last_k(k=10)")
    video = setup.model.video
    assert video.no_grad_prefix == 0
    assert not any(p.requires_grad for p in video.patch.parameters())
    assert all(p.requires_grad for p in video.blocks.parameters())


def test_last_k_stores_no_activations_for_the_frozen_prefix():
    """Tiny, 16 frames: L = 2, k = 1. The frozen prefix runs without autograd, so the tracked peak must
    fall by at least the prefix's share of the full run's activations, activations_full · (L−k)/L.

    Tolerance 5% of that share: the share is computed from *all* activations of the full run, which also
    include a few tensors outside the blocks (text tower, final norm, pooled embeddings, logits) that both
    runs keep; at this size they are about 1% of the total. Gradients and Adam state of the frozen weights
    are saved too, on top of the activations, so the real drop is larger than the bound."""
    full, lastk = _setup("joint", 16), _setup("last_k(k=1)", 16)
    for s in (full, lastk):
        train_step(s)  # warm-up: optimizer state exists, as in a steady step
    m_full, m_lastk = track_step_memory(full), track_step_memory(lastk)
    L, k = len(full.model.video.blocks), 1
    prefix_share = m_full.breakdown.activations_mib * (L - k) / L
    assert m_full.peak_allocated_mib - m_lastk.peak_allocated_mib >= 0.95 * prefix_share
    assert m_lastk.breakdown.activations_mib <= m_full.breakdown.activations_mib * k / L * 1.05
