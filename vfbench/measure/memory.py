"""Peak memory of one steady-state training step, with a breakdown.

CPU (and any device): a TorchDispatchMode that sees every tensor an op creates, keys its storage and
watches it die (storages keep their Python object alive while the C++ storage lives, so a weakref
finaliser fires exactly when the memory is released). The peak of live bytes is the CPU analogue of
`torch.cuda.max_memory_allocated`; it is also what runs under FakeTensorMode for the estimate.

CUDA: `max_memory_allocated` / `max_memory_reserved` after `reset_peak_memory_stats` and a sync, plus
the NVML device-wide `used` figure sampled during the step (which includes the CUDA context).
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

MIB = 2**20
CATEGORIES = ("parameters", "gradients", "optimizer", "inputs", "activations", "temporaries")


@dataclass(frozen=True)
class MemoryBreakdown:
    """Live bytes at the peak, by what they are (MiB)."""

    parameters_mib: float = 0.0
    gradients_mib: float = 0.0
    optimizer_mib: float = 0.0
    inputs_mib: float = 0.0
    activations_mib: float = 0.0  # created in the forward pass and still alive (saved for backward)
    temporaries_mib: float = 0.0  # everything else created during the step

    def to_dict(self) -> dict:
        return {f"mem_{k}": round(v, 4) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class TrackedPeak:
    peak_allocated_mib: float  # peak of live tensor bytes during the step, everything counted
    baseline_mib: float  # live tracked bytes when the step began
    breakdown: MemoryBreakdown
    peak_phase: str  # forward | backward | optimizer


@dataclass
class _Entry:
    nbytes: int
    category: str  # a fixed category, or the phase that created it
    born: int
    died: int = -1


def _storage_key(st) -> int:
    return st._cdata


class LiveTensorTracker(TorchDispatchMode):
    """Tracks live storage bytes through dispatch. `phase` is set by the step (see step.train_step)."""

    def __init__(self):
        super().__init__()
        self.entries: dict[int, _Entry] = {}
        self.log: list[_Entry] = []
        self.seq = 0
        self.current = 0
        self.peak = 0
        self.peak_seq = 0
        self.peak_phase = "idle"
        self.phase = "idle"

    def set_phase(self, name: str) -> None:
        self.phase = name

    def register(self, tensors: Iterable[torch.Tensor], category: str) -> None:
        for t in tensors:
            self._track(t, category)

    def _track(self, t: torch.Tensor, category: str) -> None:
        st = t.untyped_storage()
        key = _storage_key(st)
        if key in self.entries:
            return
        self.seq += 1
        entry = _Entry(st.nbytes(), category, self.seq)
        self.entries[key] = entry
        self.log.append(entry)
        self.current += entry.nbytes
        if self.current > self.peak:
            self.peak, self.peak_seq, self.peak_phase = self.current, self.seq, self.phase
        weakref.finalize(st, self._release, key)

    def _release(self, key: int) -> None:
        entry = self.entries.pop(key, None)
        if entry is not None:
            self.seq += 1
            entry.died = self.seq
            self.current -= entry.nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._track(t, self.phase)
        return out

    def live_at_peak(self) -> list[tuple[int, _Entry]]:
        return [
            (i, e) for i, e in enumerate(self.log) if e.born <= self.peak_seq and (e.died < 0 or e.died > self.peak_seq)
        ]


def _storage_keys(tensors: Iterable[torch.Tensor]) -> set[int]:
    return {_storage_key(t.untyped_storage()) for t in tensors}


def track_peak(
    step: Callable[[Callable[[str], None]], object],
    params: list[torch.Tensor],
    optimizer: torch.optim.Optimizer | None,
    inputs: list[torch.Tensor],
    tracker: LiveTensorTracker | None = None,
    context: contextlib.AbstractContextManager | None = None,
) -> TrackedPeak:
    """Run `step(phase)` once under the tracker and return its peak of live tensor bytes.

    The parameters, existing gradients, optimizer state and inputs are registered first, so the
    peak counts everything a steady step holds. Gradients and optimizer state created during the step
    are recognised afterwards by identity. `tracker` may be a subclass (the estimate's fake-step tracker)
    and `context` is entered around the step with it.
    """
    tracker = tracker or LiveTensorTracker()
    tracker.register(params, "parameters")
    tracker.register([p.grad for p in params if p.grad is not None], "gradients")
    opt_state = _optimizer_tensors(optimizer)
    tracker.register(opt_state, "optimizer")
    tracker.register(inputs, "inputs")
    baseline = tracker.current
    with context or contextlib.nullcontext(), tracker:
        step(tracker.set_phase)
    grads = _storage_keys(p.grad for p in params if p.grad is not None)
    opt_keys = _storage_keys(_optimizer_tensors(optimizer))
    # Map log entries back to storage keys for identity checks on the survivors.
    key_of = {id(e): k for k, e in tracker.entries.items()}
    totals = dict.fromkeys(CATEGORIES, 0)
    for _, e in tracker.live_at_peak():
        cat = e.category
        if cat in ("forward", "backward", "optimizer", "idle"):
            key = key_of.get(id(e))
            if key in grads:
                cat = "gradients"
            elif key in opt_keys:
                cat = "optimizer"
            elif e.category == "forward":
                cat = "activations"
            else:
                cat = "temporaries"
        totals[cat] += e.nbytes
    breakdown = MemoryBreakdown(**{f"{k}_mib": v / MIB for k, v in totals.items()})
    return TrackedPeak(tracker.peak / MIB, baseline / MIB, breakdown, tracker.peak_phase)


def _optimizer_tensors(optimizer: torch.optim.Optimizer | None) -> list[torch.Tensor]:
    if optimizer is None:
        return []
    return [v for state in optimizer.state.values() for v in state.values() if isinstance(v, torch.Tensor)]


def track_step_memory(setup) -> TrackedPeak:
    """Tracked peak of one train step of a Setup (vfbench.step); run after warm-up for a steady step."""
    from vfbench.step import train_step

    params = list(setup.model.parameters()) + list(setup.model.buffers())
    return track_peak(lambda phase: train_step(setup, phase), params, setup.optimizer, [setup.video, setup.ids])


# ---------------------------------------------------------------- CUDA

@dataclass(frozen=True)
class CudaPeak:
    peak_allocated_mib: float
    peak_reserved_mib: float
    alloc_retries: int
    nvml_peak_used_mib: float | None  # device-wide (includes the CUDA context and other processes)


class NvmlSampler:
    """Polls NVML device `used` memory every few ms in a thread; None where NVML is unavailable."""

    def __init__(self, device_index: int, interval_s: float = 0.005):
        self.interval_s = interval_s
        self.peak: float | None = None
        self._stop = threading.Event()
        self._handle = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
        except Exception:
            self._handle = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            used = self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used / MIB
            self.peak = used if self.peak is None else max(self.peak, used)
            self._stop.wait(self.interval_s)

    def __enter__(self):
        if self._handle is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._handle is not None:
            self._stop.set()
            self._thread.join()


def cuda_peak(step: Callable[[], object], device: torch.device) -> CudaPeak:
    """Peak CUDA memory of one call of `step`, measured by the caching allocator's own statistics."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    retries0 = torch.cuda.memory_stats(device).get("num_alloc_retries", 0)
    index = device.index if device.index is not None else torch.cuda.current_device()
    with NvmlSampler(index) as sampler:
        step()
        torch.cuda.synchronize(device)
    stats = torch.cuda.memory_stats(device)
    return CudaPeak(
        torch.cuda.max_memory_allocated(device) / MIB,
        torch.cuda.max_memory_reserved(device) / MIB,
        int(stats.get("num_alloc_retries", 0) - retries0),
        sampler.peak,
    )


def peak_rss_mib() -> float:
    """Peak resident set size of this process over its life (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
