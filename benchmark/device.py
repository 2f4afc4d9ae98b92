"""The device a command runs on when the user names none: one rule, for every command.

Torch is the authority (a CPU-only build on a GPU machine sees no GPU), so a command that trains
or curates asks it. ``validate`` must not import torch, seconds and a gigabyte, only to pick the
device its budget estimate is for; there the same question is answered from what the system
shows: an NVIDIA driver loaded, and ``CUDA_VISIBLE_DEVICES`` not hiding every GPU. Whatever that
answer, ``run`` checks the budget again on its real device before any work.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")  # present while the kernel driver is loaded


def default_device(*, import_torch: bool = True) -> str:
    """``"cuda"`` where a GPU is usable, else ``"cpu"``; with ``import_torch=False``, decided
    without importing torch unless it is already loaded."""
    if import_torch or "torch" in sys.modules:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return "cpu"
    return "cuda" if NVIDIA_DRIVER.exists() else "cpu"
