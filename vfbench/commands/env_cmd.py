from __future__ import annotations

import json


def add_parser(sub):
    p = sub.add_parser("env", help="show the environment measurements would be recorded in")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    p.add_argument("--json", action="store_true", help="print JSON")
    return p


def run(args) -> int:
    from vfbench.measure.env import collect_env
    from vfbench.step import resolve_device

    env = collect_env(resolve_device(args.device))
    env.pop("argv", None)
    if args.json:
        print(json.dumps(env, indent=2))
    else:
        width = max(map(len, env))
        for k, v in env.items():
            print(f"{k:<{width}}  {v}")
    return 0
