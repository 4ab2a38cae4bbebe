"""What the report says about accuracy measured on a video folder (`--task video-folder:PATH`) rather
than the synthetic proxy: the data, the image-text model the cells started from, the held-out pairs and
chance level, the budget, and the files skipped as missing or unreadable (tasks/real_eval.py keys)."""

from __future__ import annotations

from typing import Optional

from vfbench.report.document import Note
from vfbench.report.load import Run


def video_task_note(run: Run) -> Optional[Note]:
    """One note for the accuracy section, or None when no record was measured on a video folder."""
    recs = [r for r in run.records if str(r.extra.get("acc_task", "")).startswith("video-folder:")]
    if not recs:
        return None
    r = recs[0].extra
    skipped = max((x.extra.get("acc_skipped_missing", 0) + x.extra.get("acc_skipped_unreadable", 0)) for x in recs)
    text = (f"Accuracy in {len(recs)} of {len(run.records)} cells is retrieval on real clips ({r['acc_task']}), not the "
            f"synthetic proxy: each cell starts from {r.get('acc_init', '?')} (weights: {r.get('acc_init_weights', '?')}), "
            f"inflated to {r.get('acc_model', '?')} (arXiv:2312.07395 §3), trains its methods contrastively for "
            f"{r.get('acc_steps', '?')} steps of {r.get('acc_batch', '?')} clips (lr {r.get('acc_lr', '?')}, "
            f"{r.get('acc_fps', '?')} frames/s) on {r.get('acc_train_videos', '?')} videos, and is evaluated on "
            f"{r.get('acc_eval_pairs', '?')} held-out pairs (chance R@1 {r.get('acc_chance_r1_t2v', '?')}); "
            "acc_init_r* are the same recalls before training. Memory and time are measured on the run's model preset.")
    if skipped:
        text += (f" Skipped videos (most in one cell): {skipped}, e.g. {recs[0].extra.get('acc_skipped_examples', '')}; "
                 "see acc_skipped_* in the records.")
    return Note(text)
