"""Runtime methods stack (checkpoint+bf16+compile), kernels that cannot run here are refused with a
reason, and a compiled cell times compiled steps with its compilation kept apart (compile_s)."""

import dataclasses

import pytest
import torch

from vfbench.errors import UserError
from vfbench.estimate.peak import estimate_cell
from vfbench.methods.runtime import compile_modes
from vfbench.models.blocks import attention
from vfbench.registry import compose
from vfbench.runner.cells import run_cell
from vfbench.spec import CellSpec
from vfbench.step import build_setup, cell_problems, configured_spec, train_step


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    # Every build is a new module: without a reset dynamo's per-code cache limit would be reached.
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


# ------------------------------------------------------------------ composition

def test_runtime_methods_stack_in_one_canonical_label():
    a, b = compose("checkpoint+bf16+compile"), compose("compile+checkpoint+bf16")
    assert a.label == b.label == "bf16+checkpoint+compile(backend=inductor,mode=default)"
    assert [m.name for m in a.methods if m.axis == "runtime"] == ["bf16", "checkpoint", "compile"]
    assert compose(a.label).label == a.label  # labels are what cells store: they must parse back
    spec = a.configure(configured_spec(CellSpec("tiny", "joint", 4, 2))[1])
    assert spec.checkpoint and spec.precision == "bf16" and spec.option("compile") == "default"


def test_kernel_and_checkpoint_stack_and_keep_the_baseline():
    comp = compose("attn_kernel(kind=math)+checkpoint")
    assert comp.label == "attn_kernel(kind=math)+checkpoint"
    assert comp.by_axis("attention").name == "joint" and comp.by_axis("tuning").name == "full"
    spec = comp.configure(configured_spec(CellSpec("tiny", "joint", 4, 2))[1])
    assert spec.attn_kernel == "math" and spec.checkpoint


def test_a_recipe_with_runtime_methods_keeps_its_name():
    assert compose("longvivit+checkpoint+bf16").label == "longvivit+bf16+checkpoint"
    with pytest.raises(UserError, match="one method per axis"):
        compose("longvivit+frame_avg")


@pytest.mark.parametrize("text", ["attn_kernel(kind=math)+attn_kernel(kind=flash)", "compile+compile(mode=max_autotune)"])
def test_a_runtime_method_twice_with_different_parameters_is_refused(text):
    with pytest.raises(UserError, match="each runtime method at most once"):
        compose(text)


def test_the_same_runtime_method_twice_is_one_method():
    assert compose("checkpoint+bf16+checkpoint").label == "bf16+checkpoint"


def test_other_axes_still_take_one_method():
    with pytest.raises(UserError, match="one method per axis"):
        compose("mask(ratio=0.5)+mask(ratio=0.75)")


# ------------------------------------------------------------------ refusals

def _reasons(method: str, device: str = "cpu", dtype: str = "fp32") -> list[str]:
    cell = CellSpec("tiny", method, 4, 2, dtype, device)
    comp, spec = configured_spec(cell)
    return cell_problems(cell, comp, spec)


@pytest.mark.parametrize("kind", ["flash", "efficient", "cudnn", "xformers"])
def test_cuda_kernels_are_refused_on_cpu_cells(kind):
    (reason,) = _reasons(f"attn_kernel(kind={kind})")
    assert "needs a CUDA device" in reason and kind in reason


@pytest.mark.parametrize("kind", ["flash", "cudnn"])
def test_half_precision_kernels_are_refused_in_fp32(kind):
    (reason,) = _reasons(f"attn_kernel(kind={kind})", device="cuda", dtype="fp32")
    assert "fp16/bf16" in reason
    # bf16 composed or as the cell's dtype lifts that reason (the machine's own checks need a GPU)
    if not torch.cuda.is_available():
        assert _reasons(f"attn_kernel(kind={kind})+bf16", device="cuda", dtype="fp32") == []
        assert _reasons(f"attn_kernel(kind={kind})", device="cuda", dtype="bf16") == []


def test_cpu_kernels_run_everywhere():
    assert _reasons("attn_kernel(kind=sdpa)") == _reasons("attn_kernel(kind=math)") == []


