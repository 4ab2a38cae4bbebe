"""The step FLOP formula (models/step_flops.py) against what PyTorch's FlopCounterMode counts in a real step.

Every attention runs the math kernel, so the counter sees its matmuls (it does not see CPU's fused SDPA
kernel). The counter counts matmuls and convolutions, forward and backward, as the formula does.
"""

import pytest
from torch.utils.flop_counter import FlopCounterMode

from vfbench.models.blocks import Attention
from vfbench.models.frame import AttentionPool
from vfbench.spec import CellSpec
from vfbench.step import analytic_step_flops, build_setup, train_step

METHODS = [
    "joint", "mask(ratio=0.75)", "lora", "adapter", "last_k(k=1)", "checkpoint", "longvivit",
    "factorized_self_attention+lora", "fst_temporal", "frame_attnpool+adapter", "factorized_encoder(temporal_layers=1)+last_k(k=2)",
    "tubevit+checkpoint", "coarse_both+mask(ratio=0.5)",
]


def math_kernel_setup(method: str, frames: int = 8, batch: int = 2):
    setup = build_setup(CellSpec("tiny", method, frames, batch))
    for m in setup.model.modules():
        if isinstance(m, (Attention, AttentionPool)):
            m.kernel = "math"
    train_step(setup)  # the optimizer state exists, as in a measured step
    return setup


def counted(setup) -> int:
    with FlopCounterMode(display=False) as counter:
        train_step(setup)
    return counter.get_total_flops()


@pytest.mark.parametrize("method", METHODS)
def test_step_formula_equals_flop_counter(method):
    setup = math_kernel_setup(method)
    ratio = analytic_step_flops(setup) / counted(setup)
    assert abs(ratio - 1) < 0.03, f"{method}: formula / counted = {ratio:.4f}"


def test_peft_and_patch_do_no_work_they_need_not():
    """Adapters: the frozen backbone runs input-gradient matmuls but no weight-gradient ones, so the
    step costs well under 3x the forward; the full model's patch embedding runs no input gradient."""
    from vfbench.models.step_flops import step_flops

    def ledger(setup):
        v = setup.model.video
        return step_flops(setup.model, 8, 2, setup.spec.text_len, v.last_tokens, v.last_grid)

    full, adapter = ledger(math_kernel_setup("joint")), ledger(math_kernel_setup("adapter"))
    assert adapter.weight_grad < full.weight_grad / 2
    assert adapter.input_grad == full.input_grad + (adapter.forward - full.forward)  # adapters' input grads
    patch = math_kernel_setup("joint").model.video.patch.forward_flops(8) * 2  # batch 2
    assert full.input_grad + full.weight_grad == 2 * full.forward - patch


def test_checkpoint_counts_the_recomputed_forward():
    """Each block's forward runs again in backward, up to its last matmul (fc2), whose saved input is
    packed before it runs, so PyTorch's early stop skips it."""
    plain, ckpt = math_kernel_setup("joint"), math_kernel_setup("checkpoint")
    video = plain.model.video
    blocks = sum(b.forward_flops(video.last_tokens, video.last_grid) for b in video.blocks)
    fc2 = sum(2 * video.last_tokens * b.mlp.fc2.in_features * b.mlp.fc2.out_features for b in video.blocks)
    assert analytic_step_flops(ckpt) - analytic_step_flops(plain) == 2 * (blocks - fc2)  # batch 2
