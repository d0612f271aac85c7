"""Where a result was measured: the code's commit and the machine, stamped into raw results."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path


@functools.lru_cache(maxsize=None)
def source_commit() -> str:
    """The short commit of the checkout this package runs from, ``+dirty`` with local changes to
    tracked files; ``unknown`` outside a git checkout (an installed copy)."""
    root = Path(__file__).resolve().parents[1]

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine() -> str:
    gpu = "GPU" if Path("/dev/nvidia0").exists() else "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {gpu}"


def stamp() -> dict:
    return {"commit": source_commit(), "machine": machine()}
