"""The CUDA measurement paths: `cuda_peak`, the NVML sampler, CUDA-event step timing and MFU.

On CPU, fakes stand in for the CUDA runtime: an allocator whose work lands only at a synchronisation (as
kernels queued on a stream do), a pynvml module, and events on a fake GPU timeline. They check what the
code promises (the peak is the step's own, read after the step's work has finished; events are read after
one synchronisation; MFU = flops / (seconds x peak)). The `gpu` tests run the same checks on a real device.
"""

import sys
import threading
import time
import types

import pytest
import torch

from vfbench.measure.flops import PEAK_FLOPS, counted_flops, device_peak_flops, model_flops_utilization
from vfbench.measure.memory import MIB, NvmlSampler, cuda_peak
from vfbench.measure.timing import time_steps


class FakeAllocator:
    """torch.cuda's memory statistics for one device. `alloc`/`free` are queued like kernels on a stream and
    take effect at `synchronize`, so a reading taken before the step's work has finished misses it."""

    def __init__(self, current_device: int = 0):
        self.allocated = self.peak = 0
        self.reserved = self.peak_reserved = 0
        self.retries = 0
        self.queue = []
        self.calls = []
        self.current = current_device

    def alloc(self, nbytes):
        self.queue.append(nbytes)

    def free(self, nbytes):
        self.queue.append(-nbytes)

    def synchronize(self, device=None):
        self.calls.append("synchronize")
        for n in self.queue:
            self.allocated += n
            self.peak = max(self.peak, self.allocated)
            self.reserved = max(self.reserved, self.allocated)  # the caching allocator keeps what it reserved
            self.peak_reserved = max(self.peak_reserved, self.reserved)
        self.queue.clear()

    def reset_peak_memory_stats(self, device=None):
        self.calls.append("reset")
        self.peak, self.peak_reserved = self.allocated, self.reserved

    def install(self, monkeypatch):
        monkeypatch.setattr(torch.cuda, "synchronize", self.synchronize)
        monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", self.reset_peak_memory_stats)
        monkeypatch.setattr(torch.cuda, "memory_stats", lambda device=None: {"num_alloc_retries": self.retries})
        monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: self.peak)
        monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: self.peak_reserved)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: self.current)
        return self


def fake_pynvml(used_mib, polled=None, fail=False):
    """A pynvml module whose device `used` memory is `used_mib()`; `polled` (an Event) is set at each poll."""
    mod = types.ModuleType("pynvml")
    mod.handles = []

    def init():
        if fail:
            raise RuntimeError("NVML Shared Library Not Found")

    def handle(index):
        mod.handles.append(index)
        return ("handle", index)

    def memory_info(h):
        used = used_mib() * MIB
        if polled is not None:
            polled.set()
        return types.SimpleNamespace(used=used, total=80 * 1024 * MIB, free=0)

    mod.nvmlInit, mod.nvmlDeviceGetHandleByIndex, mod.nvmlDeviceGetMemoryInfo = init, handle, memory_info
    return mod


def test_cuda_peak_is_the_steps_own_max_read_after_its_work(monkeypatch):
    gpu = FakeAllocator().install(monkeypatch)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # NVML absent: its figure is None, the rest still measured
    gpu.alloc(100 * MIB)
    gpu.alloc(900 * MIB)
    gpu.free(900 * MIB)  # an earlier, larger peak that must not leak into the step's
    gpu.retries = 5

    def step():
        assert gpu.calls[-2:] == ["synchronize", "reset"]  # the earlier work drained, then the peak reset
        gpu.alloc(300 * MIB)
        gpu.alloc(50 * MIB)
        gpu.free(300 * MIB)
        gpu.retries += 2

    cp = cuda_peak(step, torch.device("cuda", 0))
    assert cp.peak_allocated_mib == pytest.approx(450)  # 100 live + 350 at the step's high point
    assert cp.peak_reserved_mib == pytest.approx(1000)  # reserved memory the cache kept from before
    assert cp.alloc_retries == 2
    assert cp.nvml_peak_used_mib is None


def test_nvml_peak_is_the_device_wide_max_during_the_step(monkeypatch):
    gpu = FakeAllocator(current_device=3).install(monkeypatch)
    context_mib = 500  # the CUDA context and other processes: NVML sees them, the allocator does not
    polled = threading.Event()
    nvml = fake_pynvml(lambda: context_mib + gpu.allocated / MIB, polled)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)

    def step():
        gpu.alloc(700 * MIB)
        gpu.synchronize()
        polled.clear()
        assert polled.wait(10), "the sampler never polled during the step"
        polled.clear()
        assert polled.wait(10)  # a poll that began after the allocation landed
        gpu.free(700 * MIB)

    cp = cuda_peak(step, torch.device("cuda"))
    assert nvml.handles == [3]  # a bare "cuda" device is the current one
    assert cp.nvml_peak_used_mib == pytest.approx(context_mib + 700)
    assert cp.peak_allocated_mib == pytest.approx(700)


def test_nvml_sampler_stops_with_the_block_and_is_none_without_nvml(monkeypatch):
    polls = []
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(lambda: polls.append(1) or 42.0))
    with NvmlSampler(1, interval_s=0.001) as sampler:
        deadline = time.monotonic() + 10
        while not polls and time.monotonic() < deadline:
            time.sleep(0.001)
    after = len(polls)
    time.sleep(0.05)
    assert sampler.peak == 42.0 and len(polls) == after  # the thread ended with the block
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(lambda: 1.0, fail=True))
    with NvmlSampler(0) as sampler:
        pass
    assert sampler.peak is None


