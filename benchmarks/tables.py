"""The benchmarks' one table code: Markdown tables, and mean +- sample std over seeds.

Spread over seeds is the sample standard deviation (ddof=1), and every cell that shows one says
so through ``SPREAD_LABEL`` in its table's caption.
"""

from __future__ import annotations

import numpy as np

SPREAD_LABEL = "mean ± sample std (ddof=1) over {n} seeds"


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table; cells are converted with ``str``."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def mean_std(values, digits: int = 2) -> str:
    """``mean ± std`` with the sample std (ddof=1); a single value is shown alone."""
    values = np.asarray(values, np.float64)
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def provenance() -> dict:
    """Where a result was measured: this checkout's commit (``+dirty`` with local changes) and
    the machine (``bal_tf.provenance``)."""
    from bal_tf.provenance import stamp

    return stamp()


# What a measured number depends on: records written at two commits that agree on these paths
# ran the same code (commits of docs, tests or benchmarks in between change nothing they measured).
CODE_PATHS = ["bal_tf", "train.py", "evaluate.py", "requirements.txt", "requirements-cpu.txt"]
# ... except the file that writes the stamp itself: it computes nothing that is measured.
NOT_MEASURED = [":(exclude)bal_tf/provenance.py"]


def same_code(commit: str, other: str) -> bool:
    """True if two clean commits agree on CODE_PATHS (unknown commits: False)."""
    import subprocess
    from pathlib import Path

    if "+dirty" in commit or "+dirty" in other or "unstamped" in (commit, other) or "?" in (commit, other):
        return False
    if commit == other:
        return True
    diff = subprocess.run(["git", "diff", "--quiet", commit, other, "--", *CODE_PATHS, *NOT_MEASURED],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True)
    return diff.returncode == 0


def resume_per_run(path, expected: dict[str, set], key) -> set[str]:
    """Resume a sweep whose JSON lines file outlives the machine (it is committed): the runs (by
    directory name) for which ``path`` already holds every expected record, written by the same
    code (``same_code`` with this checkout). Every other record of an expected run is removed
    from ``path``, so that run is measured again whole: its classifier, retrained on a machine
    without the run dir, must not be mixed with the old one's records.

    Args:
        expected: run dir name -> the keys of the records a finished run has.
        key: record -> its key, or None for records that only accompany others (baselines).
    """
    import json
    from pathlib import Path

    from bal_tf.provenance import source_commit

    path, commit = Path(path), source_commit()
    if not path.is_file():
        return set()
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    found: dict[str, set] = {}
    for record in records:
        name = Path(record.get("run", "")).name
        if name in expected and key(record) is not None and same_code(record.get("commit", "?"), commit):
            found.setdefault(name, set()).add(key(record))
    done = {name for name, keys in expected.items() if keys <= found.get(name, set())}
    kept = [r for r in records if Path(r.get("run", "")).name not in expected or Path(r["run"]).name in done]
    if len(kept) != len(records):
        partial = path.with_name(path.name + ".rewrite")
        partial.write_text("".join(json.dumps(r) + "\n" for r in kept))
        partial.replace(path)
    return done


def split_variant(variant: str) -> list[str]:
    """``'default'`` -> []; ``'gan.a=1,gan.b=[1,2]'`` -> ``['gan.a=1', 'gan.b=[1,2]']`` (commas
    inside brackets belong to the value)."""
    import re

    return [] if variant == "default" else [part for part in re.split(r",(?![^\[]*\])", variant) if part]
