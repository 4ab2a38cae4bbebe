import os

# Cells in tests run tiny models: one thread is faster than two there, and spinning OpenMP threads on a
# shared 2-core machine can stall a step for seconds. Tests check behaviour, not speed.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from vfbench.spec import CellSpec, MeasureSettings

# Fast measurement settings for tests: correctness, not timing quality.
FAST = MeasureSettings(warmup_steps=2, min_repeats=2, min_seconds=0.0, max_repeats=3, max_seconds=5.0)


@pytest.fixture
def fast_settings():
    return FAST


@pytest.fixture
def tiny_cell():
    def make(method="joint", frames=4, batch=2, fault=""):
        return CellSpec("tiny", method, frames, batch, "fp32", "cpu", 0, FAST, fault)

    return make


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _no_fault_plan(monkeypatch):
    monkeypatch.delenv("VFBENCH_TEST_FAULTS", raising=False)
    monkeypatch.setenv("CI", os.environ.get("CI", "true"))