def test_cuda_graph_modes_are_refused_on_cpu():
    (reason,) = _reasons("compile(mode=reduce_overhead)")
    assert "CUDA graphs" in reason and "mode=default" in reason
    assert _reasons("compile(mode=max_autotune_no_cudagraphs)") == []


@pytest.mark.parametrize("text, match", [
    ("compile(mode=fastest)", "accepted: default"),
    ("compile(backend=nope)", "accepted: .*inductor"),
    ("compile(backend=aot_eager,mode=max_autotune)", "inductor mode"),
    ("attn_kernel(kind=flash2)", "accepted: sdpa, flash, efficient, cudnn, math, xformers"),
])
def test_bad_parameters_say_what_is_accepted(text, match):
    with pytest.raises(UserError, match=match):
        compose(text)


def test_compile_modes_are_torchs_own():
    import torch._inductor

    assert {m.replace("_", "-") for m in compile_modes()} == set(torch._inductor.list_mode_options())


# ------------------------------------------------------------------ kernels

def test_a_pinned_backend_runs_that_kernel_without_fallback():
    # CPU has a flash kernel but no memory-efficient one: pinning must not fall back to math.
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 16, 8) for _ in range(3))
    assert torch.allclose(attention(q, k, v, "flash"), attention(q, k, v, "math"), atol=1e-5)
    with pytest.raises(RuntimeError):
        attention(q, k, v, "efficient")


def test_the_estimate_models_kernels_by_what_they_store():
    cell = CellSpec("tiny", "joint", 8, 2, "bf16", "cuda")
    peak = lambda m: estimate_cell(dataclasses.replace(cell, method=m)).estimated_peak_mib  # noqa: E731
    sdpa, math = peak("joint"), peak("attn_kernel(kind=math)")
    assert math > sdpa  # the S x S scores
    for kind in ("flash", "efficient", "cudnn", "xformers"):  # no S x S matrix, whatever this machine has
        assert abs(peak(f"attn_kernel(kind={kind})") - sdpa) < 0.05 * sdpa


# ------------------------------------------------------------------ compile

def test_compiled_steps_match_eager_steps_with_inductor():
    # The real thing on CPU: inductor generates C++ for the tiny model's forward and backward.
    losses = {}
    for method in ("joint", "compile"):
        setup = build_setup(CellSpec("tiny", method, 4, 2))
        losses[method] = [float(train_step(setup)) for _ in range(3)]
    assert losses["compile"] == pytest.approx(losses["joint"], rel=1e-4, abs=1e-5)


def test_the_estimate_traces_the_eager_step_and_says_so():
    cell = CellSpec("tiny", "joint", 4, 2)
    eager = estimate_cell(cell)
    compiled = estimate_cell(dataclasses.replace(cell, method="compile(backend=aot_eager)"))
    assert compiled.estimated_peak_mib == eager.estimated_peak_mib
    assert "torch.compile not modelled" in compiled.estimate_notes
    assert "torch.compile" not in eager.estimate_notes


@pytest.fixture
def counting_backend():
    """A torch.compile backend that counts calls of the compiled graphs (each forward and backward)."""
    calls = {"n": 0}

    def backend(gm, example_inputs):
        from functorch.compile import make_boxed_func
        from torch._dynamo.backends.common import aot_autograd

        def count(g, _):
            def run(*args):
                calls["n"] += 1
                return g(*args)

            return make_boxed_func(run)

        return aot_autograd(fw_compiler=count, bw_compiler=count)(gm, example_inputs)

    name = "vfbench_test_counter"
    torch._dynamo.register_backend(backend, name=name)
    yield name, calls
    from torch._dynamo.backends import registry

    registry._COMPILER_FNS.pop(name, None)


def test_a_compiled_cell_times_compiled_steps_and_records_compile_time(tiny_cell, counting_backend):
    name, calls = counting_backend
    record = run_cell(tiny_cell(f"checkpoint+bf16+compile(backend={name})"))
    assert record.status == "ok", record.reason
    extra = record.extra
    assert extra["compile_mode"] == "default" and extra["compile_s"] > 0
    # Every step outside the memory tracker and FlopCounterMode ran the compiled forward and backward:
    # the warm-up steps (the first of them compiles), the timing's own untimed one and the timed ones (the
    # record's loss is that of the FlopCounterMode step: no step runs only for its loss).
    m = tiny_cell().measure
    compiled_steps = m.warmup_steps + min(1, m.warmup_steps) + record.step_repeats
    assert calls["n"] == 2 * compiled_steps
    # The compilation is not a timed step: the first step is far slower than the slowest timed one.
    assert extra["compile_s"] * 1e3 > record.step_ms_p90


