import torch
from torch import nn

from vfbench.measure.memory import MIB, track_peak, track_step_memory
from vfbench.step import build_setup, train_step


def test_tracked_peak_of_a_hand_computable_step():
    """Live bytes by hand: inputs 1 MiB; a (1 MiB) + b (2 MiB) live, a freed, c (3 MiB):
    the peak is 1 + 2 + 3 = 6 MiB, at the allocation of c."""
    x = torch.zeros(MIB // 4)  # 1 MiB fp32

    def step(phase):
        phase("forward")
        a = torch.ones(MIB // 4)
        b = torch.ones(2 * MIB // 4)
        del a
        c = torch.ones(3 * MIB // 4)
        phase("backward")
        del b, c
        d = torch.ones(MIB // 4)  # 2 MiB live, below the peak
        return d

    peak = track_peak(step, [], None, [x])
    assert abs(peak.peak_allocated_mib - 6.0) / 6.0 < 0.01
    assert peak.baseline_mib == 1.0 and peak.peak_phase == "forward"
    assert abs(peak.breakdown.activations_mib - 5.0) < 1e-6 and peak.breakdown.inputs_mib == 1.0


def test_views_and_inplace_ops_are_not_double_counted():
    def step(phase):
        a = torch.ones(MIB // 4)
        v = a.view(2, -1)
        a.mul_(2)
        return a, v

    assert abs(track_peak(step, [], None, []).peak_allocated_mib - 1.0) < 1e-6


def test_linear_adamw_step_by_hand():
    """One Linear(1024, 1024, bias=False) trained with fused AdamW on x (256, 1024):
    weight W = 4 MiB, Adam state 2 x 4 MiB (+ a 4-byte step counter), input 1 MiB: 13 MiB static.
    Backward of mean then pow(2) holds y = xW^T (1 MiB, saved by pow) plus four (256, 1024) tensors that
    autograd's pow formula makes (grad of mean, y^1, 2·y^1, grad_y): 5 MiB. Backward of the matmul then
    holds grad_y (1 MiB) and grad_W (4 MiB): 5 MiB as well. Peak = 13 + 5 = 18 MiB."""
    torch.manual_seed(0)
    lin = nn.Linear(1024, 1024, bias=False)
    opt = torch.optim.AdamW(lin.parameters(), fused=True)
    x = torch.randn(256, 1024)

    def step(phase):
        phase("forward")
        opt.zero_grad(set_to_none=True)
        loss = lin(x).pow(2).mean()
        phase("backward")
        loss.backward()
        phase("optimizer")
        opt.step()

    step(lambda p: None)  # warm-up: optimizer state exists, as in a steady step
    peak = track_peak(step, list(lin.parameters()), opt, [x])
    hand = 13 + 5
    assert abs(peak.peak_allocated_mib - hand) / hand < 0.01, peak
    assert abs(peak.breakdown.parameters_mib - 4) < 1e-3 and abs(peak.breakdown.optimizer_mib - 8) < 1e-3


def test_train_step_breakdown_accounts_for_static_state(tiny_cell):
    s = build_setup(tiny_cell(frames=8))
    train_step(s)
    peak = track_step_memory(s)
    params = sum(p.numel() * p.element_size() for p in s.model.parameters()) / MIB
    b = peak.breakdown
    assert abs(b.parameters_mib - params) / params < 0.01
    assert abs(b.optimizer_mib - 2 * params) / params < 0.02  # Adam's m and v for every trainable parameter
    total = sum(b.__dict__.values())
    assert abs(total - peak.peak_allocated_mib) < 1e-6
    assert b.activations_mib > 0
