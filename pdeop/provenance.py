"""Where an artefact was made: the git commit of the checkout pdeop runs from, and the machine.

A copy of a checkout made without its .git (rsync to a cluster, the working tree a lent GPU machine receives)
still names its commit when the checkout wrote a source manifest (``write_manifest``) that travelled with it:
the commit and the git hash of each tracked file, checked against the copy's files when a run asks."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ".source-manifest"  # beside pdeop/, ignored by git


# What a run writes into the checkout and is not code: the leaderboard's records and report. A table run
# writes the first cell's record before training the second, which must not count as uncommitted code.
OUTPUTS = ("experiments/leaderboard/records", "experiments/leaderboard/README.md",
           "experiments/leaderboard/results.csv")


def git_output(*args: str, check: bool = True) -> str:
    """What ``git <args>`` prints, run in the checkout."""
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=check).stdout


def git_commit() -> str:
    """HEAD of the checkout, with ``-dirty`` when tracked files other than ``OUTPUTS`` differ from it; outside
    git, the source manifest's commit checked the same way (``manifest_commit``)."""
    try:
        commit = git_output("rev-parse", "HEAD").strip()
        dirty = git_output("status", "--porcelain", "--untracked-files=no", "--", ".",
                           *(f":(exclude){path}" for path in OUTPUTS), check=False).strip()
    except (OSError, subprocess.CalledProcessError):
        return manifest_commit()
    return commit + ("-dirty" if dirty else "")


def is_output(path: str) -> bool:
    """Whether ``path`` (relative to the checkout, with /) is one of the run's own ``OUTPUTS``."""
    return any(path == output or path.startswith(output + "/") for output in OUTPUTS)


def blob_hash(path: Path) -> str | None:
    """The git object name of the file at ``path`` (what ``git hash-object`` prints), None if there is none."""
    try:
        content = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
    except OSError:
        return None
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def write_manifest(path: Path) -> None:
    """Write HEAD's commit and its tracked files' git hashes as JSON to ``path``, for ``manifest_commit``."""
    files = {}
    for entry in git_output("ls-tree", "-r", "-z", "HEAD").split("\0"):
        if entry:
            info, name = entry.split("\t", 1)
            kind, digest = info.split()[1:]
            if kind == "blob":  # a submodule is a commit, not a file of this tree
                files[name] = digest
    commit = git_output("rev-parse", "HEAD").strip()
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps({"commit": commit, "files": files}, indent=0))
    temporary.replace(path)


def manifest_commit() -> str:
    """The commit of ``ROOT/MANIFEST``, with ``-dirty`` when a file it lists, other than ``OUTPUTS``, is missing or
    differs; ``unknown`` without a readable manifest."""
    try:
        manifest = json.loads((ROOT / MANIFEST).read_text())
        commit, files = str(manifest["commit"]), dict(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"
    dirty = any(blob_hash(ROOT / name) != digest for name, digest in files.items() if not is_output(name))
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
