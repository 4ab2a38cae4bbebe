"""The estimate and the accuracy cross into the record as frozen dataclasses whose flat keys are the
record's, unchanged: to_dict gives exactly those keys, from_dict reads them back."""

from __future__ import annotations

import dataclasses

import pytest

from vfbench.estimate.peak import estimate_before_run
from vfbench.estimate.result import CellEstimate
from vfbench.spec import CellSpec
from vfbench.tasks.result import AccuracyOutcome, GalleryScore, ProxyAccuracy, Stage1

ESTIMATE_KEYS = ["estimated_peak_mib", "analytic_peak_mib", "estimate_kind", "estimate_s"]


def test_the_run_estimate_has_the_record_keys_and_round_trips():
    pre = estimate_before_run(CellSpec("tiny", "joint", 4, 1, "fp32", "cpu"), skip_predicted_oom=False)
    assert pre.skip_reason == "" and list(pre.estimate.to_dict()) == ESTIMATE_KEYS
    assert pre.estimate.estimated_peak_mib > 0 and pre.estimate.estimate_kind != "failed"
    assert CellEstimate.from_dict(pre.estimate.to_dict()) == pre.estimate
    with pytest.raises(dataclasses.FrozenInstanceError):
        pre.estimate.estimate_kind = "other"


def test_a_failed_estimate_is_two_keys():
    failed = CellEstimate.failed(RuntimeError("no fake kernel for op"))
    assert failed.to_dict() == {"estimate_kind": "failed", "estimate_error": "RuntimeError: no fake kernel for op"}
    assert CellEstimate.from_dict(failed.to_dict()) == failed


def _accuracy(**changes) -> ProxyAccuracy:
    scores = tuple(GalleryScore(g, 0.5, 12, 1 / 6) for g in ("random", "temporal", "spatial", "shuffled", "single_frame"))
    base = ProxyAccuracy(scores, "stage1", 3, 1, None, None, 24, 2e-3, 0.05, 1.0, "cosine", 0.5, 1.0, 0.5, 0.9,
                         "proxy w32 d2 h2 patch8", "K3", Stage1(False, "abc", 2.0), "", None)
    return dataclasses.replace(base, **changes)


def test_accuracy_keys_short_to_long_only_when_set():
    plain, longer = _accuracy(), _accuracy(init="stage2 at 16 frames", short_frames=16, short_steps=250, short_cached=True)
    assert "acc_short_frames" not in plain.to_dict() and "acc_short_cached" not in plain.to_dict()
    flat = longer.to_dict()
    assert (flat["acc_short_frames"], flat["acc_short_steps"], flat["acc_short_cached"]) == (16, 250, True)
    for result in (plain, longer):
        assert ProxyAccuracy.from_dict(result.to_dict()) == result
        assert AccuracyOutcome.from_dict(result.to_dict()) == AccuracyOutcome(result)


@pytest.mark.parametrize("outcome, flat", [
    (AccuracyOutcome(reason="xformers is not importable"), {"acc_reason": "xformers is not importable"}),
    (AccuracyOutcome(error="Traceback ..."), {"acc_error": "Traceback ..."}),
])
def test_accuracy_failures_are_one_key(outcome, flat):
    assert outcome.to_dict() == flat and AccuracyOutcome.from_dict(flat) == outcome
