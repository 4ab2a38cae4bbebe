"""Runtime methods change how the step runs, never what it computes (up to float tolerance)."""

import pytest
import torch

from vfbench.models.blocks import attention, xformers_available
from vfbench.spec import CellSpec
from vfbench.step import build_setup


def _grads(method: str, frames: int = 8) -> tuple[torch.Tensor, dict]:
    setup = build_setup(CellSpec("tiny", method, frames, 2))
    loss = setup.model(setup.video, setup.ids)
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in setup.model.named_parameters() if p.grad is not None}


def _assert_same(a, b, atol):
    (loss_a, grads_a), (loss_b, grads_b) = a, b
    assert torch.allclose(loss_a, loss_b, atol=atol)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], atol=atol, rtol=1e-4), name


@pytest.mark.parametrize("attention_method", ["joint", "factorized_self_attention", "factorized_encoder(temporal_layers=1)", "frame_attnpool"])
def test_checkpointing_gives_the_same_gradients(attention_method):
    # Recomputation replays the same ops on the same inputs: equal up to reduction order.
    _assert_same(_grads(attention_method), _grads(f"{attention_method}+checkpoint"), atol=1e-6)


@pytest.mark.parametrize("attention_method", ["joint", "factorized_self_attention", "frame_attnpool"])
def test_math_and_sdpa_kernels_agree(attention_method):
    # Same softmax(QK^T/sqrt(d))V, different summation orders: fp32 rounding only (~1e-7 relative).
    _assert_same(_grads(attention_method), _grads(f"{attention_method}+attn_kernel(kind=math)"), atol=1e-5)


def test_bf16_autocast_stays_close_to_fp32():
    loss32, _ = _grads("joint")
    loss16, _ = _grads("bf16")
    assert torch.isfinite(loss16) and abs(loss16 - loss32) < 0.05  # bf16 keeps ~3 significant digits


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.skipif(not xformers_available(), reason="needs xformers")
def test_xformers_matches_sdpa_on_cuda():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 256, 64, device="cuda", dtype=torch.float16) for _ in range(3))
    ref = attention(q, k, v, "sdpa")
    out = attention(q, k, v, "xformers")
    assert torch.allclose(out, ref, atol=2e-3, rtol=2e-3)  # fp16 accumulation differences
