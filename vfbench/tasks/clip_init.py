"""Initialisation from an image-text checkpoint: `--init open_clip:NAME:WEIGHTS`.

NAME is an open_clip model name (`ViT-B-16`, `ViT-B-16-quickgelu` for OpenAI's weights) or the path of a
JSON model config in open_clip's format (`{"embed_dim", "vision_cfg", "text_cfg"}`), so a tiny model
runs from the command line too. WEIGHTS is a local state-dict file in open_clip's checkpoint format (what
`open_clip.load_checkpoint` reads: a state dict, or a dict holding one under `state_dict`). Without WEIGHTS
(`open_clip:NAME`) the model is randomly initialised and the record says so (acc_init_weights = "random").

The weights are loaded into vfbench's own CLIP-shaped model (models/clip.py), never run through open_clip's
modules, so every method applies to them as to any vfbench model. The paper starts from an image-text model
and inflates it (arXiv:2312.07395 §3): the 2D patch kernel is repeated over the tubelet's t frames and
divided by t (`inflate_patch_kernel`, shared with the synthetic proxy), the temporal position table starts at
zero, and the class token's position goes to every slice's class token. Every other tensor is copied
by name (vision blocks, ln_pre, ln_post, the projection; the text tower; the temperature). A checkpoint
with tensors vfbench's model does not have (layer scale, attentional pooling, SigLIP's bias, ...) is refused
before any cell runs.

open_clip and PyAV are imported inside the functions that need them (the `video` extra).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from vfbench.errors import UserError
from vfbench.models.clip import QUICK_GELU
from vfbench.spec import ModelSpec
from vfbench.tasks.pretrain import inflate_patch_kernel, resample_grid

INIT_FORMAT = ("open_clip:NAME[:WEIGHTS] (NAME: an open_clip model name such as ViT-B-16, or a JSON model config file; "
               "WEIGHTS: a local state-dict file)")
EXTRA_HINT = 'pip install -e ".[video]"'

# Config keys the CLIP-shaped model reproduces (with the values it accepts where only some are).
_VISION_KEYS = {"image_size", "layers", "width", "head_width", "mlp_ratio", "patch_size", "pool_type", "final_ln_after_pool",
                "no_ln_pre", "ls_init_value", "patch_dropout", "attentional_pool", "output_tokens", "pos_embed_type", "act_kwargs",
                "norm_kwargs", "block_type", "qk_norm", "scaled_cosine_attn", "scale_heads", "scale_attn_inner", "scale_attn",
                "scale_fc", "timm_model_name"}
_TEXT_KEYS = {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio", "ls_init_value", "embed_cls", "pad_id",
              "no_causal_mask", "final_ln_after_pool", "pool_type", "proj_bias", "proj_type", "output_tokens", "hf_tokenizer_name",
              "tokenizer_mode", "tokenizer_kwargs", "eos_id", "act_kwargs", "norm_kwargs", "block_type", "qk_norm",
              "scaled_cosine_attn", "scale_heads", "scale_attn_inner", "scale_attn", "scale_fc", "hf_model_name"}
# key -> the values accepted (missing keys take open_clip's defaults, which are accepted)
_ACCEPTED = {"pool_type": ("tok", "argmax"), "no_ln_pre": (False,), "ls_init_value": (None,), "patch_dropout": (0, 0.0),
             "attentional_pool": (False,), "pos_embed_type": ("learnable",), "act_kwargs": (None,), "norm_kwargs": (None,),
             "block_type": (None, "default"), "qk_norm": (False,), "scaled_cosine_attn": (False,), "scale_heads": (False,),
             "scale_attn_inner": (False,), "scale_attn": (False,), "scale_fc": (False,), "timm_model_name": (None,),
             "embed_cls": (False,), "no_causal_mask": (False,), "proj_bias": (False,), "proj_type": ("linear",),
             "hf_model_name": (None,), "output_tokens": (False,)}
_TOP_KEYS = {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu", "custom_text"}


@dataclass(frozen=True)
class ClipInit:
    """A parsed `--init` value."""

    name: str  # open_clip model name, or the path of a JSON config
    weights: str  # local weights file; "" = random initialisation

    @property
    def label(self) -> str:
        return f"open_clip:{self.name}:{self.weights or 'random'}"


def parse_init(text: str) -> ClipInit:
    """`open_clip:NAME[:WEIGHTS]` -> ClipInit; anything else is a UserError naming the accepted form."""
    text = str(text or "").strip()
    kind, _, rest = text.partition(":")
    if kind != "open_clip" or not rest:
        raise UserError(f"cannot read --init {text!r}; accepted: {INIT_FORMAT}")
    name, _, weights = rest.partition(":")
    if not name.strip():
        raise UserError(f"--init {text!r} names no model; accepted: {INIT_FORMAT}")
    return ClipInit(name.strip(), weights.strip())


def require_video_extra(what: str) -> None:
    """One line naming the extra when open_clip or PyAV is missing."""
    missing = []
    for module in ("av", "open_clip"):
        try:
            __import__(module)
        except ImportError:
            missing.append({"av": "PyAV (av)", "open_clip": "open_clip (open_clip_torch)"}[module])
    if missing:
        raise UserError(f"{what} needs {' and '.join(missing)}, which are not installed; install them with {EXTRA_HINT}")


@contextlib.contextmanager
def _quiet_open_clip():
    """open_clip logs a warning for every model built without its pretrained tag; vfbench loads weights itself."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def model_config(init: ClipInit) -> tuple[str, dict]:
    """(open_clip model name, its config dict). A path to a JSON config is registered with open_clip first."""
    import open_clip

    name = init.name
    path = Path(name).expanduser()
    if name.endswith(".json") or path.is_file():
        if not path.is_file():
            raise UserError(f"--init: model config {name} does not exist; accepted: {INIT_FORMAT}")
        open_clip.add_model_config(path)
        name = path.stem
    cfg = open_clip.get_model_config(name)
    if not cfg:
        from vfbench.errors import closest

        names = open_clip.list_models()
        raise UserError(f"--init: unknown open_clip model {name!r}{closest(name, names)}; accepted: a name from "
                        f"open_clip.list_models() (e.g. ViT-B-16, ViT-B-16-quickgelu) or a JSON model config file")
    return name, cfg


