#!/usr/bin/env python
"""Times the README's quick-start command on a fresh clone (a benchmark, not a test).

Reads the command from README.md (the first ``bash`` block of "Quick start"), clones the
repository at HEAD into a temporary folder, runs each ``&&``-joined part there and reports
wall-clock seconds per part; for ``train.py`` also the time at which each stage finished
(from its ``stage N: done`` lines).

    python benchmarks/readme_timing.py [--repo .] [--keep /tmp/readme-clone]

Run it on an otherwise idle machine: every figure is a wall-clock time. The clone's setup
reuses pip's download cache and the tfds data already provisioned in ~/tensorflow_datasets.
"""

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_run_command(readme: Path) -> str:
    """The first fenced bash block after the "Quick start" heading."""
    text = readme.read_text()
    start = text.find("## Quick start")
    if start < 0:
        raise SystemExit(f"error: no '## Quick start' section in {readme}")
    match = re.search(r"```bash\n(.*?)\n```", text[start:], re.S)
    if not match:
        raise SystemExit(f"error: no bash block under '## Quick start' in {readme}")
    return match.group(1).strip()


def run_timed(command: str, cwd: Path) -> dict:
    """Runs one shell command, streaming its output, and notes when 'stage N: done' lines appear."""
    start = time.perf_counter()
    marks = {}
    process = subprocess.Popen(command, shell=True, cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, bufsize=1)
    tail = []
    for line in process.stdout:
        tail = (tail + [line])[-20:]
        found = re.match(r"(stage \d): done", line)
        if found:
            marks[found.group(1)] = round(time.perf_counter() - start, 1)
    if process.wait() != 0:
        sys.stderr.write("".join(tail))
        raise SystemExit(f"error: {command!r} exited with {process.returncode}")
    return {"command": command, "seconds": round(time.perf_counter() - start, 1), "stage_done_at": marks}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=ROOT, help="repository to clone (default: this one)")
    parser.add_argument("--keep", type=Path, default=None, help="clone here and keep it (default: a temp dir)")
    args = parser.parse_args(argv)

    command = readme_run_command(args.repo / "README.md")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=args.repo, capture_output=True,
                            text=True, check=True).stdout.strip()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="readme-timing-"))
    if workdir.exists() and any(workdir.iterdir()):
        raise SystemExit(f"error: {workdir} is not empty; give an empty or new folder to --keep")
    clone = workdir / "bal-tf"
    subprocess.run(["git", "clone", "-q", str(args.repo.resolve()), str(clone)], check=True)
    try:
        parts = [run_timed(part.strip(), clone) for part in command.split("&&")]
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps({
        "commit": commit, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "total_seconds": round(sum(p["seconds"] for p in parts), 1), "parts": parts,
    }, indent=2))


if __name__ == "__main__":
    main()
