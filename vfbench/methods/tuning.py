"""The tuning axis: which parameters train.

Unless a method says otherwise, only the video tower is narrowed: the text tower, the two projections
and the temperature always train (the contrastive objective needs them; arXiv:2312.07395 §3).
"""

from __future__ import annotations

from vfbench.errors import UserError
from vfbench.models.peft import add_adapters, add_lora, freeze_video_backbone
from vfbench.registry import Method, register_method
from vfbench.spec import CellSpec, ModelSpec


@register_method
class Full(Method):
    """Full fine-tuning: every parameter trains (the paper's baseline, arXiv:2312.07395 §4)."""

    name = "full"
    axis = "tuning"
    summary = "every parameter trainable (the baseline)"
    reference = "arXiv:2312.07395 §4"


@register_method
class AdapterTuning(Method):
    """Houlsby MLP adapters after the feed-forward block of every video layer (arXiv:2312.07395 §4; Houlsby et al.
    2019): h + W_up·GELU(W_down·h) in Block.post_mlp, W_up zero-initialised so training starts from the
    frozen model. The video backbone is frozen; the patch embedding (conv and position tables) trains as
    in the paper ("the new 3D patch conv is always trained"), and so do the text tower, the projections
    and the temperature. Gradients still flow through the whole depth (vfbench's analytic model, after Korthikanti et al. 2022).

    `bottleneck` [R: Appendix A not available]: a value <= 1 is a fraction of the width D (default 0.25,
    AIM's ratio, bobochow/adapt-image-models vitclip_aim.py), a value > 1 an absolute size (e.g. 64).
    """

    name = "adapter"
    axis = "tuning"
    summary = "Houlsby bottleneck adapters after every MLP, backbone frozen"
    reference = "arXiv:2312.07395 §4; Houlsby et al. 2019; AIM (Yang et al. 2023) bottleneck 0.25·D"
    params = {"bottleneck": 0.25}

    def check(self) -> None:
        if self.p["bottleneck"] <= 0:
            raise UserError(f"adapter: bottleneck={self.p['bottleneck']} must be > 0 (a fraction of D if <= 1, else a size)")

    def size(self, width: int) -> int:
        b = self.p["bottleneck"]
        return max(1, round(b * width)) if b <= 1 else int(b)

    def apply(self, model) -> None:
        video = model.video
        add_adapters(video.blocks, video.width, self.size(video.width))
        freeze_video_backbone(video, keep=[blk.post_mlp for blk in video.blocks])


@register_method
class LoRATuning(Method):
    """LoRA on every video layer's attention (qkv, out proj; FST's temporal attention too) and MLP (fc1,
    fc2): W x + (α/r)·B A x, A Kaiming-uniform, B zero, W frozen (arXiv:2312.07395 §4; Hu et al. 2021,
    microsoft/LoRA loralib/layers.py). The patch embedding trains as in the paper; text tower,
    projections and temperature train. Rank and α are [R] (paper: unknown; r = 4–16 suggested)."""

    name = "lora"
    axis = "tuning"
    summary = "low-rank updates on attention and MLP linears, backbone frozen"
    reference = "arXiv:2312.07395 §4; Hu et al. 2021, LoRA, microsoft/LoRA loralib"
    params = {"rank": 8, "alpha": 16.0}

    def check(self) -> None:
        if self.p["rank"] < 1:
            raise UserError(f"lora: rank={self.p['rank']} must be >= 1")

    def apply(self, model) -> None:
        video = model.video
        freeze_video_backbone(video)
        add_lora(video.blocks, self.p["rank"], self.p["alpha"])  # new A, B are trainable


@register_method
class TemporalOnly(Method):
    """Factorised temporal adaptation, LiteVL-style (arXiv:2312.07395 §4; Chen et al. 2022, LiteVL): with
    factorized_self_attention, train only the temporal MSA, its LayerNorm and the gates α, plus the patch
    embedding (the paper always trains the new 3D patch conv), text tower, projections and temperature.
    Needs factorized self-attention (compose it, or use the fst_temporal recipe)."""

    name = "temporal_only"
    axis = "tuning"
    summary = "train only FST's temporal attention and gates (needs factorized_self_attention)"
    reference = "arXiv:2312.07395 §4; Chen et al. 2022, LiteVL"

    def not_supported_reasons(self, cell: CellSpec, spec: ModelSpec) -> list[str]:
        if spec.attention != "factorized_self_attention":
            return [f"temporal-only tuning needs factorized_self_attention (got {spec.attention}); try the fst_temporal recipe"]
        return []

    def apply(self, model) -> None:
        video = model.video
        freeze_video_backbone(video)
        for p in video.temporal_parameters():
            p.requires_grad_(True)


@register_method
class LastK(Method):
    """Layer freezing for short->long (arXiv:2312.07395 §4; Fig. 5, stage 1b): freeze the first L−k layers and run
    them without autograd (`no_grad_prefix`), so they store no activations; tune the last k layers, the
    final norm and readout, plus text tower, projections and temperature. The patch embedding and
    position tables are frozen too: nothing before layer L−k can receive a gradient.

    k >= L is clamped to L (every layer trains, the patch embedding stays frozen), so the recipe's k=4
    still runs on shallow presets. L counts every block of the video tower (for the factorised encoder,
    spatial then temporal layers).
    """

    name = "last_k"
    axis = "tuning"
    summary = "tune only the last k layers; the frozen prefix runs without autograd"
    reference = "arXiv:2312.07395 §4; Fig. 5 (LongViViT: last 4 layers tuned)"
    params = {"k": 4}

    def check(self) -> None:
        if self.p["k"] < 1:
            raise UserError(f"last_k: k={self.p['k']} must be >= 1 (the number of last layers that train)")

    def apply(self, model) -> None:
        video = model.video
        video.freeze_prefix(max(len(video.blocks) - self.p["k"], 0))
