"""Named compositions of methods, one per axis (DESIGN.md "recipe")."""

from __future__ import annotations

from vfbench.registry import register_recipe

register_recipe(
    "shortvivit", "joint+full",
    "joint space-time attention, full fine-tuning (ShortViViT)", "arXiv:2312.07395 §3 (stage 1a), §4",
)
register_recipe(
    "effshortvivit", "joint+mask(ratio=0.75)",
    "ShortViViT with 75% train-time random masking (EffShortViViT)", "arXiv:2312.07395 §4, Table 2",
)
register_recipe(
    "longvivit", "joint+mask(ratio=0.75)+last_k(k=4)",
    "75% masking and only the last 4 layers tuned (LongViViT short->long)", "arXiv:2312.07395, Fig. 5 (stage 1b)",
)
register_recipe(
    "imagevit", "frame_avg",
    "per-frame image ViT with temporal averaging (ImageViT)", "arXiv:2312.07395 §4, Table 2",
)
register_recipe(
    "fst_temporal", "factorized_self_attention+temporal_only",
    "factorised self-attention with only its temporal attention trained (LiteVL-style)", "arXiv:2312.07395 §4",
)
