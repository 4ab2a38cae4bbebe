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


def write_plugin(root, package: str, method: str) -> None:
    """A third party's installed package under `root` (put it on sys.path): it registers `method` (axis
    runtime) through the vfbench.methods entry-point group, as `pip install` would leave it."""
    pkg = root / package
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from vfbench.registry import Method, register_method\n\n\n"
        "@register_method\n"
        "class ThirdPartyMethod(Method):\n"
        f"    name = {method!r}\n"
        "    axis = 'runtime'\n"
        "    summary = \"a third party's method\"\n"
    )
    dist = root / f"{package}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package.replace('_', '-')}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[vfbench.methods]\nplugin = {package}\n")
