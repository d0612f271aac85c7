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


def split_variant(variant: str) -> list[str]:
    """``'default'`` -> []; ``'gan.a=1,gan.b=[1,2]'`` -> ``['gan.a=1', 'gan.b=[1,2]']`` (commas
    inside brackets belong to the value)."""
    import re

    return [] if variant == "default" else [part for part in re.split(r",(?![^\[]*\])", variant) if part]