class FakeGpu:
    """A stream on a fake timeline: `step` queues `durations_ms` of work; host calls return at once. Events
    record the stream's time at their place in the queue and, like CUDA's, can be read only once completed."""

    def __init__(self, durations_ms):
        self.durations_ms = list(durations_ms)
        self.steps = 0
        self.queued_ms = 0.0  # stream time at the tail of the queue
        self.done_ms = 0.0  # stream time the host has synchronised up to
        self.log = []
        gpu = self

        class Event:
            def __init__(self, enable_timing=False):
                assert enable_timing
                self.at = None

            def record(self, stream=None):
                self.at = gpu.queued_ms
                gpu.log.append("record")

            def elapsed_time(self, end):
                if max(self.at, end.at) > gpu.done_ms:
                    raise RuntimeError("CUDA error: device not ready")
                return end.at - self.at

        self.Event = Event

    def step(self):
        self.queued_ms += self.durations_ms[self.steps % len(self.durations_ms)]
        self.steps += 1

    def synchronize(self, device=None):
        self.done_ms = self.queued_ms
        self.log.append("synchronize")

    def install(self, monkeypatch):
        monkeypatch.setattr(torch.cuda, "Event", self.Event)
        monkeypatch.setattr(torch.cuda, "synchronize", self.synchronize)
        return self


def test_cuda_timing_reads_gpu_time_after_one_synchronisation(monkeypatch):
    gpu = FakeGpu([500.0, 10.0, 20.0, 30.0]).install(monkeypatch)
    host = iter(range(1000))  # the host clock: loop bookkeeping only, one 'second' per reading

    stats = time_steps(gpu.step, warmup=1, min_repeats=3, min_seconds=0.0, max_repeats=3, max_seconds=1e9,
                       cuda_device=torch.device("cuda", 0), clock=lambda: float(next(host)), sampler=lambda: None)
    assert stats.step_repeats == 3 and gpu.steps == 4
    assert stats.step_ms_median == pytest.approx(20.0)  # the GPU's durations; the 500-ms warm-up is not timed
    assert (stats.step_ms_p10, stats.step_ms_p90) == (pytest.approx(12.0), pytest.approx(28.0))
    first_record = gpu.log.index("record")
    timed = gpu.log[first_record:]
    assert gpu.log[:first_record] == ["synchronize"]  # the warm-up drained before the first event
    assert timed.count("synchronize") == 1 and timed[-1] == "synchronize"  # no per-step stall; one at the end


def test_mfu_is_flops_over_time_times_peak():
    h100 = PEAK_FLOPS["H100"]["bf16"]
    assert model_flops_utilization(0.4 * h100 * 0.25, 0.25, h100) == pytest.approx(0.4)
    assert model_flops_utilization(3e12, 2.0, 6e12) == pytest.approx(0.25)
    assert model_flops_utilization(1e12, 1.0, None) is None  # no tabulated peak: no MFU, not a guess
    assert model_flops_utilization(1e12, 0.0, 1e12) is None
    assert device_peak_flops("NVIDIA H100 80GB HBM3", "bf16") == h100
    assert device_peak_flops("NVIDIA A100-SXM4-80GB", "fp32") == PEAK_FLOPS["A100"]["fp32"]  # not the A10's
    assert device_peak_flops("NVIDIA A10", "bf16") == PEAK_FLOPS["A10"]["bf16"]
    assert device_peak_flops("Tesla T4", "bf16") is None


# ---------------------------------------------------------------- on a real device

@pytest.mark.gpu
def test_cuda_peak_on_device():
    dev = torch.device("cuda", torch.cuda.current_device())
    big = torch.empty(512 * MIB, dtype=torch.uint8, device=dev)  # an earlier peak the step must not report
    del big
    base = torch.cuda.memory_allocated(dev) / MIB

    def step():
        x = torch.ones(256 * MIB, dtype=torch.uint8, device=dev)
        return int(x[-1])

    cp = cuda_peak(step, dev)
    assert cp.peak_allocated_mib == pytest.approx(base + 256, abs=2)
    assert cp.peak_reserved_mib >= cp.peak_allocated_mib
    assert cp.alloc_retries == 0
    assert cp.nvml_peak_used_mib is None or cp.nvml_peak_used_mib >= cp.peak_allocated_mib


@pytest.mark.gpu
def test_cuda_event_timing_on_device_measures_gpu_work():
    dev = torch.device("cuda", torch.cuda.current_device())
    cycles = 50_000_000  # tens of ms of spinning on the GPU; the host returns from _sleep at once

    def step():
        torch.cuda._sleep(cycles)

    step()
    torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    step()
    torch.cuda.synchronize(dev)
    synced_ms = (time.perf_counter() - t0) * 1e3
    stats = time_steps(step, warmup=1, min_repeats=5, min_seconds=0.0, max_repeats=5, max_seconds=60, cuda_device=dev)
    assert stats.step_repeats == 5
    assert 0.5 * synced_ms < stats.step_ms_median < 1.5 * synced_ms  # GPU time, not the host's enqueue time


@pytest.mark.gpu
def test_mfu_on_device_is_a_share_of_the_peak():
    dev = torch.device("cuda", torch.cuda.current_device())
    a = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16)

    def step():
        return a @ a

    flops, _ = counted_flops(step)
    assert flops == 2 * 4096**3
    stats = time_steps(step, warmup=3, min_repeats=20, min_seconds=0.0, max_repeats=20, max_seconds=60, cuda_device=dev)
    peak = device_peak_flops(torch.cuda.get_device_name(dev), "bf16")
    mfu = model_flops_utilization(flops, stats.step_ms_median / 1e3, peak)
    if peak is None:
        assert mfu is None
    else:
        assert 0.05 < mfu <= 1.0  # a large bf16 matmul reaches a real share of the dense peak, never more
