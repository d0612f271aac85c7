"""Where a result was measured: the code's commit and the machine, stamped into raw results."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path


# git pathspecs left out of the dirty check (see checkout_commit)
IGNORED_BY_DIRTY_CHECK = [":(exclude)docs"]


@functools.lru_cache(maxsize=None)
def source_commit() -> str:
    """The short commit of the checkout this package runs from (``checkout_commit``)."""
    return checkout_commit(Path(__file__).resolve().parents[1])


def checkout_commit(root: Path) -> str:
    """The short commit of the git checkout at ``root``, ``+dirty`` with local changes to
    tracked files outside ``docs/``; ``unknown`` outside a git checkout (an installed copy).

    ``docs/`` holds results and prose, which change no measurement: a sweep that appends its
    records to a committed results file (``benchmarks/protocols.py --archive``) must not stamp its
    own later runs dirty."""

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", *IGNORED_BY_DIRTY_CHECK)
    return commit + ("+dirty" if changed else "")


def cpu_kernels() -> str:
    """The CPU's widest vector set oneDNN can use, and its limit if ``ONEDNN_MAX_CPU_ISA`` sets
    one: the same training runs 2-4x slower on AVX2 than on AVX-512, so every timing says which."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        flags = []
    kind = "AVX-512" if "avx512f" in flags else "AVX2, no AVX-512" if "avx2" in flags else "no AVX2"
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return kind + (f"; oneDNN limited to {limit}" if limit else "")


def machine() -> str:
    gpu = "GPU" if Path("/dev/nvidia0").exists() else "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} CPUs ({cpu_kernels()}), {gpu}"


def stamp() -> dict:
    return {"commit": source_commit(), "machine": machine()}
