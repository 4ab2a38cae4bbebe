"""Sweep YAML files: every `vfbench run` option can live there; the command line wins.

Keys are the long option names with '_' or '-' (frames, methods, run_id / run-id, ...). Loaded with
yaml.safe_load only. Unknown keys are refused with the closest valid key.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from vfbench.errors import UserError, closest


def load_config(path: str, accepted: list[str]) -> dict:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UserError(f"cannot read config {path}: {exc.strerror}; give a readable YAML file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where else ""
        raise UserError(f"config {path} is not valid YAML{at}; write 'key: value' lines, e.g. 'frames: 16..256'") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config {path} must be a mapping of option: value, got {type(data).__name__}")
    out = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in accepted:
            raise UserError(
                f"config {path}: unknown key {key!r}{closest(name, accepted)}; accepted: {', '.join(sorted(accepted))}"
            )
        out[name] = value
    return out
