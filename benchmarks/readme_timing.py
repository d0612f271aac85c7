#!/usr/bin/env python
"""Times the README's quick-start command on a fresh clone (a benchmark, not a test).

Reads the command from README.md (the first ``bash`` block of "Quick start"), clones the
repository at HEAD into a temporary folder, runs each ``&&``-joined part there and reports
wall-clock seconds per part; for ``train.py`` also the time at which each stage finished
(from its ``stage N: done`` lines).

    python benchmarks/readme_timing.py --out docs/results/readme_timing.json --conditions idle
    python benchmarks/readme_timing.py --render docs/results/readme_timing.json   # the README's table

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


# What each part of the command prints (the README's table; the times come from the raw file).
PRINTS = {
    "setup": "`setup: ...` lines, `mnist: ready in ~/tensorflow_datasets`",
    "stage 1": "the preset it chose, then Keras' progress bar per epoch with the held-out accuracy; "
               "`stage 1: done.` with the test accuracy",
    "stage 2": "feature-extraction progress bars (training and held-out splits, selection families), the GAN's "
               "progress bar per epoch (losses, D's means, `selection_criterion`), `stage 2: done. selected epoch N`",
    "evaluate": "test and OOD feature extraction, then the results table of every method (also in "
                "`runs/mnist/eval/`: results.{md,csv,json}, scores.npz, ROC and histogram PNGs)",
}


def minutes(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole} s" if whole < 60 else f"{whole // 60} min {whole % 60} s"


def render(path: Path) -> str:
    """The README's sentence and table, from the raw file only."""
    raw = json.loads(Path(path).read_text())
    rows = []
    for part in raw["parts"]:
        command = part["command"]
        if "setup.sh" in command:
            rows.append(("`scripts/setup.sh`", PRINTS["setup"], part["seconds"]))
        elif "train.py" in command:
            done = part["stage_done_at"]
            rows.append(("stage 1", PRINTS["stage 1"], done["stage 1"]))
            rows.append(("stage 2", PRINTS["stage 2"], part["seconds"] - done["stage 1"]))
        elif "evaluate.py" in command:
            rows.append(("evaluate", PRINTS["evaluate"], part["seconds"]))
        else:
            rows.append((f"`{command}`", "", part["seconds"]))
    conditions = raw.get("conditions", "load not recorded")
    lines = [f"What the run command prints, and how long it takes: measured with `{raw.get('measured_by', 'python benchmarks/readme_timing.py')}` "
             f"(clones the repository, runs this README's command part by part; raw figures in `{path}`) on "
             f"{raw['machine']}, {conditions}, at commit `{raw['commit']}` on {raw['date_utc'][:10]}: "
             f"**{minutes(raw['total_seconds'])} in all** (setup with pip's download cache warm and the datasets "
             "already provisioned).", "", "| step | prints | time |", "|---|---|---|"]
    lines += [f"| {step} | {prints} | {minutes(seconds)} |" for step, prints, seconds in rows]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=ROOT, help="repository to clone (default: this one)")
    parser.add_argument("--keep", type=Path, default=None, help="clone here and keep it (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=None, help="also write the raw JSON here")
    parser.add_argument("--conditions", default=None, help="the machine's load, recorded with the figures")
    parser.add_argument("--render", type=Path, default=None, metavar="RAW_JSON",
                        help="print the README's table from this raw file and stop (no timing)")
    args = parser.parse_args(argv)
    if args.render:
        print(render(args.render))
        return

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
    raw = {
        "commit": commit, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "measured_by": "python benchmarks/readme_timing.py" + (f" --out {args.out}" if args.out else ""),
        **({"conditions": args.conditions} if args.conditions else {}),
        "total_seconds": round(sum(p["seconds"] for p in parts), 1), "parts": parts,
    }
    text = json.dumps(raw, indent=2)
    print(text)
    if args.out:
        sys.path.insert(0, str(ROOT))
        from bal_tf.io import atomic_write_text

        atomic_write_text(args.out, text + "\n")


if __name__ == "__main__":
    main()
