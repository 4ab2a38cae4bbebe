"""Root conftest: `pytest --benchmark` runs the method suite in benchmarks/; plain `pytest` runs tests/.

pytest-benchmark has no `--benchmark` flag of its own (only `--benchmark-*` options, which keep
working next to this one).
"""


def pytest_addoption(parser):
    parser.addoption(
        "--benchmark", action="store_true", default=False,
        help="run the vfbench method benchmarks in benchmarks/ (instead of the fast tests in tests/)",
    )


def pytest_ignore_collect(collection_path, config):
    parts = collection_path.parts
    if "benchmarks" in parts and not config.getoption("--benchmark"):
        return True
    if "tests" in parts and config.getoption("--benchmark"):
        return True
    return None
