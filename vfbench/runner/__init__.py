"""Running cells: the cell function, process isolation, executors and the results store."""
