"""The layer order of the package: a module imports only from its own layer or the layers below it.

Lowest first. A module belongs to the layer of the longest entry that names it or a package above it,
so `vfbench.report.build` is in "report assembly" while the rest of `vfbench.report` is in "report".
tests/test_layers.py parses every module (function-level imports included) and fails on an edge that
runs upward.

  base             the package, errors, specs (cell, model, measure settings), the Record and its schema,
                   fault injection, config files: plain data and parsing, no torch model code
  store            the append-only run store (read and write); the report reads runs through it
  registry         @register_method, compose, the public API for methods
  sweep            what a user asked for (SweepSpec), expanded into cells through the registry
  models           encoders, patch embeddings, blocks, presets
  methods          the built-in methods (register themselves; act on models)
  step             the one measured train step (builds the model, applies the composition)
  measure          memory, time, FLOPs, environment, the analytic memory model
  estimate         FakeTensorMode traces of the step, budgets, grids of estimates
  tasks            the proxy-accuracy task (synthetic data, pretraining, evaluation)
  runner           cells, executors, isolation, Slurm, the sweep loop
  report           loading runs, metrics, tables, plots, documents
  advice / claims  which recipe fits a budget; the paper's claims checked over a grid (read runs via report)
  report assembly  report.md / report.html, which include the advice section when advise wrote one
  commands         the CLI subcommands
  cli              argument parsing and dispatch

One edge is declared rather than imported: the registry loads the built-in methods by name
(importlib.import_module("vfbench.methods")), exactly as it loads third-party methods from the
`vfbench.methods` entry-point group; methods register themselves into it, so the registry never names
a method.
"""

from __future__ import annotations

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("vfbench", "vfbench.errors", "vfbench.spec", "vfbench.record", "vfbench.schema", "vfbench.faults",
              "vfbench.config", "vfbench.layers")),
    ("store", ("vfbench.store",)),
    ("registry", ("vfbench.registry",)),
    ("sweep", ("vfbench.sweep_spec",)),
    ("models", ("vfbench.models",)),
    ("methods", ("vfbench.methods",)),
    ("step", ("vfbench.step",)),
    ("measure", ("vfbench.measure",)),
    ("estimate", ("vfbench.estimate",)),
    ("tasks", ("vfbench.tasks",)),
    ("runner", ("vfbench.runner",)),
    ("report", ("vfbench.report",)),
    ("advice / claims", ("vfbench.advice", "vfbench.claims")),
    ("report assembly", ("vfbench.report.build", "vfbench.report.advice_section")),
    ("commands", ("vfbench.commands",)),
    ("cli", ("vfbench.cli", "vfbench.__main__")),
)

# (importer, imported) edges made by name at run time, not by an import statement: see the docstring.
DECLARED_LOADS = (("vfbench.registry", "vfbench.methods"),)


def layer_of(module: str) -> int | None:
    """Index in LAYERS of the layer `module` belongs to (the longest matching entry), or None."""
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            exact_package = p == "vfbench"
            if (module == p or (not exact_package and module.startswith(p + "."))) and len(p) > best_len:
                best, best_len = i, len(p)
    return best
