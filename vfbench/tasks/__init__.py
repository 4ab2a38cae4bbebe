"""Proxy-accuracy task: a synthetic long-video retrieval task (synthetic.py, galleries.py) and the
two-stage proxy training with its evaluation (pretrain.py, proxy.py, evaluate.py)."""

from vfbench.sweep_spec import CPU_SUBSET_NOTE, cpu_default_subset
from vfbench.tasks.pretrain import default_cache_dir
from vfbench.tasks.proxy import ProxyBudget, ProxyUnsupported, default_budget, measure_accuracy
from vfbench.tasks.synthetic import TaskConfig

__all__ = [
    "CPU_SUBSET_NOTE", "ProxyBudget", "ProxyUnsupported", "TaskConfig", "cpu_default_subset",
    "default_budget", "default_cache_dir", "measure_accuracy",
]