def config_problems(cfg: dict) -> list[str]:
    """What in an open_clip config the CLIP-shaped model does not reproduce (empty when it reproduces it)."""
    out = [f"{k}" for k in sorted(set(cfg) - _TOP_KEYS)]
    if cfg.get("custom_text"):
        out.append("custom_text")
    for part, keys in (("vision_cfg", _VISION_KEYS), ("text_cfg", _TEXT_KEYS)):
        sub = cfg.get(part) or {}
        if not isinstance(sub, dict):
            out.append(part)
            continue
        out += [f"{part}.{k}" for k in sorted(set(sub) - keys)]
        out += [f"{part}.{k}={sub[k]!r}" for k in sorted(set(sub) & set(_ACCEPTED)) if sub[k] not in _ACCEPTED[k]]
        layers = sub.get("layers", 12)
        if not isinstance(layers, int):
            out.append(f"{part}.layers={layers!r} (a ResNet)")
        if isinstance(sub.get("image_size", 224), (list, tuple)):
            out.append(f"{part}.image_size={sub['image_size']!r} (not square)")
    if (cfg.get("text_cfg") or {}).get("pool_type", "argmax") != "argmax":
        out.append(f"text_cfg.pool_type={cfg['text_cfg']['pool_type']!r}")
    if (cfg.get("vision_cfg") or {}).get("pool_type", "tok") != "tok":
        out.append(f"vision_cfg.pool_type={cfg['vision_cfg']['pool_type']!r}")
    return out


def clip_spec(name: str, cfg: dict, tubelet: int = 2, image_size: int = 0) -> ModelSpec:
    """The vfbench ModelSpec of an open_clip ViT config: 2 x p x p tubelets (the paper's default), the
    config's image size unless `image_size` is given."""
    v, t = cfg["vision_cfg"], cfg["text_cfg"]
    width, text_width = v.get("width", 768), t.get("width", 512)
    size = image_size or v.get("image_size", 224)
    patch = v.get("patch_size", 16)
    if size % patch:
        raise UserError(f"image size {size} px is not a multiple of {name}'s patch size {patch}")
    spec = ModelSpec(
        f"open_clip:{name}" + (f"@{size}px" if image_size else ""), width=width, depth=v.get("layers", 12),
        heads=width // v.get("head_width", 64), mlp_dim=int(width * v.get("mlp_ratio", 4.0)), image_size=size,
        patch_size=patch, tubelet=tubelet, temporal_pos_len=8, text_width=text_width, text_depth=t.get("layers", 12),
        text_heads=t.get("heads", 8), text_mlp_dim=int(text_width * t.get("mlp_ratio", 4.0)),
        vocab_size=t.get("vocab_size", 49408), text_len=t.get("context_length", 77), embed_dim=cfg.get("embed_dim", 512),
    )
    return spec.with_options(**{QUICK_GELU: bool(cfg.get("quick_gelu", False))})


@dataclass
class LoadedClip:
    """An open_clip checkpoint read and checked: the state dict, the spec, tokenizer and pixel statistics."""

    init: ClipInit
    name: str  # open_clip's model name
    cfg: dict
    state: dict  # open_clip's state dict (CPU tensors)
    mean: tuple
    std: tuple

    def tokenizer(self):
        import open_clip

        return open_clip.get_tokenizer(self.name)


