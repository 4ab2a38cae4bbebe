"""The environment a run was measured in, stored with every run (run.json) and shown by `vfbench env`."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

import vfbench
from vfbench.models.blocks import cpu_bf16_native


def git_commit() -> str:
    """HEAD of the checkout vfbench runs from, with "+dirty" when a tracked file outside results/ differs from it
    (results/ holds what runs write, not code: a run appending to a committed results file is still clean)."""
    root = Path(vfbench.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return out + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect_env(device: str) -> dict:
    env = {
        "vfbench": vfbench.__version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "hostname": platform.node(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_bf16_native": cpu_bf16_native(),
        "device": device,
        "cuda": torch.version.cuda,
        "gpu_name": None,
        "gpu_memory_mib": None,
        "gpu_driver": None,
        "cudnn": None,
        "pytorch_cuda_alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF", ""),
        "argv": " ".join(sys.argv),
    }
    try:
        import xformers

        env["xformers"] = xformers.__version__
    except Exception:
        env["xformers"] = None
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(
            gpu_name=props.name,
            gpu_memory_mib=props.total_memory // 2**20,
            cudnn=torch.backends.cudnn.version(),
        )
        try:
            import pynvml

            pynvml.nvmlInit()
            env["gpu_driver"] = pynvml.nvmlSystemGetDriverVersion()
        except Exception:
            pass
    return env
