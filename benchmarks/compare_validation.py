#!/usr/bin/env python
"""Does this machine reproduce the decision log? Compare re-measured validation records with the
recorded ones (prints a verdict per record; measures nothing itself).

For each record of ``--remeasured`` (validate.py or epoch_ensembles.py JSON lines, e.g. from a
classifier retrained from its preset on a new machine), look for a record of ``--recorded`` with
the same method and GAN seed and the same validation families, and report the closest one: the
largest absolute AUROC difference over the families, and that record's variant label (a variant
may carry another label there, e.g. ``default`` of today against ``gan_preset=default | D
ensemble: top1:default`` of the commit that made it the default).

    python benchmarks/compare_validation.py --recorded docs/results/validation/mnist-4to9-cnn-cpu-seed0.jsonl \\
        --remeasured docs/results/validation/reproducibility/mnist-4to9-cnn-cpu-seed0.jsonl
"""

import argparse
import json
from pathlib import Path


def load(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as error:
        raise SystemExit(f"compare_validation: {path} is not a JSON lines file of validation records: {error}")


def closest(record: dict, recorded: list[dict]) -> tuple[float, dict | None]:
    """The recorded record of the same method, seed and families nearest in AUROC (max abs difference)."""
    best, match = float("inf"), None
    for other in recorded:
        if (other["method"], other["seed"]) != (record["method"], record["seed"]) \
                or set(other["validation"]) != set(record["validation"]):
            continue
        gap = max(abs(other["validation"][f]["auroc"] - record["validation"][f]["auroc"]) for f in record["validation"])
        if gap < best:
            best, match = gap, other
    return best, match


def compare(recorded: list[dict], remeasured: list[dict], tolerance: float) -> list[str]:
    lines = []
    for record in remeasured:
        gap, match = closest(record, recorded)
        label = f"{record['method']} [{record['variant']}] seed {record['seed']}"
        if match is None:
            lines.append(f"{label}: no recorded counterpart")
        else:
            verdict = "equal to" if gap <= tolerance else "no equal record; closest"
            lines.append(f"{label}: {verdict} [{match['variant']}] at {match.get('commit', '?')} "
                         f"(max |AUROC difference| {gap:.2e})")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recorded", type=Path, required=True, help="the decision log's JSON lines")
    parser.add_argument("--remeasured", type=Path, required=True, help="JSON lines measured again")
    parser.add_argument("--tolerance", type=float, default=1e-12, help="largest AUROC difference called equal")
    args = parser.parse_args(argv)
    lines = compare(load(args.recorded), load(args.remeasured), args.tolerance)
    print("\n".join(lines))
    equal = sum(": equal to " in line for line in lines)
    print(f"{equal} of {len(lines)} re-measured records equal a recorded one (tolerance {args.tolerance:g})")
    return 0 if equal == len(lines) else 1


if __name__ == "__main__":
    raise SystemExit(main())
