"""The benchmarks' table code: spread labels, variant parsing and the validation rank tables."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # the scripts' own imports

import tables  # noqa: E402
import validate  # noqa: E402


def test_mean_std_is_the_sample_std():
    assert tables.mean_std([1.0, 2.0, 3.0]) == f"2.00 ± {np.std([1, 2, 3], ddof=1):.2f}"


@pytest.mark.parametrize("variant, expected", [
    ("default", []),
    ("gan.a=1", ["gan.a=1"]),
    ("gan.a=1,gan.b=[1.2,3.0],gan.c=x", ["gan.a=1", "gan.b=[1.2,3.0]", "gan.c=x"]),
])
def test_split_variant_keeps_list_values_whole(variant, expected):
    assert tables.split_variant(variant) == expected


def record(run, method, variant, seed, aurocs):
    return {"run": run, "method": method, "variant": variant, "seed": seed,
            "validation": {f"family{i}": {"auroc": a, "fpr95": 0.5} for i, a in enumerate(aurocs)}}


def test_cross_run_ranks_count_the_baselines_ahead_of_bal(tmp_path):
    lines = [
        # run A: baselines scored twice (two invocations) must count once
        record("A", "knn", "-", 0, [0.99, 0.90]), record("A", "msp", "-", 0, [0.80, 0.95]),
        record("A", "knn", "-", 0, [0.99, 0.90]), record("A", "msp", "-", 0, [0.80, 0.95]),
        record("A", "bal", "default", 0, [0.95, 0.80]), record("A", "bal", "default", 1, [0.97, 0.84]),
        record("A", "bal", "x", 0, [1.00, 0.99]),
        record("B", "knn", "-", 0, [0.50, 0.50]),
        record("B", "bal", "default", 0, [0.40, 0.60]),
        record("B", "bal", "only_b", 0, [0.90, 0.90]),
    ]
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    ranks = validate.bal_mean_rank([r for r in lines if r["run"] == "A"])
    # default: mean AUROC 0.96 / 0.82 -> behind knn on family0 (rank 2), behind both on family1 (rank 3)
    assert ranks == {"default": 2.5, "x": 1.0}
    text = validate.summaries_from_file([path])
    across = text.split("## Across runs")[1].split("## A")[0]
    assert "| default | 2.50 | 1.50 | 2.00 |" in across  # run B: rank 2 then 1
    assert "only_b" not in across and "| x |" not in across  # only variants every run has
    assert "| knn | 1 |" in text  # counted once despite two invocations


def write_results(run_dir, seed, aurocs):
    (run_dir / "eval").mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"seed": seed}))
    rows = [{"method": m, "ood": "fashion_mnist", "auroc": a, "fpr95": 1 - a} for m, a in aurocs.items()]
    (run_dir / "eval" / "results.json").write_text(json.dumps({"classification_accuracy": 0.99, "rows": rows}))


def test_protocol_table_puts_other_gan_presets_beside_bal_without_ranking_them(tmp_path):
    import protocols

    runs = []
    for seed in (0, 1):
        runs.append(tmp_path / f"mnist-cnn-cpu-seed{seed}")
        write_results(runs[-1], seed, {"bal": 0.90, "bal_last": 0.5, "max_softmax": 0.95, "knn": 0.80})
        write_results(tmp_path / f"mnist-cnn-cpu-gan_paper_literal-seed{seed}", seed,
                      {"bal": 0.70 + 0.1 * seed, "bal_last": 0.6, "max_softmax": 0.95, "knn": 0.80})
    table, summary = protocols.protocol_table("offline-mnist", runs, "fashion_mnist", ["paper_literal", "paper"])
    assert "| bal[paper_literal] | 75.00 ± 7.07 |" in table  # sample std of 70 and 80
    assert "bal_last[paper_literal]" not in table and "bal[paper]" not in table  # no runs: no row
    assert summary["bal_rank"] == 2 and summary["methods_ranked"] == 3  # msp, bal, knn: variants unranked
    cells = protocols.cell_records("offline-mnist", "cnn", "fashion_mnist", runs, ["paper_literal"])
    literal = next(c for c in cells if c["method"] == "bal[paper_literal]")
    assert literal["auroc"] == [70.0, 80.0] and literal["seeds"] == [0, 1]
    assert {c["method"] for c in cells} == {"bal", "bal_last", "max_softmax", "knn", "bal[paper_literal]",
                                            "bal_last[paper_literal]"}
