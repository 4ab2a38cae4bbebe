"""The one registry of efficiency methods, one decorator, recipes, and composition with '+'.

A method is a class with a name, an axis and parameters with defaults. It acts through three hooks
(DESIGN.md "Methods change the model, not the harness"): `configure` changes the ModelSpec before the
build, `apply` wraps the built model, and the encoder's token hooks act inside forward. It declares
what it cannot do through `not_supported_reasons`. Third parties register through the
`vfbench.methods` entry-point group: each entry point names a module (imported) or a callable (called).
"""

from __future__ import annotations

import fnmatch
import importlib
import math
from dataclasses import dataclass
from importlib import metadata
from typing import ClassVar

from vfbench.errors import UserError, closest
from vfbench.spec import CellSpec, MethodCall, ModelSpec, parse_method_call, split_top_level

AXES = ("attention", "tuning", "tokens", "patching", "runtime")
BASELINE = {"attention": "joint", "tuning": "full"}
ENTRY_POINT_GROUP = "vfbench.methods"


class Method:
    """Base class. Subclasses set name, axis, summary, reference and `params` (name -> default)."""

    name: ClassVar[str]
    axis: ClassVar[str]
    summary: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    params: ClassVar[dict] = {}
    @classmethod
    def left_out_of_all(cls, device: str) -> str:
        """Why `--methods all` leaves this method out when its cells run on `device` ("" when it is in; device ""
        means not known yet): one whose cells cost far more than the step they measure is asked for by name, and
        a method named in --methods runs whatever this says."""
        return ""
    # Parameters added after labels were stored: left out of the label at their default, so an earlier label
    # (and every stored record) still names the same method.
    quiet: ClassVar[tuple] = ()

    def __init__(self, **values):
        unknown = sorted(set(values) - set(self.params))
        if unknown:
            accepted = ", ".join(self.params) or "no parameters"
            raise UserError(
                f"method {self.name!r} has no parameter {unknown[0]!r}{closest(unknown[0], self.params)}; accepted: {accepted}"
            )
        merged = dict(self.params)
        for key, value in values.items():
            default = merged[key]
            if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if default is not None and type(value) is not type(default):
                raise UserError(
                    f"method {self.name!r}: {key}={value!r} should be {type(default).__name__} like the default {default!r}"
                )
            if not _finite(value):  # 1e999 parses as inf: no method can use it, and labels cannot print it
                raise UserError(f"method {self.name!r}: {key}={value!r} is not a finite number; give a number such as "
                                f"{default!r}")
            merged[key] = value
        self.p = merged
        self.check()

    # -- hooks -------------------------------------------------------------------------
    def check(self) -> None:
        """Validate parameters; raise UserError with what is accepted."""

    def configure(self, spec: ModelSpec) -> ModelSpec:
        """Change the model spec before the build."""
        return spec

    def apply(self, model) -> None:
        """Change the built model in place (wrap layers, freeze parameters)."""

    def not_supported_reasons(self, cell: CellSpec, spec: ModelSpec) -> list[str]:
        """Why this method cannot run this cell on the composed spec (empty when it can)."""
        return []

    # -- identity ----------------------------------------------------------------------
    @property
    def call(self) -> MethodCall:
        shown = {k: v for k, v in self.p.items() if not (k in self.quiet and v == self.params[k])}
        return MethodCall(self.name, tuple(sorted(shown.items())))

    @property
    def label(self) -> str:
        return self.call.label


def _finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, tuple):
        return all(_finite(v) for v in value)
    return True


@dataclass(frozen=True)
class Recipe:
    name: str
    text: str
    summary: str
    reference: str


