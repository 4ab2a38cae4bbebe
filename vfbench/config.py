"""Sweep YAML files: every `vfbench run` option can live there; the command line wins.

Keys are the long option names with '_' or '-' (frames, methods, run_id / run-id, ...). Loaded with
yaml's safe loader, with anchors and aliases refused (a few nested aliases expand into gigabytes: the
"billion laughs") and the file capped at MAX_BYTES. Unknown keys are refused with the closest valid key.
Values are checked by the command (runner/numbers.py), the same way as on the command line.
"""

from __future__ import annotations


import yaml

from vfbench.errors import UserError, closest

MAX_BYTES = 1 << 20  # a sweep file is a few lines


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise UserError(f"config {self.name}: YAML aliases (*name) are not accepted (line {mark.line + 1}); "
                            "write each value out")
        return super().compose_node(parent, index)


def load_config(path: str, accepted: list[str]) -> dict:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UserError(f"cannot read config {path}: {exc.strerror}; give a readable YAML file") from None
    if len(raw) > MAX_BYTES:
        raise UserError(f"config {path} is larger than {MAX_BYTES >> 20} MiB; a sweep file is a few 'key: value' lines")
    try:
        loader = _NoAliasLoader(raw.decode("utf-8", errors="replace"))
        loader.name = path
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
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
