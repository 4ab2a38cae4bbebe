"""Named model presets. vit-b/l/g follow the standard ViT widths (Dosovitskiy et al. 2021; ViT-g/14 from
Zhai et al. 2022); text towers follow PAPER.md §1 (BERT-medium with ViT-B, BERT-base with larger)."""

from __future__ import annotations

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
    ModelSpec("vit-g", width=1408, depth=40, heads=16, mlp_dim=6144, image_size=224, patch_size=14, embed_dim=1024, **_BERT_BASE),
)


def preset_names() -> list[str]:
    return [p.name for p in PRESETS]


def get_preset(name: str) -> ModelSpec:
    for p in PRESETS:
        if p.name == name:
            return p
    raise UserError(f"unknown model preset {name!r}{closest(name, preset_names())}; accepted: {', '.join(preset_names())}")
