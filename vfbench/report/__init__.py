"""Tables, plots and reports built from a run's store (never re-running anything)."""
