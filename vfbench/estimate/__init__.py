"""Estimation: a cell's peak memory without running it (FakeTensorMode traces of the one train step), above
measure/ (whose trackers it reuses) and step (whose function it traces)."""
