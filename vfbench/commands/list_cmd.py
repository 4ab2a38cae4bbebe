from __future__ import annotations

from tabulate import tabulate


def add_parser(sub):
    p = sub.add_parser("list", help="list methods, recipes and model presets")
    p.add_argument("pattern", nargs="?", default="*", help="glob over method names (default: all)")
    p.add_argument("--axis", help="only methods on this axis: attention, tuning, tokens, patching, runtime, recipe")
    p.add_argument("--models", action="store_true", help="list model presets with their parameter counts")
    return p


def run(args) -> int:
    if args.models:
        return _models()
    from vfbench.errors import UserError
    from vfbench.errors import closest
    from vfbench.registry import AXES, list_methods, method_classes, recipes

    names = list_methods(args.pattern)
    if args.axis:
        axes = (*AXES, "recipe")
        if args.axis not in axes:
            raise UserError(f"unknown axis {args.axis!r}{closest(args.axis, axes)}; accepted: {', '.join(axes)}")
        names = [n for n in names if getattr(method_classes().get(n), "axis", "recipe") == args.axis]
    if not names:
        raise UserError(f"no method matches {args.pattern!r}; run 'vfbench list' to see them all")
    classes, recs = method_classes(), recipes()
    rows = []
    for n in names:
        if n in classes:
            c = classes[n]
            params = ", ".join(f"{k}={v}" for k, v in c.params.items()) or "-"
            rows.append([n, c.axis, params, c.summary, c.reference])
        else:
            r = recs[n]
            rows.append([n, "recipe", r.text, r.summary, r.reference])
    print(tabulate(rows, headers=["method", "axis", "parameters (defaults)", "what it is", "reference"]))
    return 0


def _models() -> int:
    from vfbench.models import param_counts_without_memory
    from vfbench.models.presets import PRESETS

    rows = []
    for spec in PRESETS:
        counts = param_counts_without_memory(spec)
        rows.append([
            spec.name, spec.width, spec.depth, spec.heads, spec.mlp_dim, f"{spec.image_size} px",
            f"{spec.tubelet}x{spec.patch_size}x{spec.patch_size}", f"{counts['video'] / 1e6:.2f}M",
            f"{counts['text'] / 1e6:.2f}M", f"{counts['total'] / 1e6:.2f}M",
        ])
    print(tabulate(rows, headers=["preset", "width", "depth", "heads", "mlp", "image", "tubelet", "video params", "text params", "total"]))
    return 0
