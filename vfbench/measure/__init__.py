"""Measurements: pure functions of (step function, inputs, settings). They never print."""
