#!/usr/bin/env python
"""Times the README's test command on a fresh clone (a benchmark, not a test).

Clones the repository at HEAD into a temporary folder and runs ``bash .ci/run`` there (CI's
entry point, which runs the README's test command verbatim), then writes the wall-clock time,
pytest's own time and the number of tests passed to a raw JSON file; ``--render`` prints the
README's sentence from that file.

    python benchmarks/test_command_timing.py --out docs/results/test_command_timing.json \
        [--conditions "idle (background jobs stopped)"]
    python benchmarks/test_command_timing.py --render docs/results/test_command_timing.json

Run it on an otherwise idle machine: the suite needs about 9 min of CPU on 2 cores, so any
other load lengthens it.
"""

import argparse
import datetime
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# pytest's last line, "251 passed, 6 warnings in 263.61s (0:04:23)" (with -q, as .ci/run runs it) or
# wrapped in "=" signs (without -q)
SUMMARY = re.compile(r"^[= ]*(?:\d+ \w+, )*(\d+) passed[^\n]* in ([\d.]+)s", re.M)


def pytest_summary(output: str) -> tuple[int, float]:
    """(tests passed, pytest's seconds) from pytest's last summary line; (0, 0.0) if absent."""
    found = SUMMARY.findall(output)
    return (int(found[-1][0]), float(found[-1][1])) if found else (0, 0.0)


def time_test_command(repo: Path, conditions: str) -> dict:
    from tables import provenance

    clone = Path(tempfile.mkdtemp(prefix="bal-tf-ci-")) / "clone"
    try:
        subprocess.run(["git", "clone", "--quiet", str(repo), str(clone)], check=True)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True,
                                text=True, check=True).stdout.strip()
        start = time.perf_counter()
        process = subprocess.run(["bash", ".ci/run"], cwd=clone, capture_output=True, text=True)
        total = time.perf_counter() - start
    finally:
        shutil.rmtree(clone.parent, ignore_errors=True)
    output = process.stdout + process.stderr
    passed, pytest_seconds = pytest_summary(output)
    stamp = provenance()
    return {"commit": commit, "machine": f"{stamp['machine']}, {conditions}" if conditions else stamp["machine"],
            "command": f"git clone {repo} CLONE && cd CLONE && bash .ci/run",
            "measured_by": " ".join(["python", "benchmarks/test_command_timing.py", *sys.argv[1:]]),
            "date": datetime.date.today().isoformat(), "tests_passed": passed,
            "pytest_seconds": pytest_seconds, "total_seconds": round(total), "rc": process.returncode,
            "pytest_tail": process.stdout[-2000:], "stderr_tail": process.stderr[-1000:]}


def render(result: dict, source: str) -> str:
    minutes, seconds = divmod(int(result["total_seconds"]), 60)
    p_minutes, p_seconds = divmod(int(round(result["pytest_seconds"])), 60)
    outcome = "passed" if result["rc"] == 0 else f"FAILED (exit code {result['rc']})"
    return (f"The test command took **{minutes} min {seconds} s** from a fresh clone (`.ci/run`, which runs it "
            f"verbatim) on {result['machine']}, on {result['date']} at commit `{result['commit']}`: "
            f"{result['tests_passed']} tests {outcome}, {p_minutes} min {p_seconds} s of it in pytest "
            f"after setup (raw: `{source}`, written by `{result.get('measured_by', result['command'])}`).")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=ROOT, help="repository to clone (default: this one)")
    parser.add_argument("--out", type=Path, help="write the raw result here (JSON)")
    parser.add_argument("--conditions", default="", help="how loaded the machine was, for the record")
    parser.add_argument("--render", metavar="JSON", help="print the README sentence for this raw result instead")
    args = parser.parse_args(argv)
    if args.render:
        print(render(json.loads(Path(args.render).read_text()), args.render))
        return 0
    result = time_test_command(args.repo, args.conditions)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if result["rc"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
