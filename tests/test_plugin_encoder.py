"""A new attention type and a new patching scheme, written entirely in this file, run through a measured
cell, the estimate and the analytic model: nothing outside their own classes names them.

- `test_windowed` attention: joint attention inside windows of `window` consecutive time slices
  (a video Swin-style temporal window), so its frame counts must be multiples of window x the tubelet.
- `test_tubelet3` patching: tubelets three frames deep, whatever the spec's tubelet says.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vfbench.errors import UserError
from vfbench.estimate.peak import estimate_cell
from vfbench.estimate.sweep import frame_step
from vfbench.measure.analytic import analytic_peak
from vfbench.models.blocks import Block
from vfbench.models.encoder import VideoEncoder
from vfbench.models.patch import TubeletEmbed
from vfbench.models.registry import ENCODERS, PATCHES, register_encoder, register_patch
from vfbench.models.tower import LayerShape, TokenLayout
from vfbench.registry import Method, register_method, unregister
from vfbench.runner.cells import run_cell
from vfbench.spec import CellSpec, ModelSpec
from vfbench.step import build_setup, cell_problems, configured_spec


class WindowBlock(Block):
    """Joint attention within windows of `window` time slices: (B, T'·N, D) -> (B, T'/w, w·N, D)."""

    def __init__(self, dim, heads, mlp_dim, kernel, window):
        super().__init__(dim, heads, mlp_dim, kernel)
        self.window = window

    def forward(self, x, grid=None):
        B, S, D = x.shape
        x = x.reshape(B, grid[0] // self.window, self.window * grid[1], D)
        return super().forward(x, grid).reshape(B, S, D)

    def layer_shape(self, layout: TokenLayout) -> LayerShape:
        return LayerShape(layout.tokens, (self.window * layout.grid[1],))

    def forward_flops(self, tokens, grid=None):
        return grid[0] // self.window * super().forward_flops(self.window * grid[1])


class WindowedEncoder(VideoEncoder):
    needs_grid = True

    def __init__(self, spec: ModelSpec):
        w = spec.option("window")
        super().__init__(spec, blocks=[WindowBlock(spec.width, spec.heads, spec.mlp_dim, spec.attn_kernel, w)
                                       for _ in range(spec.depth)])

    @classmethod
    def frame_step(cls, spec: ModelSpec) -> int:
        return super().frame_step(spec) * spec.option("window")


class Tubelet3(TubeletEmbed):
    @classmethod
    def from_spec(cls, spec):
        return cls(spec.channels, spec.width, 3, spec.patch_size, spec.image_size, spec.temporal_pos_len)

    @classmethod
    def frame_step(cls, spec):
        return 3


class WindowMethod(Method):
    name = "test_windowed"
    axis = "attention"
    params = {"window": 2}

    def configure(self, spec):
        return dataclasses.replace(spec, attention="test_windowed").with_options(window=self.p["window"])


class Tubelet3Method(Method):
    name = "test_tubelet3"
    axis = "patching"

    def configure(self, spec):
        return dataclasses.replace(spec, patching="test_tubelet3")


@pytest.fixture(scope="module", autouse=True)
def plugin():
    register_encoder("test_windowed")(WindowedEncoder)
    register_patch("test_tubelet3")(Tubelet3)
    register_method(WindowMethod)
    register_method(Tubelet3Method)
    yield
    ENCODERS.unregister("test_windowed")
    PATCHES.unregister("test_tubelet3")
    unregister("test_windowed")
    unregister("test_tubelet3")


METHOD = "test_windowed+test_tubelet3"


def test_frame_rule_comes_from_the_plugin():
    cell = CellSpec("tiny", METHOD, 12, 2)
    assert frame_step(cell) == 6  # window 2 x tubelet 3
    assert cell_problems(cell, *configured_spec(cell)) == []
    bad = dataclasses.replace(cell, frames=9)
    assert any("9 frames is not a multiple" in r and "6" in r for r in cell_problems(bad, *configured_spec(bad)))
    assert frame_step(CellSpec("tiny", "test_tubelet3", 12, 2)) == 3


def test_plugin_runs_through_a_cell_the_estimate_and_the_analytic_model():
    cell = CellSpec("tiny", METHOD, 12, 2)
    setup = build_setup(cell)
    video = setup.model.video
    assert isinstance(video, WindowedEncoder) and isinstance(video.patch, Tubelet3)
    n = (32 // 8) ** 2
    layout = video.train_layout(12)
    assert layout == TokenLayout(4 * n, (4, n))
    assert [s.seqs for s in video.layer_shapes(layout)] == [(2 * n,)] * len(video.blocks)

    record = run_cell(cell)
    assert record.status == "ok", record.reason
    est = estimate_cell(cell)
    assert est.tokens == 4 * n
    assert est.estimated_peak_mib > 0 and est.analytic_peak_mib > 0
    # The analytic model sizes the plugin from what it declares: within 25% of the traced estimate.
    assert 0.75 < est.analytic_peak_mib / est.estimated_peak_mib < 1.25
    analytic = analytic_peak(setup.spec, setup.model, cell)
    assert abs(analytic.total_mib - est.analytic_peak_mib) < 1e-9


def test_window_length_reaches_the_math_kernels_score_memory():
    """With the math kernel the scores kept scale with the window's sequence length, so a wider window
    costs more in the analytic model and the estimate alike."""
    peaks = {}
    for w in (1, 2):
        cell = CellSpec("tiny", f"test_windowed(window={w})+test_tubelet3+attn_kernel(kind=math)", 12, 2)
        est = estimate_cell(cell)
        peaks[w] = (est.estimated_peak_mib, est.analytic_peak_mib)
    assert peaks[2][0] > peaks[1][0] and peaks[2][1] > peaks[1][1]


def test_registries_refuse_duplicates_and_suggest_names():
    with pytest.raises(ValueError, match="already registered"):
        register_encoder("test_windowed")(WindowedEncoder)
    with pytest.raises(UserError, match="did you mean 'test_windowed'"):
        ENCODERS.get("test_windowd")
    with pytest.raises(UserError, match="registered: .*tubelet"):
        PATCHES.get("nope")


def test_token_hooks_draw_from_the_given_generator():
    """Masks depend on the encoder's generator only, not on the global stream."""
    setup = build_setup(CellSpec("tiny", "mask(ratio=0.5)", 8, 2))
    video = setup.model.video
    kept = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        video.token_generator = torch.Generator().manual_seed(7)
        kept.append(video.tokens(setup.video)[0])
    assert torch.equal(kept[0], kept[1])
