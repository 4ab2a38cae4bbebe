"""The environment a run was measured in, stored with every run (run.json) and shown by `vfbench env`."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

import vfbench


def git_commit() -> str:
    root = Path(vfbench.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
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


def cpu_bf16_native() -> bool:
    """Whether this CPU computes bfloat16 in hardware: oneDNN's own check (x86 AVX-512 core or AVX-NE-CONVERT,
    Arm BF16), else the avx512_bf16 / amx_bf16 / bf16 flags of /proc/cpuinfo. Without it torch emulates bf16,
    and an autocast step runs 10-50x slower than fp32 (AVX2-only x86)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        pass
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = {f for line in text.splitlines() if line.startswith(("flags", "Features")) for f in line.split(":", 1)[1].split()}
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


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
