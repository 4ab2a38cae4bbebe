"""`vfbench advise`: the options that fit a memory budget at a frame count, ranked, with one recommendation.

candidates.py (what is considered), throughput.py (step times), advise.py (fit, rank, recommend),
render.py (terminal text, advice.md and the report section from one set of blocks).
"""
