"""The one module that talks to NVML (package nvidia-ml-py)."""

from __future__ import annotations


def gpu_count() -> int:
    """How many NVIDIA GPUs this machine has; 0 without a driver or GPUs."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return 0
    try:
        return int(pynvml.nvmlDeviceGetCount())
    except Exception:
        return 0
    finally:
        pynvml.nvmlShutdown()
