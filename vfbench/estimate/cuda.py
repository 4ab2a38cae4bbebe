"""What a fake CPU trace must add to model the CUDA step the user will run .

A CPU build of PyTorch cannot fake CUDA: on torch 2.13 `nn.Linear(..., device="cuda")` under
FakeTensorMode raises "PyTorch is not linked with support for cuda devices", and SDPA on a fake CUDA
tensor aborts the process (c10::Error thrown from autograd's InputMetadata). So the estimate always
traces the step on fake CPU tensors and applies these documented corrections for a CUDA target:

1. Allocator blocks. The CUDA caching allocator rounds every allocation up to a multiple of 512 B
   (kMinBlockSize, c10/cuda/CUDACachingAllocator.cpp `round_size`), and `max_memory_allocated`
   counts the rounded block.
2. Autocast policy. CPU and CUDA autocast cast the same matmul/conv/linear/SDPA ops to bf16, but CUDA
   also runs a list of ops in fp32 (aten/src/ATen/autocast_mode.cpp: `fp32` and `fp32_set_opt_dtype`),
   which CPU autocast leaves in bf16. The one that matters here: softmax of the math attention
   kernel returns an fp32 (B, h, S, S) matrix on CUDA, and the following matmul keeps a bf16 copy of it
   (6 B per score, not CPU's 2 B). `CudaAutocastPolicy` re-creates that policy above autograd, so
   the casts enter the graph exactly where CUDA's would.
3. SDPA. CPU runs `_scaled_dot_product_flash_attention_for_cpu`, which saves q, k, v, out and an fp32
   log-sum-exp, as CUDA flash (bf16) and memory-efficient (fp32) attention do: no S x S matrix, same
   saved bytes. CUDA flash backward also allocates, inside the kernel, dq_accum (B, S_128, h, d_32) and
   softmax_d (B, h, S_128) in fp32 (flash_api.cpp `mha_bwd`, S rounded to 128, d to 32); the tracker
   adds them around each attention backward. Memory-efficient backward in fp32 accumulates dq in
   place (no workspace).
4. cuBLAS workspaces: 32 MiB per (handle, stream) on sm90 (H100/H200; 8.125 MiB before Hopper),
   taken from the caching allocator (aten/src/ATen/cuda/CublasHandlePool.cpp); one handle for the
   forward thread and one for autograd's device thread, so 2 x 32 MiB persist through the step.

Not modelled (labelled in every estimate): cuDNN convolution workspaces, the CUDA context (outside
the allocator), fragmentation (reserved > allocated).
"""

from __future__ import annotations

import weakref

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

from vfbench.measure.memory import LiveTensorTracker, _Entry

CUDA_BLOCK_BYTES = 512
CUBLAS_WORKSPACE_BYTES = 4096 * 8 * 1024  # sm90 default (":4096:8"); CublasHandlePool.cpp
CUBLAS_HANDLES = 2  # the main thread (forward, optimizer) and autograd's CUDA device thread (backward)
LOW_PRECISION = (torch.bfloat16, torch.float16)

# CUDA autocast runs these in fp32 (autocast_mode.cpp, `fp32` list); CPU autocast does not.
FP32_OPS = frozenset({
    "layer_norm", "group_norm", "exp", "log", "log2", "log10", "log1p", "expm1", "pow", "rsqrt",
    "reciprocal", "softplus", "cosine_similarity", "mse_loss", "l1_loss", "smooth_l1_loss", "nll_loss",
    "kl_div", "binary_cross_entropy_with_logits", "cdist", "logsumexp",
})
# ... and these with dtype=float32 when an input is lower precision (`fp32_set_opt_dtype`).
FP32_DTYPE_OPS = frozenset({"softmax", "log_softmax", "sum", "prod", "cumsum", "cumprod", "norm", "linalg_vector_norm"})

_FLASH_CPU_BACKWARD = "aten._scaled_dot_product_flash_attention_for_cpu_backward.default"


