"""Every built-in method registers itself on import of its module; importing this package loads them all."""

from vfbench.methods import attention, masking, patching, recipes, runtime, tuning  # noqa: F401
