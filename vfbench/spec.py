"""Frozen specs at every boundary, and the parsers for what people type ("16..256", "lora(rank=8)").

Shapes are always named B, T, N, D (batch, frames, tokens per frame, width).
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field, fields
from typing import Any

from vfbench.errors import UserError, closest

SCHEMA_VERSION = 1
DTYPES = ("fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda")
# What `vfbench run` (and `vfbench estimate`, which plans such a run) uses per device when not told:
# (model preset, batch, dtype).
RUN_DEFAULTS = {"cuda": ("vit-b", 4, "bf16"), "cpu": ("small", 2, "fp32")}


class _Frozen:
    """to_dict / from_dict for flat frozen dataclasses (tuples round-trip through JSON lists)."""

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict):
        names = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise UserError(
                f"unknown {cls.__name__} field {unknown[0]!r}{closest(unknown[0], names)}; "
                f"accepted: {', '.join(names)}"
            )
        kwargs = {}
        for name, value in data.items():
            nested = names[name].default_factory
            if isinstance(value, dict) and isinstance(nested, type) and issubclass(nested, _Frozen):
                kwargs[name] = nested.from_dict(value)  # a nested frozen spec (e.g. CellSpec.measure)
            else:
                kwargs[name] = _tuplify(value)
        return cls(**kwargs)


def _plain(value):
    if isinstance(value, _Frozen):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _tuplify(value):
    if isinstance(value, list):
        return tuple(_tuplify(v) for v in value)
    return value


@dataclass(frozen=True)
class ModelSpec(_Frozen):
    """A video ViT plus its text tower. Methods change copies of it (`dataclasses.replace`) before the build."""

    name: str
    width: int
    depth: int
    heads: int
    mlp_dim: int
    image_size: int
    patch_size: int = 16
    tubelet: int = 2  # frames per tubelet: 2 x 16 x 16, as arXiv:2312.07395's coarse patches (4 frames, 32 px) are 2x its default
    channels: int = 3
    temporal_pos_len: int = 8  # learned temporal table length (16 frames / tubelet 2), interpolated to other T
    text_width: int = 512
    text_depth: int = 8
    text_heads: int = 8
    text_mlp_dim: int = 2048
    vocab_size: int = 30522
    text_len: int = 32
    embed_dim: int = 512  # shared contrastive embedding size
    # -- knobs that methods set (the baseline values reproduce ShortViViT: joint attention, full tuning) --
    attention: str = "joint"  # a video encoder registered in vfbench.models.registry.ENCODERS
    attn_kernel: str = "sdpa"  # sdpa | math | xformers
    checkpoint: bool = False
    precision: str = ""  # "" = the cell's dtype; "bf16" when the bf16 method is on
    patching: str = "tubelet"  # a patch embedding registered in vfbench.models.registry.PATCHES
    options: tuple = ()  # (key, value) pairs the registered encoder / patch embedding reads (spec.option)

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def tokens_per_frame(self) -> int:
        """N: spatial tokens per time slice, (H/p)(W/p)."""
        return (self.image_size // self.patch_size) ** 2

    def option(self, key: str, default=None):
        return dict(self.options).get(key, default)

    def with_options(self, **kv) -> "ModelSpec":
        merged = dict(self.options)
        merged.update(kv)
        return dataclasses.replace(self, options=tuple(sorted(merged.items())))


# ---------------------------------------------------------------- method strings

@dataclass(frozen=True)
class MethodCall(_Frozen):
    """One method with its parameters, e.g. mask(ratio=0.75). Params are sorted (key, value) pairs."""

    name: str
    params: tuple = ()

    @property
    def label(self) -> str:
        if not self.params:
            return self.name
        inner = ",".join(f"{k}={_fmt(v)}" for k, v in self.params)
        return f"{self.name}({inner})"


def _fmt(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value == int(value) and abs(value) < 1e6:
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ",".join(_fmt(v) for v in value) + "]"
    return repr(value)


_LITERAL_HELP = "write methods as name or name(key=value, ...) with numbers or words as values, joined by '+'"


def parse_method_call(text: str) -> MethodCall:
    """Parse 'lora(rank=8, alpha=16)' into a MethodCall. Literals only: nothing is ever evaluated."""
    text = text.strip()
    if not text:
        raise UserError(f"empty method name; {_LITERAL_HELP}")
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise UserError(f"cannot parse method {text!r}; {_LITERAL_HELP}") from None
    if isinstance(node, ast.Name):
        return MethodCall(node.id)
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        raise UserError(f"cannot parse method {text!r}; {_LITERAL_HELP}")
    if node.args:
        raise UserError(f"method {text!r} has a positional argument; {_LITERAL_HELP}")
    params = {}
    for kw in node.keywords:
        if kw.arg is None:
            raise UserError(f"method {text!r}: '**' is not accepted; {_LITERAL_HELP}")
        params[kw.arg] = _literal(kw.value, text)
    return MethodCall(node.func.id, tuple(sorted(params.items())))


def _literal(node: ast.AST, text: str):
    if isinstance(node, ast.Name):  # bare words are strings: attn_kernel(kind=math)
        return node.id
    if isinstance(node, (ast.List, ast.Tuple)):
        return tuple(_literal(e, text) for e in node.elts)
    try:
        value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        raise UserError(f"method {text!r}: values must be literals; {_LITERAL_HELP}") from None
    if isinstance(value, (int, float, str, bool)):
        return value
    raise UserError(f"method {text!r}: value {value!r} is not a number, word or list; {_LITERAL_HELP}")


def split_top_level(text: str, sep: str) -> list[str]:
    """Split on sep outside parentheses and brackets."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


