"""Every registered method and recipe, driven by the registry: builds and steps, or is refused with reasons."""

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from vfbench.errors import UserError
from vfbench.registry import compose, get_method, list_methods, method_classes
from vfbench.spec import CellSpec
from vfbench.step import analytic_step_flops, build_setup, cell_problems, configured_spec, train_step

FRAMES = (4, 8, 16)

# Compositions across axes that must run (the paper combines masking with every attention variant).
COMBOS = [
    "factorized_self_attention+mask(ratio=0.75)",
    "factorized_self_attention+tube_mask(ratio=0.5)",
    "factorized_self_attention+lora+checkpoint",
    "factorized_encoder(temporal_layers=1)+mask(ratio=0.5)+last_k(k=2)",
    "frame_avg+mask(ratio=0.75)",
    "frame_attnpool+tube_mask+adapter",
    "frame_avg+coarse_spatial",
    "joint+tubevit+mask(ratio=0.5)",
    "joint+coarse_both+lora+bf16",
    "fst_temporal",
]

# Compositions that must be refused with a reason, not crash.
REFUSED = [
    "temporal_only",
    "joint+temporal_only",
    "factorized_self_attention+tubevit",
    "factorized_encoder+tubevit",
    "frame_avg+coarse_temporal",
    "frame_attnpool+tubevit",
    "tubevit+tube_mask",
    "attn_kernel(kind=xformers)",
]


def _cell(method: str, frames: int = 8) -> CellSpec:
    return CellSpec("tiny", compose(method).label, frames, 2)


def _run_or_refuse(method: str, frames: int):
    cell = _cell(method, frames)
    comp, spec = configured_spec(cell)
    problems = cell_problems(cell, comp, spec)
    if problems:
        assert all(isinstance(p, str) and p.strip() for p in problems)
        return None
    setup = build_setup(cell)
    losses = [train_step(setup) for _ in range(2)]
    assert all(torch.isfinite(loss) for loss in losses)
    assert setup.model.video.last_tokens > 0
    assert analytic_step_flops(setup) > 0
    return setup


@pytest.mark.parametrize("frames", FRAMES)
@pytest.mark.parametrize("name", list_methods())
def test_every_method_steps_or_is_refused(name, frames):
    _run_or_refuse(name, frames)


@pytest.mark.parametrize("name", list_methods(include_recipes=False))
def test_every_method_documents_itself(name):
    cls = method_classes()[name]
    # Runtime methods are harness knobs the paper does not discuss: they cite their own sources.
    cited = cls.axis == "runtime" or any(src in cls.__doc__ + cls.reference for src in ("arXiv:2312.07395",))
    assert cls.__doc__ and cited
    assert cls.summary and "\n" not in cls.summary and cls.reference


@pytest.mark.parametrize("name", list_methods())
def test_labels_reparse_to_the_same_composition(name):
    """Cells carry the composed label and the worker composes it again: it must round-trip."""
    label = compose(name).label
    assert compose(label).label == label


@pytest.mark.parametrize("text", COMBOS)
def test_cross_axis_compositions_run(text):
    assert _run_or_refuse(text, 8) is not None


@pytest.mark.parametrize("text", REFUSED)
def test_incompatible_compositions_are_refused_with_reasons(text):
    cell = _cell(text)
    comp, spec = configured_spec(cell)
    problems = cell_problems(cell, comp, spec)
    assert problems and all(p.strip() for p in problems)


@pytest.mark.parametrize(
    "text",
    ["mask(ratio=1.0)", "mask(ratio=-0.1)", "tube_mask(ratio=1.5)", "attn_kernel(kind=flash3)", "last_k(k=0)",
     "lora(rank=0)", "adapter(bottleneck=0)", "tubevit(tubes=k1x2)", "factorized_encoder(temporal_layers=-1)"],
)
def test_bad_parameters_raise_user_errors(text):
    with pytest.raises(UserError):
        get_method(text)


@pytest.mark.parametrize(
    "name", ["joint", "factorized_self_attention", "factorized_encoder(temporal_layers=2)", "frame_avg", "frame_attnpool",
             "tubevit", "coarse_both", "tube_mask", "lora", "adapter", "factorized_self_attention+lora",
             "frame_attnpool+adapter(bottleneck=5)"],
)
def test_forward_flops_match_counted_matmuls(name):
    """The closed forms (vfbench's FLOP model) equal what torch's FlopCounter counts for the video tower's forward
    (it counts matmuls, convolutions and SDPA; LayerNorm, GELU, softmax-free elementwise work are not in
    either). The math kernel, because the counter does not see CPU's fused SDPA. Train mode, so masking
    hooks run."""
    setup = build_setup(_cell(name + "+attn_kernel(kind=math)", 16))
    video = setup.model.video
    with FlopCounterMode(display=False) as counter:
        video(setup.video)
    forward_f = video.forward_flops(16, video.last_tokens, None)
    # The attention pool projects its learned query once per batch; forward_flops counts it per clip.
    query_f = (setup.cell.batch - 1) * 2 * video.width**2 if getattr(video, "pool", None) is not None else 0
    assert counter.get_total_flops() + query_f == setup.cell.batch * forward_f


def test_frozen_prefix_flops_are_counted_once():
    """last_k: the frozen prefix and the frozen patch embedding cost 1x forward; the patch embedding of a
    fully trained model 2x (forward and its weight gradient: the clip needs no gradient), not 3x. (Math
    kernel: its attention backward is 2x the forward, like a linear's.)"""
    lastk = build_setup(CellSpec("tiny", "last_k(k=1)+attn_kernel(kind=math)", 8, 2))
    full = build_setup(CellSpec("tiny", "attn_kernel(kind=math)", 8, 2))
    train_step(lastk), train_step(full)
    video = lastk.model.video
    block0 = video.blocks[0].forward_flops(video.last_tokens, video.last_grid)
    patch = video.patch.forward_flops(8)
    assert analytic_step_flops(full) - analytic_step_flops(lastk) == 2 * (2 * block0 + patch)  # batch 2


def test_recipes_compose_as_the_paper_says():
    assert [m.label for m in compose("longvivit").methods] == ["joint", "last_k(k=4)", "mask(ratio=0.75)"]
    assert [m.label for m in compose("effshortvivit").methods] == ["joint", "full", "mask(ratio=0.75)"]
    assert compose("imagevit").by_axis("attention").name == "frame_avg"
    assert compose("fst_temporal").by_axis("tuning").name == "temporal_only"
    assert math.isclose(compose("longvivit").by_axis("tokens").p["ratio"], 0.75)
