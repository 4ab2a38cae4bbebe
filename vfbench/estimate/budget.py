"""The largest frame count whose estimated peak fits a memory budget ("how many frames fit?").

Searched over every multiple of the frame step (the tubelet depth), not only the frames a sweep lists:
memory is monotone in T, so the answer is the bracket lo < hi = lo + step with peak(lo) <= budget <
peak(hi), each end traced. The search doubles from what is known until it brackets the budget, then
narrows the bracket with guesses from a quadratic through the nearest traced points (activations are
linear in T with flash attention, quadratic with the math kernel), probing each guess and the frame
count one step above it; when a guess does not halve the bracket it bisects instead.

A pure function of `peak_mib(frames)`, so it is tested with a formula instead of a traced step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Fit:
    largest_frames: int | None  # None: not even `step` frames fit
    peak_mib: float | None  # at largest_frames
    next_frames: int | None  # largest_frames + step, which does not fit (None when capped)
    next_peak_mib: float | None
    capped: bool  # every multiple of step up to max_frames fits
    probes: int  # peaks the search computed beyond the known ones


def _quadratic_guess(known: dict[int, float], budget: float, lo: int, hi: int, step: int) -> int | None:
    """Largest multiple of step in (lo, hi) whose interpolated peak fits, from the quadratic through the
    three known points nearest the bracket (a line with two)."""
    pts = sorted(known.items(), key=lambda kv: (kv[0] < lo) * (lo - kv[0]) + (kv[0] > hi) * (kv[0] - hi))[:3]
    xs = [float(x) for x, _ in pts]

    def model(t: float) -> float:  # Lagrange form; exact for the memory's own polynomial in T
        total = 0.0
        for i, (xi, yi) in enumerate(pts):
            term = yi
            for j, xj in enumerate(xs):
                if j != i:
                    term *= (t - xj) / (xi - xj)
            total += term
        return total

    guess = None
    first, last = lo // step + 1, (hi - 1) // step
    a, b = first, last
    while a <= b:  # binary search on the model (monotone over the bracket in practice)
        mid = (a + b) // 2
        if model(mid * step) <= budget:
            guess, a = mid * step, mid + 1
        else:
            b = mid - 1
    return guess if guess is not None else first * step


def largest_fitting(
    peak_mib: Callable[[int], float], budget_mib: float, step: int, max_frames: int, known: dict[int, float] | None = None
) -> Fit:
    """The largest multiple of `step` (<= max_frames) whose peak fits `budget_mib`. `known` holds peaks
    already computed (e.g. the listed frames of a sweep); only multiples of step up to the cap are used."""
    top = max_frames // step * step
    known = {t: p for t, p in (known or {}).items() if t % step == 0 and 0 < t <= top}
    probes = 0

    def peak(t: int) -> float:
        nonlocal probes
        if t not in known:
            known[t] = peak_mib(t)
            probes += 1
        return known[t]

    fitting = [t for t, p in known.items() if p <= budget_mib]
    lo = max(fitting, default=None)
    if lo is None:
        if peak(step) > budget_mib:
            return Fit(None, None, step, known[step], False, probes)
        lo = step
    above = [t for t, p in known.items() if t > lo and p > budget_mib]
    hi = min(above, default=None)
    while hi is None:  # double until the budget is bracketed (or every frame count up to the cap fits)
        if lo >= top:
            return Fit(lo, known[lo], None, None, True, probes)
        t = min(top, max(lo + step, (2 * lo) // step * step))
        if peak(t) <= budget_mib:
            lo = t
        else:
            hi = t
    while hi - lo > step:
        width = hi - lo
        g = min(max(_quadratic_guess(known, budget_mib, lo, hi, step), lo + step), hi - step)
        for t in (g, g + step):
            if lo < t < hi:
                if peak(t) <= budget_mib:
                    lo = t
                else:
                    hi = t
                    break
        if hi - lo > width // 2 and hi - lo > step:  # the guess did not halve the bracket: bisect once
            mid = (lo + hi) // 2 // step * step
            if lo < mid < hi:
                if peak(mid) <= budget_mib:
                    lo = mid
                else:
                    hi = mid
    return Fit(lo, known[lo], hi, known[hi], False, probes)