def round_up(n: int, block: int) -> int:
    return -(-n // block) * block if block > 1 else n


def flash_backward_workspace(q_shape: tuple, dtype: torch.dtype) -> list[tuple[int, ...]]:
    """fp32 buffers CUDA flash backward allocates for q of shape (B, h, S, d): dq_accum and softmax_d.
    Only 2-byte dtypes run flash; fp32 SDPA runs memory-efficient attention, which needs none."""
    if dtype not in LOW_PRECISION:
        return []
    B, h, S, d = q_shape
    S128, d32 = round_up(S, 128), round_up(d, 32) if d <= 192 else 256
    return [(B, S128, h, d32), (B, h, S128)]


def _to_fp32(x):
    return x.float() if isinstance(x, torch.Tensor) and x.dtype in LOW_PRECISION else x


class CudaAutocastPolicy(TorchFunctionMode):
    """Under CPU autocast, give the ops CUDA autocast runs in fp32 their CUDA behaviour (see module doc, 2)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if (name in FP32_OPS or name in FP32_DTYPE_OPS) and torch.is_autocast_enabled("cpu"):
            first = next((a for a in args if isinstance(a, torch.Tensor)), None)
            if first is not None and first.dtype in LOW_PRECISION:
                if name in FP32_OPS:
                    args, kwargs = tree_map(_to_fp32, args), tree_map(_to_fp32, kwargs)
                elif kwargs.get("dtype") is None and not any(isinstance(a, torch.dtype) for a in args):
                    kwargs = {**kwargs, "dtype": torch.float32}
        return func(*args, **kwargs)


class FakeStepTracker(LiveTensorTracker):
    """LiveTensorTracker for fake traces: the target allocator's block rounding, CUDA flash-backward
    workspaces, and a fast path for the many `prim.device` queries fake tensors dispatch."""

    def __init__(self, block_bytes: int = 1, cuda_flash: bool = False):
        super().__init__()
        self.block_bytes = block_bytes
        self.cuda_flash = cuda_flash
        self._refs: dict[int, weakref.ref] = {}

    def _track(self, t: torch.Tensor, category: str) -> None:
        st = t.untyped_storage()
        key = st._cdata
        if key in self.entries:
            return
        self.seq += 1
        entry = _Entry(round_up(st.nbytes(), self.block_bytes), category, self.seq)
        self.entries[key] = entry
        self.log.append(entry)
        self.current += entry.nbytes
        if self.current > self.peak:
            self.peak, self.peak_seq, self.peak_phase = self.current, self.seq, self.phase
        # A plain weakref with a callback is cheaper than weakref.finalize and fires at the same moment.
        self._refs[key] = weakref.ref(st, lambda _, k=key: self._release_ref(k))

    def _release_ref(self, key: int) -> None:
        self._refs.pop(key, None)
        self._release(key)

    def detach(self) -> None:
        """Stop watching: drop the weakrefs, so storages that outlive the step (parameters, optimizer
        state) do not keep this tracker alive across later traces."""
        self._refs.clear()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.prim.device.default:
            return func(*args, **(kwargs or {}))
        workspace = []
        if self.cuda_flash and str(func) == _FLASH_CPU_BACKWARD:
            q = args[1]
            for shape in flash_backward_workspace(tuple(q.shape), q.dtype):
                workspace.append(torch.empty(shape, dtype=torch.float32, device=q.device))
                self._track(workspace[-1], self.phase)
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor):
            self._track(out, self.phase)
        elif isinstance(out, (tuple, list)):
            for t in out:
                if isinstance(t, torch.Tensor):
                    self._track(t, self.phase)
                elif isinstance(t, (tuple, list)):
                    for u in t:
                        if isinstance(u, torch.Tensor):
                            self._track(u, self.phase)
        workspace.clear()  # the kernel frees its buffers as it returns, after allocating its outputs
        return out