_METHODS: dict[str, type[Method]] = {}
_RECIPES: dict[str, Recipe] = {}
_loaded = False


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator. Duplicate names (methods or recipes) raise."""
    name = getattr(cls, "name", None)
    if not name or not isinstance(name, str):
        raise TypeError(f"{cls.__name__} needs a string 'name'")
    if getattr(cls, "axis", None) not in AXES:
        raise TypeError(f"method {name!r}: axis must be one of {AXES}, got {getattr(cls, 'axis', None)!r}")
    if name in _METHODS or name in _RECIPES:
        raise ValueError(f"method {name!r} is already registered")
    _METHODS[name] = cls
    return cls


def register_recipe(name: str, text: str, summary: str, reference: str = "") -> Recipe:
    if name in _METHODS or name in _RECIPES:
        raise ValueError(f"recipe {name!r} is already registered")
    recipe = Recipe(name, text, summary, reference)
    _RECIPES[name] = recipe
    return recipe


def unregister(name: str) -> None:
    """Remove a method or recipe (tests that register throwaway methods clean up with this)."""
    _METHODS.pop(name, None)
    _RECIPES.pop(name, None)


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    importlib.import_module("vfbench.methods")
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        if callable(obj) and not isinstance(obj, type):
            obj()


def method_classes() -> dict[str, type[Method]]:
    _ensure_loaded()
    return dict(_METHODS)


def recipes() -> dict[str, Recipe]:
    _ensure_loaded()
    return dict(_RECIPES)


def list_methods(pattern: str = "*", include_recipes: bool = True) -> list[str]:
    """Registered names matching a glob, methods in axis order then recipes."""
    _ensure_loaded()
    names = sorted(_METHODS, key=lambda n: (AXES.index(_METHODS[n].axis), n))
    if include_recipes:
        names += sorted(_RECIPES)
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def get_method(call: MethodCall | str) -> Method:
    """Instantiate a method from a call or a string; unknown names raise with the closest matches."""
    _ensure_loaded()
    if isinstance(call, str):
        call = parse_method_call(call)
    cls = _METHODS.get(call.name)
    if cls is None:
        known = list(_METHODS) + list(_RECIPES)
        raise UserError(f"unknown method {call.name!r}{closest(call.name, known)}; see 'vfbench list' for all methods")
    return cls(**dict(call.params))


STACKABLE = ("runtime",)  # axes whose methods stack (checkpoint+bf16+compile), each method at most once


@dataclass(frozen=True)
class Composition:
    """Methods composed with '+': at most one per axis, except runtime methods, which stack (each at most
    once); with a canonical label."""

    methods: tuple  # tuple[Method, ...] in axis order; stacked methods by name
    label: str

    def by_axis(self, axis: str) -> Method | None:
        return next((m for m in self.methods if m.axis == axis), None)

    def configure(self, spec: ModelSpec) -> ModelSpec:
        for m in self.methods:
            spec = m.configure(spec)
        return spec

    def apply(self, model) -> None:
        for m in self.methods:
            m.apply(model)

    def not_supported_reasons(self, cell: CellSpec, spec: ModelSpec) -> list[str]:
        reasons = []
        for m in self.methods:
            reasons += [f"{m.label}: {r}" for r in m.not_supported_reasons(cell, spec)]
        return reasons


def compose(text: str) -> Composition:
    """'joint + mask(ratio=0.75) + last_k(k=4)' or a recipe name -> Composition.

    Baseline methods (joint attention, full tuning) are filled in where an axis is left empty. Runtime
    methods stack, each once (a method named twice with different parameters is refused). The label
    lists the non-baseline methods in axis order (runtime ones by name) with every parameter spelt out,
    so equal cells get equal labels; a recipe alone, or a recipe with runtime methods only, keeps the
    recipe's name (longvivit+checkpoint).
    """
    _ensure_loaded()
    parts = [p.strip() for p in split_top_level(text, "+")]
    if not any(parts):
        raise UserError("empty method composition; write e.g. 'joint' or 'joint+mask(ratio=0.75)'")
    chosen: dict[str, Method] = {}  # axis -> method; for stacked axes "axis:name" -> method
    recipes_named = []
    for part in parts:
        if not part:
            raise UserError(f"empty term in {text!r}; terms are joined by single '+'")
        if part in _RECIPES:
            recipes_named.append(part)
            items = list(compose(_RECIPES[part].text).methods)
        else:
            items = [get_method(part)]
        for m in items:
            slot = f"{m.axis}:{m.name}" if m.axis in STACKABLE else m.axis
            prev = chosen.get(slot)
            if prev is not None and prev.label != m.label:
                rule = "compose each runtime method at most once" if m.axis in STACKABLE else "compose at most one method per axis"
                raise UserError(
                    f"conflicting methods in {text!r}: {prev.label!r} and {m.label!r} are both on the {m.axis} axis; {rule}"
                )
            chosen[slot] = m
    for axis, name in BASELINE.items():
        chosen.setdefault(axis, get_method(name))
    methods = tuple(sorted(chosen.values(), key=lambda m: (AXES.index(m.axis), m.name if m.axis in STACKABLE else "")))
    stacked = [m.label for m in methods if m.axis in STACKABLE]
    others = [p for p in parts if p not in recipes_named and get_method(p).axis not in STACKABLE]
    if len(recipes_named) == 1 and not others:
        label = "+".join([recipes_named[0]] + stacked)
    else:
        extra = [m.label for m in methods if m.name != BASELINE.get(m.axis)]
        label = "+".join(extra) if extra else BASELINE["attention"]
    return Composition(methods, label)


def expand_methods(text: str, device: str = "") -> list[Composition]:
    """--methods value -> compositions. 'all' = every recipe and every method alone on the baseline, but for
    those `left_out_of_all(device)` names a reason for (all_left_out); globs match registered names; commas
    separate entries. Duplicates (by label) are dropped."""
    return _expand(text, device)[0]


def all_left_out(text: str, device: str) -> dict[str, str]:
    """Method name -> why the 'all' in --methods left it out on `device`, for those not also named."""
    return _expand(text, device)[1]


def _expand(text: str, device: str) -> tuple[list[Composition], dict[str, str]]:
    _ensure_loaded()
    out: dict[str, Composition] = {}
    left_out: dict[str, str] = {}
    for entry in split_top_level(text, ","):
        entry = entry.strip()
        if entry == "all":
            names = []
            for n in list_methods("*"):
                why = "" if n in _RECIPES else _METHODS[n].left_out_of_all(device)
                if why:
                    left_out[n] = why
                else:
                    names.append(n)
        elif any(ch in entry for ch in "*?[") and "(" not in entry:
            names = list_methods(entry)
            if not names:
                raise UserError(f"no method matches {entry!r}; see 'vfbench list'")
        else:
            names = [entry]
        for name in names:
            comp = compose(name)
            out.setdefault(comp.label, comp)
    if not out:
        raise UserError("no methods given; try --methods all or --methods joint,mask(ratio=0.75)")
    # "all,bf16" runs bf16 alone after all: only what no entry brought back is left out
    return list(out.values()), {n: why for n, why in left_out.items() if compose(n).label not in out}