def test_a_pinned_kernel_traces_into_one_graph():
    # The GPU check compiles with cudnn pinned (compile+attn_kernel(kind=cudnn)): dynamo must trace the
    # sdpa_kernel context inside attention(), not break the graph there. Every pinned kind takes the same
    # path with another SDPBackend; flash is the one PyTorch also has on the CPU, so it stands for them here.
    # fullgraph=True turns a graph break into an error.
    q, k, v = (torch.randn(2, 2, 16, 8, requires_grad=True) for _ in range(3))
    compiled = torch.compile(lambda q, k, v: attention(q, k, v, "flash"), backend="aot_eager", fullgraph=True)
    out = compiled(q, k, v)
    out.sum().backward()
    assert torch.allclose(out, attention(q, k, v, "sdpa"), atol=1e-6) and q.grad is not None


def test_an_eager_cell_has_no_compile_keys(tiny_cell):
    record = run_cell(tiny_cell("joint"))
    assert "compile_s" not in record.extra and "gpu_busy_frac" not in record.extra


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["flash", "efficient", "cudnn"])
def test_pinned_cuda_kernels_run_and_agree_with_math(kind):
    from vfbench.methods.runtime import probe_kernel

    if torch.cuda.get_device_capability() < (8, 0):
        assert probe_kernel(kind, 64, "bf16")  # refused with torch's reason on pre-Ampere cards
        return
    assert probe_kernel(kind, 64, "bf16") == ""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 512, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    assert torch.allclose(attention(q, k, v, kind).float(), attention(q, k, v, "math").float(), atol=2e-2, rtol=2e-2)


def test_all_leaves_compile_to_be_asked_for_by_name():
    from vfbench.registry import all_left_out, expand_methods, method_classes

    for device in ("", "cpu", "cuda"):
        labels = [c.label for c in expand_methods("all", device)]
        assert not any("compile" in label for label in labels)
        assert "checkpoint" in labels and "longvivit" in labels
        assert "code generation" in all_left_out("all", device)["compile"]
    # on a device not known yet, every other registered method is in 'all'
    left_out = {n for n, cls in method_classes().items() if cls.left_out_of_all("")}
    assert left_out == {"compile"}
    assert any(label.startswith("compile(") for label in (c.label for c in expand_methods("all,compile")))
    assert "compile" not in all_left_out("all,compile", "cpu")


@pytest.mark.parametrize("native", [False, True])
def test_all_leaves_bf16_out_on_a_cpu_that_only_emulates_it_and_says_why(native, monkeypatch, tmp_path):
    import argparse

    import vfbench.methods.runtime as runtime
    import vfbench.step
    from vfbench.commands.run_cmd import _options, add_parser, build_sweep

    monkeypatch.setattr(runtime, "cpu_bf16_native", lambda: native)
    parser = add_parser(argparse.ArgumentParser().add_subparsers())
    for device in ("cpu", "cuda"):
        monkeypatch.setattr(vfbench.step, "resolve_device", lambda name, device=device: device)
        for methods in ("all", "all,bf16", "joint,bf16"):
            args = parser.parse_args(["--model", "tiny", "--methods", methods, "--frames", "16"])
            sweep, notes = build_sweep(_options(args))
            dropped = device == "cpu" and not native and methods == "all"  # named, it runs
            assert ("bf16" in sweep.methods) is not dropped, (device, methods)
            left = dict(sweep.left_out)
            assert ("bf16" in left) is dropped
            if dropped:
                assert "no native bfloat16" in left["bf16"]
                line = next(n for n in notes if n.startswith("--methods all leaves out"))
                assert "bf16" in line and "--methods all,bf16" in line
            assert ("compile" in left) is methods.startswith("all")
            # stored with the sweep: a resumed run keeps the same cells and the report says what was left out
            assert type(sweep).from_dict(sweep.to_dict()) == sweep