def load_open_clip(init: ClipInit) -> LoadedClip:
    """Build open_clip's model for NAME, load WEIGHTS into it strictly (a mismatch is a UserError), and
    return its state dict; refuses configs the CLIP-shaped model does not reproduce."""
    require_video_extra("--init open_clip:...")
    import open_clip

    name, cfg = model_config(init)
    problems = config_problems(cfg)
    if problems:
        raise UserError(f"--init: open_clip model {name!r} has {', '.join(problems[:4])}, which vfbench's CLIP-shaped model "
                        "does not reproduce; accepted: ViT CLIP models with class-token pooling and a causal text tower "
                        "(e.g. ViT-B-16, ViT-B-16-quickgelu, ViT-L-14)")
    weights = Path(init.weights).expanduser() if init.weights else None
    if weights is not None and not weights.is_file():
        raise UserError(f"--init: weights file {init.weights} does not exist; accepted: {INIT_FORMAT}")
    with _quiet_open_clip():
        model = open_clip.create_model(name, pretrained=None)
    if weights is not None:
        try:
            open_clip.load_checkpoint(model, str(weights))
        except Exception as exc:  # torch.load's and load_state_dict's errors: the file is not this model's
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise UserError(f"--init: weights {init.weights} do not load into open_clip model {name!r} ({first}); "
                            "give the weights of that model (a state-dict file in open_clip's format)") from None
    pre = open_clip.get_model_preprocess_cfg(model)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return LoadedClip(init, name, cfg, state, tuple(pre.get("mean", (0.5,) * 3)), tuple(pre.get("std", (0.5,) * 3)))


def _vision_map(depth: int) -> dict:
    out = {"visual.class_embedding": "video.patch.cls", "visual.ln_pre.weight": "video.patch.ln_pre.weight",
           "visual.ln_pre.bias": "video.patch.ln_pre.bias", "visual.ln_post.weight": "video.norm.weight",
           "visual.ln_post.bias": "video.norm.bias"}
    for i in range(depth):
        out.update(_block_map(f"visual.transformer.resblocks.{i}.", f"video.blocks.{i}."))
    return out


def _text_map(depth: int) -> dict:
    out = {"token_embedding.weight": "text.tok.weight", "positional_embedding": "text.pos", "ln_final.weight": "text.norm.weight",
           "ln_final.bias": "text.norm.bias", "logit_scale": "logit_scale"}
    for i in range(depth):
        out.update(_block_map(f"transformer.resblocks.{i}.", f"text.blocks.{i}."))
    return out


def _block_map(src: str, dst: str) -> dict:
    pairs = (("ln_1", "norm1"), ("attn.in_proj", "attn.qkv"), ("attn.out_proj", "attn.proj"), ("ln_2", "norm2"),
             ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2"))
    out = {}
    for a, b in pairs:
        if a == "attn.in_proj":
            out[f"{src}{a}_weight"], out[f"{src}{a}_bias"] = f"{dst}{b}.weight", f"{dst}{b}.bias"
        else:
            out[f"{src}{a}.weight"], out[f"{src}{a}.bias"] = f"{dst}{b}.weight", f"{dst}{b}.bias"
    return out


@torch.no_grad()
def load_into(model, state: dict) -> list[str]:
    """Load open_clip's state dict into a freshly built CLIP-shaped model (before methods wrap it), with
    the paper's inflation (arXiv:2312.07395 §3). Returns the names left at their init (the conv bias and
    the temporal table, both zero). Raises ValueError for a state dict that does not fit the model."""
    own = model.state_dict()
    spec = model.spec
    names = {**_vision_map(spec.depth), **_text_map(spec.text_depth)}
    special = {"visual.conv1.weight", "visual.positional_embedding", "visual.proj", "text_projection"}
    unknown = sorted(set(state) - set(names) - special)
    if unknown:
        raise ValueError(f"the checkpoint has tensors the CLIP-shaped model does not: {', '.join(unknown[:4])}")
    missing = sorted((set(names) | special) - set(state))
    if missing:
        raise ValueError(f"the checkpoint lacks {', '.join(missing[:4])}")
    for src, dst in names.items():
        value = state[src].reshape(own[dst].shape) if src == "logit_scale" else state[src]
        if value.shape != own[dst].shape:
            raise ValueError(f"{src} has shape {tuple(value.shape)}, the model's {dst} {tuple(own[dst].shape)}")
        own[dst].copy_(value)
    patch = own["video.patch.proj.weight"]
    own["video.patch.proj.weight"].copy_(inflate_patch_kernel(state["visual.conv1.weight"][:, :, None].float(), patch.shape))
    own["video.patch.proj.bias"].zero_()
    pos = state["visual.positional_embedding"]  # (1 + N, D): the class position, then the patch grid
    own["video.patch.pos_cls"].copy_(pos[0])
    space = own["video.patch.pos_space"]
    own["video.patch.pos_space"].copy_(pos[1:] if pos[1:].shape == space.shape else resample_grid(pos[1:], space.shape[0]))
    own["video.patch.pos_time"].zero_()
    own["video_proj.weight"].copy_(state["visual.proj"].T)
    own["text_proj.weight"].copy_(state["text_projection"].T)
    return ["video.patch.proj.bias", "video.patch.pos_time"]
