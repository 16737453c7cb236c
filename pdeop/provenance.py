"""Where an artefact was made: the git commit of the checkout pdeop runs from, and the machine."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


# What a run writes into the checkout and is not code: the leaderboard's records and report. A table run
# writes the first cell's record before training the second, which must not count as uncommitted code.
OUTPUTS = ("experiments/leaderboard/records", "experiments/leaderboard/README.md",
           "experiments/leaderboard/results.csv")


def git_commit() -> str:
    """HEAD of the checkout, with ``-dirty`` when tracked files other than ``OUTPUTS`` differ from it;
    ``unknown`` outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                *(f":(exclude){path}" for path in OUTPUTS)], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def hardware() -> str:
    """The accelerator this process trains on, or the CPU: its model, the instruction set torch's kernels use
    (which decides their speed, and for some their rounding) and its core count."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return (f"CPU {cpu_model()} ({platform.machine()}, {torch.backends.cpu.get_cpu_capability()}), "
            f"{os.cpu_count()} cores")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows of it."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
