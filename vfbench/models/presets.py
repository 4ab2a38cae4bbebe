"""Named model presets. vit-b/l/g follow the standard ViT widths (Dosovitskiy et al. 2021; ViT-g/14 from
Zhai et al. 2022); text towers follow arXiv:2312.07395 §3 (BERT-medium with ViT-B, BERT-base with larger).

BERT-medium as published (Turc et al. 2019: 8 layers, width 512, a 30,522-token vocabulary) has 41.4M
parameters, and our tower with its shapes 40.9M (no token-type table or pooler); the paper states 77M.
BERT-base is 110M (ours 108.5M); the paper states 117M. The `-paper` presets keep BERT's layer shapes and
size the vocabulary so the tower has the paper's stated count (101,101 and 41,562 tokens: the paper does
not give its vocabulary), at 256 px, the resolution the paper's token count implies (256 tokens per frame).

Any preset takes an image size suffix: `vit-b@256px` is vit-b at 256 x 256 pixels (`--image-size`).
"""

from __future__ import annotations

import dataclasses
import re

from vfbench.errors import UserError, closest
from vfbench.spec import ModelSpec

_BERT_MEDIUM = dict(text_width=512, text_depth=8, text_heads=8, text_mlp_dim=2048, vocab_size=30522, text_len=32)
_BERT_BASE = dict(text_width=768, text_depth=12, text_heads=12, text_mlp_dim=3072, vocab_size=30522, text_len=32)

PRESETS: tuple[ModelSpec, ...] = (
    # tiny: for tests. 32 px, 8 px patches -> 16 tokens per slice.
    ModelSpec(
        "tiny", width=32, depth=2, heads=2, mlp_dim=128, image_size=32, patch_size=8,
        text_width=32, text_depth=1, text_heads=2, text_mlp_dim=128, vocab_size=64, text_len=8, embed_dim=32,
    ),
    # small: the CPU default, sized so 16..256 frames runs in minutes on 2 cores.
    ModelSpec(
        "small", width=192, depth=4, heads=3, mlp_dim=768, image_size=64, patch_size=16,
        text_width=128, text_depth=2, text_heads=2, text_mlp_dim=512, vocab_size=1024, text_len=16, embed_dim=128,
    ),
    ModelSpec("vit-b", width=768, depth=12, heads=12, mlp_dim=3072, image_size=224, patch_size=16, embed_dim=512, **_BERT_MEDIUM),
    ModelSpec("vit-l", width=1024, depth=24, heads=16, mlp_dim=4096, image_size=224, patch_size=16, embed_dim=768, **_BERT_BASE),
    ModelSpec("vit-b-paper", width=768, depth=12, heads=12, mlp_dim=3072, image_size=256, patch_size=16, embed_dim=512,
              **{**_BERT_MEDIUM, "vocab_size": 101101}),
    ModelSpec("vit-l-paper", width=1024, depth=24, heads=16, mlp_dim=4096, image_size=256, patch_size=16, embed_dim=768,
              **{**_BERT_BASE, "vocab_size": 41562}),
    ModelSpec("vit-g", width=1408, depth=40, heads=16, mlp_dim=6144, image_size=224, patch_size=14, embed_dim=1024, **_BERT_BASE),
)


def preset_names() -> list[str]:
    return [p.name for p in PRESETS]


_SIZED = re.compile(r"^(.+)@(\d+)px$")


def get_preset(name: str) -> ModelSpec:
    """A preset by name; `NAME@<size>px` is that preset at another image size (a multiple of its patch size)."""
    sized = _SIZED.match(name)
    base = sized[1] if sized else name
    for p in PRESETS:
        if p.name == base:
            return with_image_size(p, int(sized[2])) if sized else p
    raise UserError(
        f"unknown model preset {name!r}{closest(base, preset_names())}; accepted: {', '.join(preset_names())}, "
        "each optionally with an image size, e.g. vit-b@256px"
    )


def with_image_size(spec: ModelSpec, pixels: int) -> ModelSpec:
    if pixels <= 0 or pixels % spec.patch_size:
        raise UserError(f"image size {pixels} px for {spec.name}: it must be a positive multiple of its patch size {spec.patch_size}")
    return dataclasses.replace(spec, image_size=pixels, name=f"{spec.name}@{pixels}px")


def sized_model(name: str, image_size) -> str:
    """The model name `--image-size` asks for: NAME@<size>px (validated), or NAME when no size is given."""
    if image_size in (None, "", 0):
        return name
    try:
        pixels = int(image_size)
    except (TypeError, ValueError):
        raise UserError(f"--image-size must be a whole number of pixels, e.g. 256; got {image_size!r}") from None
    base = get_preset(name)
    if _SIZED.match(name):
        raise UserError(f"model {name!r} already names an image size; drop --image-size or the @<size>px suffix")
    return with_image_size(base, pixels).name
