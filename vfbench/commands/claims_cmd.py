"""`vfbench claims`: the paper's claims checked under the settings that decide them (vfbench/claims/).

Memory claims come from FakeTensorMode estimates of the CUDA training step (the engine of `vfbench
estimate`), so they run on a CPU-only machine, on any machine the same way; measuring the same cells on a
GPU is `vfbench run` with the cells each row's command names. Accuracy claims are read from the proxy
findings (results/proxy-honesty/findings.json).
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

from vfbench.errors import UserError

DEFAULT_MODEL = "vit-b-paper"
BATCHES = "1,2,4,8,16,32"
PROXY_RESULTS = "results/proxy-honesty/findings.json"


def add_parser(sub):
    p = sub.add_parser(
        "claims", help="check the paper's claims over the settings that decide them (kernel, batch, model size)",
        description="Evaluate each claim of arXiv:2312.07395 vfbench can check, over attention kernel (sdpa, math), "
        "per-device batch and model size, and print a reproduction table with a verdict and the region where it holds.",
    )
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"the ViT-B preset of the paper's testbed (default: {DEFAULT_MODEL}: 256 px, the paper's 77M text "
                   "tower); its ViT-L counterpart (vit-b -> vit-l in the name) is used for the scaling claims")
    p.add_argument("--large-model", help="the ViT-L preset for the scaling claims (default: --model with vit-b -> vit-l)")
    p.add_argument("--image-size", help="frame size in pixels for both models (default: the presets')")
    p.add_argument("--batches", default=BATCHES, help=f"per-device batches to evaluate (default: {BATCHES})")
    p.add_argument("--out", help="folder to write claims.md and claims.jsonl into (default: print only)")
    p.add_argument("--proxy-results", default=PROXY_RESULTS,
                   help=f"the proxy findings file the accuracy rows are read from (default: {PROXY_RESULTS})")
    p.add_argument("--jobs", help="worker processes for the estimates (default: one per CPU core, at most 4)")
    p.add_argument("--json", action="store_true", help="one JSON object per claim instead of the table")
    return p


def grid_settings(args):
    from vfbench.claims.grid import GridSettings
    from vfbench.models.presets import get_preset, sized_model
    from vfbench.spec import parse_frames

    base = sized_model(args.model, args.image_size)
    get_preset(base)
    if args.large_model is None and not args.model.startswith("vit-b"):
        raise UserError(f"--model {args.model!r} has no ViT-L counterpart by name; pass --large-model, or use the paper's "
                        "testbed: vit-b or vit-b-paper (optionally @<size>px)")
    large = sized_model(args.large_model or args.model.replace("vit-b", "vit-l", 1), args.image_size)
    get_preset(large)
    try:
        batches = parse_frames(args.batches)
    except UserError:
        raise UserError(f"--batches {args.batches!r}: give positive integers, e.g. 1,2,4,8,16,32") from None
    return GridSettings(models=(("base", base), ("large", large)), batches=batches)


def command_of(args) -> str:
    """The command line that reproduces this table (options that differ from their defaults)."""
    parts = ["vfbench", "claims"]
    for flag, value, default in (("--model", args.model, DEFAULT_MODEL), ("--large-model", args.large_model, None),
                                 ("--image-size", args.image_size, None), ("--batches", args.batches, BATCHES),
                                 ("--proxy-results", args.proxy_results, PROXY_RESULTS), ("--out", args.out, None)):
        if value is not None and value != default:
            parts += [flag, str(value)]
    return shlex.join(parts)


def run(args) -> int:
    from vfbench.claims.check import check_claims
    from vfbench.claims.table import json_lines, markdown, terminal
    from vfbench.commands.estimate_cmd import _int

    g = grid_settings(args)
    jobs = _int("jobs", args.jobs) if args.jobs is not None else max(1, min(4, os.cpu_count() or 1))
    t0 = time.perf_counter()
    rows = check_claims(g, Path(args.proxy_results), jobs)
    seconds = time.perf_counter() - t0
    command = command_of(args)
    from vfbench import __version__
    from vfbench.measure.env import git_commit

    header = [
        f"vfbench {__version__}, git {git_commit() or 'unknown'}; {seconds:.0f} s wall with {jobs} process(es).",
        "",
        f"Models: {g.model('base')} (the paper's ViT-B testbed) and {g.model('large')}; {g.dtype}, the {g.device} training "
        "step estimated under FakeTensorMode (the engine of `vfbench estimate`; no GPU needed). The paper states "
        "neither its attention kernel nor its per-device batch, so each memory claim is evaluated at every "
        f"combination of kernel ({', '.join(g.kernels)}) and batch ({', '.join(map(str, g.batches))}), and the "
        "verdict says where it holds. 16 GB is read as 16 GiB.",
        "",
        "Verdicts: reproduced = holds at every setting tried; holds only under = holds where the next column "
        "says; contradicted = holds at none; cannot check = vfbench cannot compute it here.",
    ]
    if args.out:
        out = Path(args.out)
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / "claims.md").write_text(markdown(rows, command, header))
            (out / "claims.jsonl").write_text(json_lines(rows) + "\n")
        except OSError as exc:
            raise UserError(f"cannot write into {out}: {exc.strerror}; pass a writable --out folder") from None
    print(json_lines(rows) if args.json else terminal(rows))
    print(f"vfbench claims: {len(rows)} claims in {seconds:.0f} s{f'; written to {args.out}/claims.md' if args.out else ''}",
          file=sys.stderr)
    return 0