# ---------------------------------------------------------------- frames and sizes

_RANGE = re.compile(r"^\s*(\d+)\s*\.\.\s*(\d+)\s*(?::\s*(\d+)\s*)?$")


def parse_frames(text: str | int | list) -> tuple[int, ...]:
    """'16..256' doubles (16, 32, ..., 256); '16..64:16' steps; '8,16,24' lists. Sorted, unique."""
    accepted = "accepted: '16..256' (doubling), '16..64:16' (a step), '8,16,32' (a list) of positive integers"
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if isinstance(text, (list, tuple)):
        text = ",".join(str(t) for t in text)
    if not isinstance(text, str):
        raise UserError(f"frames must be text or integers, got {text!r}; {accepted}")
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        m = _RANGE.match(part)
        if m:
            lo, hi, step = int(m[1]), int(m[2]), m[3]
            if lo <= 0 or hi < lo or (step is not None and int(step) <= 0):
                raise UserError(f"bad frame range {part!r}: need 0 < start <= end and step > 0; {accepted}")
            if step is None:
                t = lo
                while t <= hi:
                    out.add(t)
                    t *= 2
            else:
                out.update(range(lo, hi + 1, int(step)))
        elif re.fullmatch(r"\d+", part):
            if int(part) <= 0:
                raise UserError(f"frame count {part!r} must be positive; {accepted}")
            out.add(int(part))
        else:
            raise UserError(f"cannot read frames {part!r}; {accepted}")
    if len(out) > 4096:
        raise UserError(f"frames {text!r} expands to {len(out)} values; keep it under 4096")
    return tuple(sorted(out))


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str) -> tuple[int, str]:
    """'16GiB' -> (17179869184, '16 GiB (binary, 2^30 bytes)'); '16GB' is decimal. Returns bytes and the reading used."""
    m = _SIZE.match(str(text))
    if not m or not m[2]:
        raise UserError(f"cannot read memory size {text!r}; accepted: a number with a unit, e.g. 16GiB (2^30 bytes) or 16GB (10^9 bytes)")
    unit = m[2].lower()
    nbytes = int(float(m[1]) * _UNITS[unit])
    if nbytes <= 0:
        raise UserError(f"memory size {text!r} must be positive")
    kind = "binary units, powers of 1024" if "i" in unit else "decimal units, powers of 1000"
    return nbytes, f"{m[1]} {m[2]} ({kind}: {nbytes:,} bytes)"


# ---------------------------------------------------------------- cells and sweeps

@dataclass(frozen=True)
class MeasureSettings(_Frozen):
    """How hard to measure. Defaults differ by device (see `for_device`)."""

    warmup_steps: int = 2
    min_repeats: int = 3
    min_seconds: float = 1.0
    max_repeats: int = 50
    max_seconds: float = 60.0

    @classmethod
    def for_device(cls, device: str) -> "MeasureSettings":
        if device == "cuda":
            return cls(warmup_steps=3, min_repeats=10, min_seconds=2.0, max_repeats=200, max_seconds=60.0)
        return cls()


@dataclass(frozen=True)
class CellSpec(_Frozen):
    """One thing to measure. `method` is the canonical composed label (see registry.compose)."""

    model: str
    method: str
    frames: int
    batch: int
    dtype: str = "fp32"
    device: str = "cpu"
    seed: int = 0
    measure: MeasureSettings = field(default_factory=MeasureSettings)
    fault: str = ""  # test hook only (vfbench/faults.py); never set by the CLI
    # How a cell is run, not what is measured, so neither enters `key`:
    estimate: bool = True  # record the FakeTensorMode estimate (estimate/peak.py) before measuring
    skip_predicted_oom: bool = True  # record `skipped` when the estimate exceeds the device's free memory
    accuracy: bool = False  # also train and evaluate the proxy task (tasks/proxy.py) and record acc_* keys
    task: str = ""  # the accuracy task: "" = the synthetic proxy; "video-folder:PATH" (tasks/real_eval.py)
    init: str = ""  # with a video-folder task: the image-text model it starts from, "open_clip:NAME[:WEIGHTS]"

    @property
    def key(self) -> str:
        """Stable id of what is measured (not how hard): model, method, frames, batch, dtype, device, seed."""
        ident = {k: getattr(self, k) for k in ("model", "method", "frames", "batch", "dtype", "device", "seed")}
        blob = json.dumps(ident, sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:12]


def to_jsonable(obj: Any):
    if dataclasses.is_dataclass(obj):
        return obj.to_dict()
    raise TypeError(type(obj))
