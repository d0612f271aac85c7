"""The benchmarks' table code: spread labels, variant parsing and the validation rank tables."""

import json
import os
import re
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
    # a beside preset that has not finished every seed lists the seeds it has, not the default's
    runs.append(tmp_path / "mnist-cnn-cpu-seed2")
    write_results(runs[-1], 2, {"bal": 0.91, "bal_last": 0.5, "max_softmax": 0.95, "knn": 0.80})
    cells = {c["method"]: c for c in protocols.cell_records("offline-mnist", "cnn", "fashion_mnist", runs,
                                                              ["paper_literal"])}
    assert cells["bal"]["seeds"] == [0, 1, 2] and cells["bal"]["auroc"] == [90.0, 90.0, 91.0]
    assert cells["bal[paper_literal]"]["seeds"] == [0, 1] and cells["bal[paper_literal]"]["auroc"] == [70.0, 80.0]


def test_protocol_archive_keeps_runs_whose_dirs_are_gone(tmp_path):
    import shutil

    import protocols

    runs_root, archive = tmp_path / "runs", tmp_path / "protocol_runs.jsonl"
    runs = [runs_root / f"mnist-cnn-cpu-seed{seed}" for seed in (0, 1)]
    for seed, run in enumerate(runs):
        write_results(run, seed, {"bal": 0.90 + 0.02 * seed, "max_softmax": 0.95})
        write_results(runs_root / f"mnist-cnn-cpu-gan_paper-seed{seed}", seed, {"bal": 0.70, "max_softmax": 0.95})
    store = protocols.ResultStore(archive)
    table, _ = protocols.protocol_table("offline-mnist", runs, "fashion_mnist", ["paper"], store)
    store.save()
    assert len(archive.read_text().splitlines()) == 4  # both presets' runs archived
    shutil.rmtree(runs_root)  # another machine: no run dirs
    store = protocols.ResultStore(archive)
    assert store.has(runs[1]) and not store.has(runs_root / "mnist-cnn-cpu-seed2")
    assert protocols.protocol_table("offline-mnist", runs, "fashion_mnist", ["paper"], store)[0] == table
    cells = {c["method"]: c for c in protocols.cell_records("offline-mnist", "cnn", "fashion_mnist", runs, ["paper"],
                                                              store)}
    assert cells["bal"]["auroc"] == [90.0, 92.0] and cells["bal[paper]"]["seeds"] == [0, 1]
    # skipped only when archived by this very (clean) code
    write_results_commit = store.records[runs[0].name]["results"]
    write_results_commit["commit"] = "abc1234"
    assert store.archived_at(runs[0], "abc1234") and not store.archived_at(runs[0], "abc1234+dirty")
    assert not store.archived_at(runs[0], "def5678")  # not a commit of this repository: not the same code
    assert not store.archived_at(runs[0], "abc1234", trained_baselines=True)  # no GCPL row archived
    # the default re-trained and evaluated anew: the archived paper run (dir gone) may not share its
    # classifier any more, so it is dropped; the archive file is rewritten whole
    write_results(runs[0], 0, {"bal": 0.97, "max_softmax": 0.95})
    assert store.results(runs[0])["results"]["rows"][0]["auroc"] == 0.97
    assert not store.has(runs_root / "mnist-cnn-cpu-gan_paper-seed0") and store.has(runs_root / "mnist-cnn-cpu-gan_paper-seed1")
    store.save()
    assert len(archive.read_text().splitlines()) == 3 and not archive.with_name(archive.name + ".partial").exists()
    archive.write_text(archive.read_text().splitlines()[0] + '\n{"run": "x"}\n')
    with pytest.raises(SystemExit, match="line 2 is not a run record"):
        protocols.ResultStore(archive)


def test_runs_at_two_commits_ran_the_same_code_when_the_code_paths_agree():
    import protocols

    assert protocols.same_code is tables.same_code  # one definition, shared by the sweeps
    # 53b2b02 -> 7cefba1 changed docs only; 1bcdea7 -> bdcedc2 changed bal_tf (the shuffle option)
    if protocols.subprocess.run(["git", "cat-file", "-e", "bdcedc2"], cwd=protocols.ROOT).returncode != 0:
        pytest.skip("not a full clone of the repository")
    assert protocols.same_code("53b2b02", "7cefba1") and protocols.same_code("7cefba1", "7cefba1")
    assert not protocols.same_code("1bcdea7", "bdcedc2")
    assert not protocols.same_code("7cefba1+dirty", "7cefba1") and not protocols.same_code("unstamped", "7cefba1")


def test_a_checkout_is_dirty_when_code_changes_and_clean_when_only_docs_change(tmp_path):
    """A sweep appends its records to a committed file under docs/ (protocols.py --archive): that
    must not stamp its own later runs dirty, while any change to code must."""
    import subprocess

    from bal_tf.provenance import checkout_commit

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "results" / "archive.jsonl").write_text("{}\n")
    (tmp_path / "train.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "init")
    commit = checkout_commit(tmp_path)
    assert len(commit) >= 7 and "+dirty" not in commit
    (tmp_path / "docs" / "results" / "archive.jsonl").write_text("{}\n{}\n")
    assert checkout_commit(tmp_path) == commit
    (tmp_path / "train.py").write_text("x = 2\n")
    assert checkout_commit(tmp_path) == commit + "+dirty"
    assert checkout_commit(tmp_path / "docs" / "missing") == "unknown"


def test_reproduce_skips_a_job_measured_by_the_same_code_outside_docs(tmp_path, monkeypatch):
    """Jobs commit their raw results under docs/ between sessions: such commits must not make
    reproduce.py measure a finished job again, while a change to code must."""
    import subprocess

    import reproduce

    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                              check=True, capture_output=True, text=True).stdout.strip()

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "raw.jsonl").write_text("{}\n")
    (tmp_path / "train.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "measured")
    measured = git("rev-parse", "--short", "HEAD")
    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    assert reproduce.measured_by_this_code(measured)
    assert not reproduce.measured_by_this_code(None)
    (tmp_path / "docs" / "raw.jsonl").write_text("{}\n{}\n")
    git("commit", "-qam", "results")
    assert reproduce.commit() != measured and reproduce.measured_by_this_code(measured)
    (tmp_path / "train.py").write_text("x = 2\n")
    git("commit", "-qam", "code")
    assert not reproduce.measured_by_this_code(measured)


def protocol_cells(protocol, backbone, ood, aurocs):
    return [{"protocol": protocol, "backbone": backbone, "ood": ood, "method": m, "seeds": [0, 1],
             "auroc": a, "fpr95": [5.0, 5.0]} for m, a in aurocs.items()]


def test_headline_ranks_bal_checks_the_targets_and_fills_the_readme_block(tmp_path):
    import protocols

    results = {"commit": "abc1234", "machine": "x86_64, 2 CPUs, no GPU", "command": "python benchmarks/protocols.py",
               "scale": "cpu", "cells":
                   protocol_cells("offline-fashion_mnist", "cnn", "mnist",
                                  {"bal": [97.0, 98.0], "bal_last": [99.9, 99.9], "bal[paper]": [99.9, 99.9],
                                   "max_softmax": [96.0, 98.5], "knn": [99.0, 99.0]})
                   + protocol_cells("offline-mnist", "cnn", "fashion_mnist",
                                    {"bal": [99.6, 99.8], "max_softmax": [98.0, 98.0], "knn": [99.0, 99.0]})}
    summaries = {s["protocol"]: s for s in protocols.cell_summaries(results)}
    fashion = summaries["offline-fashion_mnist"]
    # bal_last and other presets are not ranked: knn, then BAL (97.5), then max-softmax (97.25)
    assert (fashion["rank"], fashion["methods"], fashion["best_other"]) == (2, 3, "knn")
    assert not fashion["beats_msp_every_seed"]  # 98.0 < 98.5 in seed 1
    assert summaries["offline-mnist"]["rank"] == 1
    report = "\n".join(protocols.targets_report(list(summaries.values())))
    assert "every cell and seed: no (not in 1 of 2 cells)" in report
    assert "mean rank over the cells at most 1.5: yes (1.50 over 2 cells)" in report
    assert "offline-fashion_mnist (cnn) >= 99.0: no (97.50, 1.50 short)" in report
    assert "offline-mnist (cnn) >= 99.9: no (99.70, 0.20 short)" in report
    # the paper's presets get their own rows beside the default, with the seeds each has
    results["cells"] += protocol_cells("offline-mnist", "cnn", "fashion_mnist", {"bal[paper_literal]": [90.0, 94.0]})
    block = protocols.headline_markdown(results)
    assert "| offline-mnist | cnn | fashion_mnist | 99.70 ± 0.14 | 92.00 ± 2.83 (2) | - | 98.00 ± 0.00 |" in block
    assert "| offline-fashion_mnist | cnn | mnist | 2 | 97.50" in block.split("The paper's recipe")[0]  # main table
    assert "| offline-fashion_mnist | cnn | mnist | 97.50 ± 0.71 | - | 99.90 ± 0.00 (2) |" in block  # paper only
    results["cells"] = [c for c in results["cells"] if not c["method"].startswith("bal[")]
    assert "The paper's recipe" not in protocols.headline_markdown(results)  # no paper runs: no section

    (tmp_path / "protocols.json").write_text(json.dumps(results))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{protocols.BEGIN}\nold, hand-typed numbers\n{protocols.END}\nrest\n")
    argv = ["--results", str(tmp_path / "protocols.json"), "--readme", str(readme)]
    assert protocols.main(["headline", *argv + ["--check"]]) == 1
    assert protocols.main(["headline", *argv]) == 0 and protocols.main(["headline", *argv + ["--check"]]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\nrest\n") and "hand-typed" not in text
    assert "| offline-fashion_mnist | cnn | mnist | 2 | 97.50 ± 0.71 | 97.25 ± 1.77 | knn 99.00 ± 0.00 | 2 of 3 | no |" in text


def test_readme_headline_is_generated_from_the_committed_protocol_results():
    import protocols

    results = Path(protocols.ROOT) / "docs" / "results" / "protocols.json"
    if not results.is_file():
        pytest.skip("no docs/results/protocols.json committed yet")
    assert protocols.main(["headline", *["--check"]]) == 0, "README.md's headline block is stale: python benchmarks/protocols.py"


def test_reproduce_replaces_a_block_and_only_that_block():
    import reproduce

    text = "a\n<!-- reproduce:t1:begin -->\nold\n<!-- reproduce:t1:end -->\nb\n"
    assert reproduce.replace_block(text, "t1", "new\n") == "a\n<!-- reproduce:t1:begin -->\nnew\n<!-- reproduce:t1:end -->\nb\n"
    with pytest.raises(SystemExit, match="no <!-- reproduce:t2:begin -->"):
        reproduce.replace_block(text, "t2", "x")


def test_reproduce_measures_on_a_clean_checkout_and_renders_after_every_measurement(tmp_path, monkeypatch, capsys):
    """A render that rewrites README.md must not stamp a later job's records +dirty; a checkout
    already changed outside docs/ is refused before anything is measured."""
    import subprocess

    import reproduce

    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                              check=True, capture_output=True, text=True).stdout.strip()

    (tmp_path / "README.md").write_text("<!-- reproduce:t:begin -->\n<!-- reproduce:t:end -->\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "start")
    clean = "import subprocess, sys; sys.exit(1 if subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], capture_output=True, text=True).stdout else 0)"
    jobs = [reproduce.Job(name, name, [[sys.executable, "-c", clean]], [([sys.executable, "-c", f"print('{name}')"], "README.md#t")])
            for name in ("first", "second")]
    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    monkeypatch.setattr(reproduce, "jobs", lambda root: jobs)
    argv = ["--only", "first", "--only", "second", "--runs-root", str(tmp_path / "runs")]
    assert reproduce.main(argv) == 0  # the second job measured before the first one's render
    assert "second" in (tmp_path / "README.md").read_text()
    assert reproduce.uncommitted_code() == ["README.md"]
    assert reproduce.main(argv + ["--force"]) == 2  # README.md changed: refused, nothing measured
    assert "README.md" in capsys.readouterr().err
    assert reproduce.main(argv + ["--render-only"]) == 0
    with pytest.raises(subprocess.CalledProcessError):  # --allow-dirty measures: the job sees the change
        reproduce.main(argv + ["--force", "--allow-dirty"])


def test_reproduce_moves_a_sweep_into_place_only_when_it_finished(tmp_path, monkeypatch):
    import reproduce

    (tmp_path / "raw.jsonl").write_text("committed\n")
    (tmp_path / "doc.md").write_text("<!-- reproduce:t:begin -->\n<!-- reproduce:t:end -->\n")
    write = "open('raw.jsonl.partial', 'a').write('new\\n')"

    def fake_jobs(runs_root, fail):
        measure = [[sys.executable, "-c", write + ("; raise SystemExit(3)" if fail else "")]]
        render = [([sys.executable, "-c", "print(open('raw.jsonl').read().strip())"], "doc.md#t")]
        return [reproduce.Job("sweep", "a sweep", measure, render, sweeps={"raw.jsonl.partial": "raw.jsonl"})]

    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    monkeypatch.setattr(reproduce, "commit", lambda: "abc")
    argv = ["--only", "sweep", "--runs-root", str(tmp_path / "runs")]
    monkeypatch.setattr(reproduce, "jobs", lambda root: fake_jobs(root, fail=True))
    with pytest.raises(Exception):  # killed / failed mid-sweep: the committed raw file is untouched
        reproduce.main(argv)
    assert (tmp_path / "raw.jsonl").read_text() == "committed\n"
    assert not (tmp_path / "runs" / "reproduce_state.json").exists()
    monkeypatch.setattr(reproduce, "jobs", lambda root: fake_jobs(root, fail=False))
    assert reproduce.main(argv) == 0
    # the half-written partial of the failed attempt was discarded, not appended to
    assert (tmp_path / "raw.jsonl").read_text() == "new\n"
    assert "new" in (tmp_path / "doc.md").read_text()
    state = json.loads((tmp_path / "runs" / "reproduce_state.json").read_text())
    assert state["sweep"]["commit"] == "abc"
    with pytest.raises(SystemExit):
        reproduce.main(["--only", "nope"])


def test_export_report_renders_parity_and_latency_from_the_raw_json(tmp_path, capsys):
    import timing

    info = {"parity": {"saved_model_vs_keras_max_abs": 5.1e-7, "tflite_float32_vs_keras_max_abs": 1.0e-6},
            "auroc_parity": {"ood": "fashion_mnist", "images_each": 2000, "keras": 0.9894, "bal_float32": 0.9894,
                             "bal_dynamic_range": 0.99, "bal_full_int8": 0.9908},
            "tflite_float32": {"bytes": 3_200_000}, "tflite_full_int8": {"bytes": 890_000},
            "commit": "def", "machine": "x86_64, 2 CPUs, no GPU"}
    batch = {"exported_ms": 3.5, "backbone_ms": 3.3, "ratio": 1.023, "ratio_iqr": [0.94, 1.11], "bal_part_ratio": 0.18}
    latency = {"batch1": batch, "batch256": batch, "commit": "abc", "machine": "x86_64", "cpus": 2, "command": "c"}
    (tmp_path / "info.json").write_text(json.dumps(info))
    (tmp_path / "export_latency_default.json").write_text(json.dumps(latency))
    timing.main(["export-report", "--info", str(tmp_path / "info.json"), str(tmp_path / "export_latency_default.json")])
    out = capsys.readouterr().out
    assert "(export of commit def, x86_64, 2 CPUs, no GPU)" in out
    assert "Keras 98.94, float32 TFLite 98.94, dynamic-range 99.00, full int8 99.08 (0.89 MB against 3.20 MB" in out
    assert "| default | 1.023 [0.94-1.11], 3.50 vs 3.30 ms; BAL's part 18.0% |" in out and "commit abc" in out


def test_protocols_offers_every_gan_preset():
    import protocols

    from bal_tf.config import GAN_PRESETS

    # listed by hand so that --help needs no TensorFlow; a preset added to the config must appear
    assert sorted(protocols.GAN_PRESET_NAMES) == sorted(GAN_PRESETS)


def test_stage2_time_trains_on_the_runs_features_and_leaves_the_run_as_it_was(tiny_run, tmp_path):
    import timing

    def files(root):
        return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*") if p.is_file()}

    before = files(tiny_run)
    out = tmp_path / "stage2_time.json"
    rc = timing.main(["stage2", "--run", str(tiny_run), "--set", "gan.epochs=2", "--out", str(out)])
    result = json.loads(out.read_text())
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["gan"]["epochs"] != 2 and result["overrides"] == ["gan.epochs=2"]
    assert result["epochs"] == 2 and 1 <= result["selected_epoch"] <= 2  # the override was trained
    assert result["seconds_total"] >= result["seconds_gan"] > 0
    assert rc == 0 and result["target_seconds"] == timing.TARGET_SECONDS[result["kernels"]]
    assert result["meets_target"] == (result["seconds_total"] <= result["target_seconds"])
    assert {"commit", "machine", "command"} <= set(result)
    assert files(tiny_run) == before
    assert timing.main(["stage2", "--render", str(out)]) == 0
    assert "`gan.epochs=2`" in timing.stage2_render(result, str(out))
    assert result["command"].startswith("python benchmarks/timing.py stage2 --run")


def test_test_command_timing_reads_pytests_summary_and_renders_the_readme_sentence():
    import timing

    output = "....\n251 passed, 6 warnings in 263.61s (0:04:23)\nWARNING: pip says something\n"
    assert timing.pytest_summary(output) == (251, 263.61)  # -q, as .ci/run runs it
    assert timing.pytest_summary("===== 251 passed, 6 warnings in 263.61s (0:04:23) =====") == (251, 263.61)
    assert timing.pytest_summary("1 failed, 250 passed in 300.00s") == (250, 300.0)
    assert timing.pytest_summary("error: setup failed") == (0, 0.0)
    result = {"commit": "abc1234", "machine": "x86_64, 2 CPUs, idle", "command": "bash .ci/run", "date": "2026-11-27",
              "tests_passed": 251, "pytest_seconds": 263.61, "total_seconds": 322, "rc": 0}
    text = timing.tests_render(result, "docs/results/test_command_timing.json")
    assert "**5 min 22 s**" in text and "251 tests passed, 4 min 24 s" in text and "`abc1234`" in text
    assert "FAILED (exit code 1)" in timing.tests_render({**result, "rc": 1}, "x.json")


def test_readme_timing_table_is_rendered_from_its_raw_file_and_matches_the_readme(tmp_path, monkeypatch):
    import timing

    raw = {"commit": "abc1234", "machine": "x86_64, 2 CPUs", "date_utc": "2026-11-27 09:06", "conditions": "idle",
           "total_seconds": 703.6, "parts": [
               {"command": "bash scripts/setup.sh", "seconds": 60.9, "stage_done_at": {}},
               {"command": ".venv/bin/python train.py --id mnist", "seconds": 542.0,
                "stage_done_at": {"stage 1": 374.5, "stage 2": 540.2}},
               {"command": ".venv/bin/python evaluate.py --run r", "seconds": 100.7, "stage_done_at": {}}]}
    path = tmp_path / "raw.json"
    path.write_text(json.dumps(raw))
    text = timing.readme_render(path)
    assert "**11 min 44 s in all**" in text and "`abc1234`" in text and "idle" in text
    assert "| stage 1 |" in text and text.count("| 6 min 14 s |") == 1  # stage 1 ends at 374.5 s
    assert "| 2 min 48 s |" in text  # stage 2: the rest of train.py (542.0 - 374.5 s)
    # two raw files (one per CPU kind): one time column each, headed by its machine
    slower = {**raw, "machine": "x86_64, 2 CPUs (AVX2, no AVX-512), no GPU", "total_seconds": 1407.2,
              "parts": [{**part, "seconds": 2 * part["seconds"],
                         "stage_done_at": {k: 2 * v for k, v in part["stage_done_at"].items()}} for part in raw["parts"]]}
    other = tmp_path / "raw_avx2.json"
    other.write_text(json.dumps(slower))
    text = timing.readme_render(path, other)
    assert "| time at `abc1234` (x86_64, 2 CPUs) | time at `abc1234` (x86_64, 2 CPUs (AVX2, no AVX-512), no GPU) |" in text
    assert "| 6 min 14 s | 12 min 29 s |" in text and "**23 min 27 s in all**" in text
    # the README's block is that rendering of the committed raw files (as reproduce.py renders it)
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    readme = Path("README.md").read_text()
    block = readme.split("<!-- reproduce:readme-timing:begin -->\n", 1)[1].split("\n<!-- reproduce:readme-timing:end -->")[0]
    assert block == timing.readme_render(*timing.README_TIMING_RAW)


def test_ablations_run_on_the_papers_negatives_whatever_the_default():
    import ablations

    from bal_tf.config import GANConfig, RunConfig

    # the former `stable` preset: the paper's negatives into a D on raw features, the rest the default's
    paper_negatives = GANConfig(discriminator_input="raw", ladder_weight=0.0, floor_weight=0.0, p2_target="ratio",
                                p2_calibration="none", shell_radius=[1.5, 4.0])
    assert RunConfig().with_overrides(ablations.PAPER_NEGATIVES).gan == paper_negatives


def test_a_sweep_resumes_each_measurement_made_by_the_same_code_on_the_same_classifier(tmp_path, monkeypatch):
    import bal_tf.provenance

    monkeypatch.setattr(bal_tf.provenance, "source_commit", lambda: "c1")
    monkeypatch.setattr(tables, "same_code", lambda a, b: a == b)

    def record(run, variant, seed, commit="c1", baseline=False, digest="hA"):
        return {"run": f"/elsewhere/runs/{run}", "variant": variant, "seed": seed, "commit": commit,
                "classifier_sha256": digest, **({"baseline": True} if baseline else {})}

    lines = [record("A", "max_softmax", 0, baseline=True), record("A", "t:x", 0), record("A", "t:y", 0),
             record("B", "max_softmax", 1, baseline=True, digest="hB"), record("B", "t:x", 1, digest="hB"),  # cut short
             record("C", "t:x", 2, commit="c0", digest="hC"),  # other code
             record("E", "t:x", 2, digest="old"),  # a classifier since retrained
             record("F", "t:x", 2, digest="hF"),  # not trained on this machine (yet)
             record("D", "t:x", 3, digest="hD")]  # not asked for: kept as it is
    path = tmp_path / "sweep.jsonl.partial"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"run": "/x/A", "vari')  # killed mid-line
    key = lambda r: None if r.get("baseline") else (r["variant"], r["seed"])  # noqa: E731
    classifiers = {"A": "hA", "B": "hB", "C": "hC", "E": "new", "F": None}
    done = tables.resume_sweep(path, classifiers, key)
    assert done == {"A": {("t:x", 0), ("t:y", 0)}, "B": {("t:x", 1)}, "C": set(), "E": set(), "F": set()}
    kept = [json.loads(line) for line in path.read_text().splitlines()]
    assert kept == lines[:5] + lines[-1:]  # C, E and F measured again; the cut line gone
    assert path.read_text().endswith("\n")  # the next append starts a line of its own
    assert tables.resume_sweep(tmp_path / "missing.jsonl", classifiers, key) == {n: set() for n in classifiers}

    # a run finished whole on a classifier this machine does not have (trained elsewhere) stays finished
    lines = [record("G", "t:x", 0, digest="elsewhere"), record("G", "t:y", 0, digest="elsewhere"),
             record("H", "t:x", 0, digest="elsewhere"), record("H", "t:x", 1, digest="here")]  # H: cut short
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    expected = {name: {("t:x", 0), ("t:y", 0)} for name in ("G", "H")}
    assert tables.resume_sweep(path, {"G": "here", "H": "here"}, key, expected) == {"G": expected["G"], "H": {("t:x", 1)}}
    assert [json.loads(line) for line in path.read_text().splitlines()] == lines[:2] + lines[-1:]


def test_classifier_digest_is_the_classifiers_weights_and_architecture_not_its_save_date(tmp_path):
    """The same classifier saved again (another date, other object ids: what retraining it on a
    new machine gives) keeps its digest, so a committed sweep resumes there; other weights do not."""
    import hashlib
    import zipfile

    import keras

    assert tables.classifier_digest(tmp_path) is None  # stage 1 not done
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.save(tmp_path / "classifier.keras")
    digest = tables.classifier_digest(tmp_path)
    file_sha = hashlib.sha256((tmp_path / "classifier.keras").read_bytes()).hexdigest()

    def resave(metadata: bytes, object_id: str):
        with zipfile.ZipFile(tmp_path / "classifier.keras") as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
        members["metadata.json"] = metadata
        members["config.json"] = re.sub(rb'"shared_object_id": \d+', object_id.encode(), members["config.json"])
        with zipfile.ZipFile(tmp_path / "other.keras", "w") as archive:
            for name, data in members.items():
                archive.writestr(name, data)
        (tmp_path / "other.keras").replace(tmp_path / "classifier.keras")

    assert b"shared_object_id" in zipfile.ZipFile(tmp_path / "classifier.keras").read("config.json")
    resave(b'{"keras_version": "3", "date_saved": "another day"}', '"shared_object_id": 12345')
    assert hashlib.sha256((tmp_path / "classifier.keras").read_bytes()).hexdigest() != file_sha
    assert tables.classifier_digest(tmp_path) == digest
    model.layers[0].kernel.assign(model.layers[0].kernel + 1e-3)
    model.save(tmp_path / "classifier.keras")
    assert tables.classifier_digest(tmp_path) != digest
    (tmp_path / "classifier.keras").write_bytes(b"not an archive")  # digested whole
    assert tables.classifier_digest(tmp_path) == hashlib.sha256(b"not an archive").hexdigest()


def test_ablations_resume_skips_finished_classifiers_and_measurements(tmp_path, monkeypatch):
    import ablations

    asked = {}
    done = {"mnist-cpu-dim2-seed0": {(f"table3:dim=2:{arm}", s) for arm in ablations.TABLE3 for s in (0, 1)},
            "mnist-cpu-dim64-seed0": {("table3:dim=64:uniform", 0)}}
    monkeypatch.setattr(ablations, "resume_sweep", lambda path, classifiers, key, expected: asked.update(classifiers) or
                        {name: done.get(name, set()) for name in classifiers})
    monkeypatch.setattr(ablations, "classifier_digest", lambda run: f"sha-{Path(run).name}")
    trained, swept, written = [], [], []
    monkeypatch.setattr(ablations, "table3_run", lambda root, dim, seed, preset, quiet: trained.append(dim) or
                        root / f"{preset}-dim{dim}-seed{seed}")
    monkeypatch.setattr(ablations, "sweep", lambda run, variants, seeds, *a, label: swept.append((label, seeds[0]))
                        or [{"variant": label, "seed": seeds[0]}])
    monkeypatch.setattr(ablations, "append_jsonl", lambda path, records: written.extend(records))
    ablations.main(["--table", "3", "--table3-classifier-seed", "0", "--seeds", "0", "1", "--out",
                    str(tmp_path / "t3.jsonl")])
    assert trained == [d for d in ablations.TABLE3_DIMS if d != 2]  # dim 2's classifier: done already
    others = len(ablations.TABLE3_DIMS) - 2
    assert len(swept) == 2 * len(ablations.TABLE3) * (others + 1) - 1  # dim 64: one GAN measured already
    assert not any(label.startswith("table3:dim=2:") for label, _ in swept)
    assert ("table3:dim=64:uniform", 0) not in swept and ("table3:dim=64:uniform", 1) in swept
    # each record names the classifier it was measured on, so that a later resume can tell
    assert all(r["classifier_sha256"] == f"sha-mnist-cpu-dim{r['variant'].split(':')[1][4:]}-seed0" for r in written)
    assert all(r["classifier_test_accuracy"] is None for r in written)  # no stage1/metrics.json in these fakes
    run = tmp_path / "run"
    (run / "stage1").mkdir(parents=True)
    (run / "stage1" / "metrics.json").write_text('{"test_accuracy": 0.9936}')
    assert ablations._test_accuracy(run) == 0.9936
    # one classifier per dim, asked about under its run dir
    assert sorted(asked) == sorted(f"mnist-cpu-dim{d}-seed0" for d in ablations.TABLE3_DIMS)


def test_validate_resume_skips_finished_runs_and_gans_and_is_refused_without_out(tmp_path, monkeypatch):
    done = {"A": {("bal", v, s) for v in ("default", "gan.epochs=3") for s in (0, 1)} | {("knn", "-", 0)},
            "B": {("bal", "default", 0), ("knn", "-", 0)}}
    monkeypatch.setattr(validate, "resume_sweep", lambda path, classifiers, key, expected: {n: done.get(n, set()) for n in classifiers})
    validated = {}
    monkeypatch.setattr(validate, "validate_run", lambda run, *a, done, emit: validated.update({run.name: done}) or [])
    for name in "ABC":
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(default_config_json())
    validate.main(["--run", str(tmp_path / "A"), "--run", str(tmp_path / "B"), "--run", str(tmp_path / "C"),
                   "--seeds", "0", "1", "--variant", "default", "--variant", "gan.epochs=3"])  # no --resume: all
    assert validated == {"A": set(), "B": set(), "C": set()}
    validated.clear()
    validate.main(["--run", str(tmp_path / "A"), "--run", str(tmp_path / "B"), "--run", str(tmp_path / "C"),
                   "--seeds", "0", "1", "--variant", "default", "--variant", "gan.epochs=3",
                   "--out", str(tmp_path / "v.jsonl"), "--resume"])
    assert validated == {"B": done["B"], "C": set()}  # A finished; B goes on where it stopped
    with pytest.raises(SystemExit):
        validate.main(["--run", str(tmp_path / "A"), "--resume"])


def default_config_json() -> str:
    import json

    from bal_tf.config import get_preset

    return json.dumps(get_preset("mnist-cpu").to_dict())


def test_validate_refuses_a_non_run_and_an_unknown_variant_field_before_training(tmp_path, monkeypatch, capsys):
    trained = []
    monkeypatch.setattr(validate, "validate_run", lambda run, *a, **k: trained.append(run) or [])
    (tmp_path / "A").mkdir()
    (tmp_path / "A" / "config.json").write_text(default_config_json())
    # the typo is in the last --run: refused before the first run's sweep starts, nothing written
    assert validate.main(["--run", str(tmp_path / "A"), "--run", str(tmp_path / "typo"), "--seeds", "0",
                          "--out", str(tmp_path / "v.jsonl")]) == 2
    message = capsys.readouterr().out
    assert "error: --run expects run directories" in message and str(tmp_path / "typo") in message
    assert "Traceback" not in message
    # an unknown field in the last variant: refused before the first variant's GANs
    assert validate.main(["--run", str(tmp_path / "A"), "--variant", "default", "--variant", "gan.bogus=1",
                          "--seeds", "0", "--out", str(tmp_path / "v.jsonl")]) == 2
    assert "Unknown config field 'gan.bogus'" in capsys.readouterr().out
    assert trained == [] and not (tmp_path / "v.jsonl").exists()
    assert validate.main(["--run", str(tmp_path / "A"), "--seeds", "0"]) == 0 and trained == [tmp_path / "A"]


def test_validate_run_emits_each_gan_as_it_finishes_and_skips_what_is_done(tmp_path, monkeypatch):
    import types

    import bal_tf.evaluation
    import bal_tf.features
    import bal_tf.train_bal
    import bal_tf.validation

    run = types.SimpleNamespace(root=tmp_path / "A")
    base = types.SimpleNamespace(seed=0, gan=None, features=types.SimpleNamespace(depths="penultimate"))
    every_depth = types.SimpleNamespace(at=lambda depths: None)
    monkeypatch.setattr(validate, "open_run", lambda *a: (run, base, types.SimpleNamespace(classifier=None),
                                                          types.SimpleNamespace(id=None), every_depth,
                                                          {"classifier_sha256": "h"}))
    monkeypatch.setattr(validate, "with_variant", lambda base, overrides: base)
    monkeypatch.setattr(bal_tf.features, "RunFeatures",
                        lambda *a, **k: types.SimpleNamespace(selection_data=lambda: None))
    monkeypatch.setattr(bal_tf.evaluation, "MethodScorer", lambda *a, **k: None)
    monkeypatch.setattr(bal_tf.validation, "baseline_metrics", lambda scorer, sets: {"knn": {"f": {"auroc": 0.9}}})
    monkeypatch.setattr(bal_tf.validation, "bal_metrics", lambda disc, sets, score, depths: {"f": {"auroc": 0.8}})
    trained, emitted = [], []
    monkeypatch.setattr(bal_tf.train_bal, "train_bal", lambda gan, train, selection_data, seed, verbose:
                        trained.append(seed) or types.SimpleNamespace(discriminator=None, last_discriminator=None,
                                                                      selected_epoch=1))
    records = validate.validate_run(tmp_path / "A", ["default"], [0, 1, 2], done={("bal", "default", 1)},
                                    emit=lambda records: emitted.append([(r["method"], r["seed"]) for r in records]))
    assert trained == [0, 2]
    assert emitted == [[("knn", 0)], *[[(m, s) for m in ("bal", "bal_last", "bal_p2_only")] for s in (0, 2)]]
    assert len(records) == 7 and all(r["classifier_sha256"] == "h" for r in records)
    emitted.clear()
    validate.validate_run(tmp_path / "A", ["default"], [0], done={("knn", "-", 0)}, emit=emitted.append)
    assert [r["method"] for batch in emitted for r in batch] == ["bal", "bal_last", "bal_p2_only"]  # baselines done


def test_whitened_class_distance_measures_in_the_space_d_sees():
    """A step of t standard deviations along a low-variance direction and along a high-variance
    one is the same whitened distance; a class's own points are ~1 class radius out, and pushed
    radially by s they are s times farther."""
    from diagnose import whitened_class_distance

    rng = np.random.default_rng(0)
    scales = np.array([10.0, 0.1] + [1.0] * 6)  # anisotropic, shared by both classes
    means = np.stack([np.zeros(8), np.full(8, 50.0)])
    labels = np.repeat([0, 1], 4000)
    features = means[labels] + rng.normal(size=(8000, 8)) * scales
    relative = whitened_class_distance(features, labels, 2)
    fresh = means[1] + rng.normal(size=(4000, 8)) * scales
    assert np.median(relative(fresh, np.ones(4000, int))) == pytest.approx(1.0, abs=0.05)
    centroid = features[labels == 1].mean(0)
    np.testing.assert_allclose(relative(centroid + 3 * (fresh - centroid), np.ones(4000, int)),
                               3 * relative(fresh, np.ones(4000, int)), rtol=1e-3)
    along_wide, along_narrow = means[0].copy(), means[0].copy()
    along_wide[0], along_narrow[1] = 4 * scales[0], 4 * scales[1]
    wide, narrow = relative(np.stack([along_wide, along_narrow]), np.zeros(2, int))
    assert wide == pytest.approx(narrow, rel=0.05) and wide > 1.2  # Euclidean: 100 times apart


def test_gcpl_geometry_reports_when_weak_ood_features_sit_nearer_the_prototypes():
    """The diagnostic's numbers on features built so that GCPL's rule must fail: ID features at
    twice the prototypes' norm along their own prototype, OOD features near the prototypes."""
    import diagnose

    rng = np.random.default_rng(0)
    prototypes = np.eye(3, 8)
    labels = rng.integers(0, 3, 300)
    id_features = 2.0 * prototypes[labels] + 0.05 * rng.normal(size=(300, 8))
    ood_features = 1.0 * prototypes[rng.integers(0, 3, 200)] + 0.05 * rng.normal(size=(200, 8))
    report = diagnose.prototype_geometry(id_features, ood_features, prototypes, gamma=1.0, id_labels=labels)
    assert report["accuracy"] == 1.0
    assert report["auroc"]["gcpl_minus_nearest_squared_distance"] < 0.05  # nearer the prototypes = "more ID"
    assert report["auroc"]["feature_norm"] > 0.95
    assert report["prototype_norm"]["median"] == pytest.approx(1.0)
    assert report["feature_norm"]["id"]["median"] == pytest.approx(2.0, abs=0.1)
    assert report["nearest_prototype_squared_distance"]["ood"]["median"] < 0.1
    text = diagnose.gcpl_markdown({**report, "run": "r", "commit": "c", "id": "a", "ood": "b",
                                   "gamma": 1.0, "prototype_weight": 0.01})
    assert "| GCPL: minus nearest-prototype squared distance | " in text and "accuracy 100.00%" in text


def test_reproduce_validation_job_never_rewrites_the_decision_logs_raw_files():
    """The decision log's raw files hold evidence measured when each decision was made: the job
    re-measures the presets into files of its own and only renders the decision log's."""
    import reproduce

    job = next(j for j in reproduce.jobs("R") if j.name == "validation")
    decision_log = {f"docs/results/validation/{name}-seed0.jsonl" for name in reproduce.VALIDATION_RUNS}
    assert set(job.sweeps.values()) == {f"{reproduce.FINAL_VALIDATION}/{name}-seed0.jsonl"
                                        for name in reproduce.VALIDATION_RUNS}
    written = {arg for command in job.measure for arg in command} | set(job.sweeps) | set(job.sweeps.values())
    assert not decision_log & written
    assert all(any(path in command for command, _ in job.render) for path in decision_log)
    from bal_tf.config import GAN_PRESETS

    assert {v.split(",")[0].removeprefix("gan_preset=") for v in reproduce.VALIDATION_VARIANTS} <= set(GAN_PRESETS)


def test_validation_summary_of_files_not_measured_yet_says_so(tmp_path):
    text = validate.summaries_from_file([tmp_path / "final" / "a.jsonl"])
    assert text.startswith("No records yet in") and "reproduce.py --only validation" in text


def test_emit_report_prints_and_writes_the_tables_under_their_command_and_the_raw_json(tmp_path, capsys):
    report = {"command": "python benchmarks/x.py --run R", "value": 1.5}
    tables.emit_report(report, "| a |", tmp_path / "r.json", tmp_path / "r.md")
    assert capsys.readouterr().out == "| a |\n"
    assert (tmp_path / "r.md").read_text() == "Generated by `python benchmarks/x.py --run R`.\n\n| a |\n"
    assert json.loads((tmp_path / "r.json").read_text()) == report


def test_a_gan_preset_run_reuses_the_default_runs_features_and_skips_odin(tmp_path, monkeypatch):
    import protocols

    runs_root = tmp_path / "runs"
    base_features = runs_root / "mnist-cnn-cpu-seed0" / "features"
    base_features.mkdir(parents=True)
    (base_features / "meta.json").write_text('{"classifier_sha256": "abc"}\n')
    np.savez(base_features / "train.npz", features=np.arange(6.0).reshape(3, 2))
    commands = []
    monkeypatch.setattr(protocols.subprocess, "run", lambda command, **kw: commands.append(command))

    run_dir = protocols.run_protocol("offline-mnist", 0, "cpu", runs_root, True, tag=protocols.gan_preset_tag("paper"),
                                     arch="cnn", gan_preset="paper")

    assert run_dir.name == "mnist-cnn-cpu-gan_paper-seed0"
    linked = run_dir / "features" / "train.npz"
    assert linked.read_bytes() == (base_features / "train.npz").read_bytes()
    assert (run_dir / "features" / "meta.json").read_text() == '{"classifier_sha256": "abc"}\n'
    assert not (run_dir / "features.partial").exists()
    train_base, train_preset, evaluate = commands
    assert "--classifier" not in train_base and train_preset[train_preset.index("--classifier") + 1] == str(
        runs_root / "mnist-cnn-cpu-seed0" / "classifier.keras")
    assert evaluate[1].endswith("evaluate.py") and {"--no-odin", "--no-plots"} <= set(evaluate)

    commands.clear()  # the default run itself is evaluated in full: its baselines are the table's
    protocols.run_protocol("offline-mnist", 1, "cpu", runs_root, True, arch="cnn")
    assert commands[-1][1].endswith("evaluate.py") and "--no-odin" not in commands[-1]
    assert not (runs_root / "mnist-cnn-cpu-seed1" / "features").exists()


def test_a_default_run_retrained_for_a_gan_preset_is_evaluated_as_fully_as_its_archived_record(tmp_path, monkeypatch):
    import protocols

    runs_root, archive = tmp_path / "runs", tmp_path / "protocol_runs.jsonl"
    oods = protocols.protocol_oods("offline-mnist")

    def rows(methods):
        return [{"method": m, "ood": o, "auroc": 0.9, "fpr95": 0.1} for m in methods for o in oods]

    # another machine archived the default run with GCPL / AEC; its dir is gone
    archive.write_text(json.dumps({"run": "mnist-cnn-cpu-seed0", "seed": 0, "results": {
        "commit": "0000000", "classification_accuracy": 0.99, "rows": rows(["bal", "max_softmax", "gcpl"])}}) + "\n")
    commands = []

    def fake_run(command, **kw):
        commands.append(command)
        if command[0].endswith("evaluate.py"):
            run_dir = Path(command[command.index("--run") + 1])
            (run_dir / "eval").mkdir(parents=True, exist_ok=True)
            (run_dir / "config.json").write_text(json.dumps({"seed": 0}))
            methods = ["bal", "max_softmax"] + (["gcpl"] if "--trained-baselines" in command else [])
            (run_dir / "eval" / "results.json").write_text(json.dumps({
                "commit": "1111111", "classification_accuracy": 0.98, "rows": rows(methods)}))

    real_run = protocols.subprocess.run  # the module is shared: provenance's git calls go through
    monkeypatch.setattr(protocols.subprocess, "run", lambda command, **kw: (
        fake_run(command[1:], **kw) if command[0] == sys.executable else real_run(command, **kw)))
    protocols.main(["--protocol", "offline-mnist", "--arch", "cnn", "--seeds", "0", "--gan-preset", "paper",
                    "--runs-root", str(runs_root), "--archive", str(archive), "--quiet",
                    "--out", str(tmp_path / "t.md")])

    default_eval = next(c for c in commands if c[0].endswith("evaluate.py") and "mnist-cnn-cpu-seed0" in c[2])
    assert "--trained-baselines" in default_eval  # the archived record had GCPL: so must the new one
    records = {json.loads(line)["run"]: json.loads(line) for line in archive.read_text().splitlines()}
    assert records["mnist-cnn-cpu-seed0"]["results"]["commit"] == "1111111"  # archived at once, in full
    assert any(row["method"] == "gcpl" for row in records["mnist-cnn-cpu-seed0"]["results"]["rows"])
    assert "mnist-cnn-cpu-gan_paper-seed0" in records


def test_bal_geometry_reports_when_the_distance_separates_better_than_d():
    import diagnose

    rng = np.random.default_rng(0)
    id_distance, ood_distance = rng.uniform(0.5, 1.4, 500), rng.uniform(1.6, 3.0, 400)
    # D that cannot tell them apart (same logits), p1 a little better than chance
    id_scores = {"bal_p2_only": rng.normal(2.0, 1.0, 500), "max_softmax": rng.normal(0.6, 0.2, 500)}
    ood_scores = {"bal_p2_only": rng.normal(2.0, 1.0, 400), "max_softmax": rng.normal(0.5, 0.2, 400)}
    id_scores["bal"], ood_scores["bal"] = id_scores["max_softmax"], ood_scores["max_softmax"]

    report = diagnose.run_geometry(id_distance, ood_distance, id_scores, ood_scores, [2.0, 4.0])

    assert report["auroc"]["distance"] == 1.0  # nearer the class mean ranks as more ID
    assert abs(report["auroc"]["bal_p2_only"] - 0.5) < 0.06
    bands = report["bands"]
    assert [(b["from"], b["to"]) for b in bands] == [(0.0, 1.5), (1.5, 2.0), (2.0, 4.0), (4.0, None)]
    assert sum(b["ood_share"] for b in bands) == pytest.approx(1.0) and bands[0]["ood_share"] == 0.0
    assert bands[0]["id_share"] == 1.0 and bands[3]["ood_mean_p2"] is None
    assert bands[1]["ood_mean_p2"] == pytest.approx(np.mean(1 / (1 + np.exp(-ood_scores["bal_p2_only"][
        (ood_distance >= 1.5) & (ood_distance < 2.0)]))))
    assert report["distance_over_radius"]["ood"]["median"] == pytest.approx(np.median(ood_distance), abs=1e-4)
    text = diagnose.bal_markdown({"cell": "c", "commit": "x", "runs": [{**report, "shell_radius": [2.0, 4.0]}]})
    assert "| [1.5, 2) | " in text and "100.00" in text


def test_bal_geometry_says_what_a_run_lacks(tmp_path):
    import diagnose
    from bal_tf.errors import InputError

    (tmp_path / "features").mkdir()
    with pytest.raises(InputError, match="ood_mnist.npz.*evaluated by evaluate.py"):
        diagnose.load_run(tmp_path, "mnist")


def test_reproduce_status_names_each_raw_file_not_measured_by_heads_code(tmp_path, monkeypatch):
    import reproduce

    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    results = tmp_path / reproduce.RESULTS
    results.mkdir(parents=True)
    (results / "current.json").write_text(json.dumps({"commit": "head", "value": 1}))
    (results / "sweep.jsonl").write_text(json.dumps({"commit": "head"}) + "\n" + json.dumps({"x": 1}) + "\n")
    (results / "protocol_runs.jsonl").write_text(
        json.dumps({"run": "a-seed0", "results": {"commit": "head"}}) + "\n"
        + json.dumps({"run": "a-seed1", "results": {"commit": "old"}}) + "\n")
    asked = []

    def same_code(commit, head, extra, job=None):
        asked.append(tuple(extra))
        return commit == head

    def status(**fields):
        return reproduce.job_status(reproduce.Job("j", "", [], [], **fields), "head", same_code)

    assert status(raw=[f"{reproduce.RESULTS}/current.json"], depends=["tests"]) == (
        True, [f"{reproduce.RESULTS}/current.json: current (measured at head)"])
    assert asked == [("tests",)]
    ok, lines = status(raw=[f"{reproduce.RESULTS}/sweep.jsonl", f"{reproduce.RESULTS}/gone.json"])
    assert not ok and "stale (measured at unstamped" in lines[0] and lines[1].endswith("gone.json: missing")
    # a resumable sweep in progress: its committed partial file says how far (records of this code)
    (results / "gone.jsonl.partial").write_text(json.dumps({"commit": "head"}) + "\n" + json.dumps({"commit": "old"})
                                                + "\n" + '{"commit": "he')  # the last line cut by a kill
    ok, lines = status(raw=[f"{reproduce.RESULTS}/gone.jsonl"])
    assert not ok and lines[0].endswith("gone.jsonl: missing; in progress: 1 records of this code in "
                                        f"{reproduce.RESULTS}/gone.jsonl.partial")
    (results / "current.json.partial").write_text("")  # a new sweep of a current file begun: still current
    assert status(raw=[f"{reproduce.RESULTS}/current.json"]) == (
        True, [f"{reproduce.RESULTS}/current.json: current (measured at head); in progress: 0 records of this code "
               f"in {reproduce.RESULTS}/current.json.partial"])
    ok, lines = status(archived_runs=["a-seed0", "a-seed1", "a-seed2"])
    assert not ok and lines == [f"{reproduce.RESULTS}/protocol_runs.jsonl: 1 of 3 runs at this code "
                                "(to do: a-seed1, a-seed2)"]
    assert status(archived_runs=["a-seed0"])[0]
    assert not status()[0]  # nothing stamped: never reported current
    (results / "figures.json").write_text(json.dumps({"a.png": {"commit": "head"}, "b.png": {"commit": "old"}}))
    ok, lines = status(raw=[f"{reproduce.RESULTS}/figures.json"])
    assert not ok and "stale (measured at old" in lines[0]


def test_reproduce_jobs_declare_what_status_checks():
    import reproduce

    for job in reproduce.jobs("runs"):
        assert job.raw or job.archived_runs, job.name
        for raw in job.raw:
            assert raw.startswith((reproduce.RESULTS, "docs/figures/")), raw
    sweeps = {final for job in reproduce.jobs("runs") for final in job.sweeps.values()}
    assert sweeps <= {raw for job in reproduce.jobs("runs") for raw in job.raw}


def test_figures_extract_the_test_features_train_py_does_not_cache(tiny_run_copy, tmp_path):
    import figures

    cached = tiny_run_copy / "features" / "test.npz"
    cached.unlink(missing_ok=True)  # what train.py leaves: train features only
    with pytest.raises(SystemExit, match="its D reads 60-d features; .* backbone.feature_dim=2 and features.depths=penultimate"):
        figures.mnist_2d_figures(tiny_run_copy, tmp_path)
    from bal_tf.features import FeatureSet

    assert FeatureSet.load(cached).at("penultimate").features.shape == (500, 32)  # the cache holds every depth


def test_render_reports_prints_each_raw_report_under_its_command(tmp_path):
    import argparse

    paths = []
    for index in (1, 2):
        paths.append(tmp_path / f"r{index}.json")
        paths[-1].write_text(json.dumps({"command": f"python measure.py --n {index}", "value": index}))
    text = tables.render_reports(paths, lambda report: f"value {report['value']}")
    assert text == ("Generated by `python measure.py --n 1`.\n\nvalue 1\n\n"
                    "Generated by `python measure.py --n 2`.\n\nvalue 2")
    parser = argparse.ArgumentParser()
    tables.add_report_arguments(parser, render=False)
    args = parser.parse_args(["--out", "a.json", "--markdown", "a.md"])
    assert (str(args.out), str(args.markdown), hasattr(args, "render")) == ("a.json", "a.md", False)


def _sweep_record(variant, run, seed, auroc, last=None, epoch=5, baseline=False, accuracy=None):
    record = {"variant": variant, "run": f"/r/{run}", "seed": seed, "selected_epoch": epoch,
              "selected/ood": {"auroc": auroc / 100, "fpr95": 0.1}, "last/ood": {"auroc": (last or auroc) / 100, "fpr95": 0.1}}
    if baseline:
        record["baseline"] = True
    if accuracy is not None:
        record["classifier_test_accuracy"] = accuracy
    return record


def test_the_sweep_reading_says_what_the_table_says(tmp_path, capsys):
    import ablations

    records = []
    for seed, run in enumerate(("a", "b", "c")):
        records.append(_sweep_record("max_softmax", run, seed, 97.0 + seed, baseline=True, accuracy=0.99 + seed / 1000))
        records.append(_sweep_record("t:worst", run, seed, 90.0 + seed, last=60.0))  # collapses at the last epoch
        records.append(_sweep_record("t:mid", run, seed, [97.5, 99.5, 98.5][seed]))  # above MSP on the mean, not in seed 2
        records.append(_sweep_record("t:best", run, seed, 99.0 + seed / 2, epoch=seed))
        records.append(_sweep_record("u:same", run, seed, 99.0 + seed / 2, epoch=seed))  # best, labelled elsewhere
    path = tmp_path / "sweep.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    ablations.main(["summarize", str(path), "--ood", "ood", "--prefix", "t:", "--reading",
                          "--paper-order", "t:worst", "t:mid", "t:best", "--identical", "t:best", "u:same"])
    out = capsys.readouterr().out
    assert "- ranked, worst first: worst 91.00 < mid 98.50 < best 99.50." in out
    assert "the paper's order (worst < mid < best) holds" in out
    assert "- best: best (99.50 ± 0.50); within one sample std of it (difference <= the larger of the two stds): mid." in out
    assert "on the mean: mid, best; in every seed: best." in out  # mid: below MSP in seed 2 (98.5 < 99)
    assert "more than 5 points below the selected checkpoint: worst." in out
    assert "99.00% (a), 99.10% (b), 99.20% (c)" in out
    assert "over the 3 (run, seed) pairs measured as both, their selected epochs and AUROCs agree to every digit." in out
    ablations.main(["summarize", str(path), "--ood", "ood", "--prefix", "t:", "--reading",
                          "--paper-order", "t:best", "t:mid", "--identical", "t:best", "t:mid"])
    out = capsys.readouterr().out
    assert "the paper's order (best < mid) does not hold" in out and "AUROCs differ in 3." in out


def test_the_table3_reading_names_the_best_arm_per_dim_and_those_above_max_softmax(tmp_path, capsys):
    import ablations

    records = []
    for dim, msp in ((2, 99.0), (64, 95.0), (256, 97.0)):
        run = f"mnist-cpu-dim{dim}-seed0"
        records.append(_sweep_record("max_softmax", run, 0, msp, baseline=True, accuracy=0.99 - dim / 1e5))
        for seed in (0, 1, 2):
            records.append(_sweep_record(f"table3:dim={dim}:uniform", run, seed, 98.0 + seed / 10))
            records.append(_sweep_record(f"table3:dim={dim}:gaussian_tail", run, seed, 96.0 + seed * 2))
    path = tmp_path / "t3.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    ablations.main(["summarize", str(path), "--ood", "ood", "--by-dim", "--reading"])
    out = capsys.readouterr().out
    assert ("- dim 2: best uniform (98.10 ± 0.10); within one sample std of it: gaussian_tail; "
            "above max-softmax of that classifier (99.00): none.") in out
    assert "- dim 64: best uniform (98.10 ± 0.10); within one sample std of it: gaussian_tail; " \
           "above max-softmax of that classifier (95.00): uniform, gaussian_tail." in out
    # the classifiers in the order of their dims (a string sort would put 256 before 64)
    assert ("classifiers' test accuracy: 99.00% (mnist-cpu-dim2-seed0), 98.94% (mnist-cpu-dim64-seed0), "
            "98.74% (mnist-cpu-dim256-seed0).") in out


def decision_log_records(run, bal):
    """Two baselines and BAL's variants (name -> per-seed AUROCs over two families)."""
    lines = [record(run, "knn", "-", 0, [0.99, 0.90]), record(run, "msp", "-", 0, [0.80, 0.95])]
    for variant, seeds in bal.items():
        lines += [record(run, "bal", variant, seed, aurocs) for seed, aurocs in enumerate(seeds)]
    return lines


def test_decision_log_reads_ranks_the_rule_and_the_families_that_moved(monkeypatch):
    import validate

    # ranks per family: ref (0.85, 0.85) -> 2, 3 => 2.5; better (0.995, 0.96) -> 1, 1 => 1.0
    per_run = {run: decision_log_records(run, {"ref": [[0.85, 0.85], [0.85, 0.85]],
                                                "better": [[0.995, 0.96], [0.995, 0.96]],
                                                "same": [[0.851, 0.85], [0.851, 0.85]]})
               for run in ("A", "B")}
    summaries = {run: validate.summarize_run(records) for run, records in per_run.items()}
    assert summaries["A"].ranks == {"ref": 2.5, "better": 1.0, "same": 2.5}
    text = validate.render_decision(validate.Decision("x", "X", "ref", ["better", "same"]), summaries)
    assert "| `better` | 1.00 | 1.00 | 1.00 | clears the rule (-1.50) |" in text
    assert "| `same` | 2.50 | 2.50 | 2.50 | within the rule (+0.00; it asks below -0.25) |" in text
    # 'better' moved both families by >= 0.5 points (listed with the best baseline); 'same' moved none
    assert "`better` on A: family0 85.00 ± 0.00 -> 99.50 ± 0.00 (knn 99.00); family1 85.00 ± 0.00 -> 96.00 ± 0.00 (msp 95.00)" in text
    assert "`same` on" not in text
    worse = validate.render_decision(validate.Decision("y", "Y", "better", ["ref"]), summaries)
    assert "worse (+1.50)" in worse
    piped = {run: validate.summarize_run(decision_log_records(run, {"ref": [[0.85, 0.85]], "v | D ensemble: top3": [[0.85, 0.85]]}))
             for run in ("A",)}
    assert "| `v \\| D ensemble: top3` | 2.50 |" in validate.render_decision(
        validate.Decision("z", "Z", "ref", ["v | D ensemble: top3"]), piped)  # a pipe in a cell is escaped
    assert "`ref` on B: family0 99.50 ± 0.00 -> 85.00 ± 0.00 (knn 99.00)" in worse  # falls are moves too


def test_decision_log_names_a_variant_no_record_holds():
    import validate

    summaries = {"A": validate.summarize_run(decision_log_records("A", {"ref": [[0.85, 0.85]]}))}
    with pytest.raises(KeyError, match="'typo'"):
        validate.render_decision(validate.Decision("x", "X", "ref", ["typo"]), summaries)


def test_decision_log_renders_from_the_committed_raw_files(tmp_path):
    """Every decision of the log names variants its raw files hold (the docs stay renderable)."""
    import validate

    assert validate.main(["decision-log", "--out", str(tmp_path / "log.md")]) == 0
    text = (tmp_path / "log.md").read_text()
    assert text == validate.render_decision_log()
    # + the four side measurements, the final validation job's section and the density-ratio sweep's four rounds
    assert text.count("\n### ") == len(validate.DECISIONS) + 4 + 1 + 4


def test_decision_log_reads_the_final_validation_jobs_variants_at_one_commit(tmp_path):
    """The last section compares exactly what the final validation job measures, read from its own
    raw files (with their stamps), and says what measures them while they are missing."""
    import validate
    import reproduce

    section = validate.AT_ONE_COMMIT
    # what the job measures today, and the presets deleted in the cut while the files hold them
    assert [section.reference] + [v for v in section.alternatives if v not in validate.HISTORY_PRESETS] == \
        reproduce.VALIDATION_VARIANTS
    assert validate.FINAL == reproduce.FINAL_VALIDATION

    final = tmp_path / validate.FINAL
    final.mkdir(parents=True)
    (final / f"{validate.RUNS[0]}.jsonl").write_text("")
    missing = validate.render_at_one_commit(tmp_path)
    assert f"No records yet in `{validate.FINAL}/{validate.RUNS[1]}.jsonl`" in missing
    assert f"`{validate.FINAL}/{validate.RUNS[0]}.jsonl`" not in missing  # only the files that are missing are named
    assert "reproduce.py --only validation" in missing

    reference, no_ema = section.reference, section.alternatives[-1]
    for run in validate.RUNS:
        bal = {variant: [[0.85, 0.85]] for variant in section.alternatives}
        bal[reference] = [[0.85, 0.85]]
        bal[no_ema] = [[0.995, 0.96]]  # ranks 1, 1 against the reference's 2, 3
        lines = [dict(r, commit="abc1234", machine="test box") for r in decision_log_records(f"/runs/{run}", bal)]
        (final / f"{run}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    text = validate.render_at_one_commit(tmp_path)
    assert f'<a id="{section.anchor}"></a>Reference: `{reference}`' in text
    assert f"`{validate.FINAL}/{validate.RUNS[2]}.jsonl` (measured at commits abc1234; test box)" in text
    assert f"| `{no_ema}` | 1.00 | 1.00 | 1.00 | 1.00 | clears the rule (-1.50) |" in text
    assert f"| `{section.alternatives[0]}` | 2.50 | 2.50 | 2.50 | 2.50 | within the rule (+0.00; it asks below -0.25) |" in text
    # files measured after the cut hold no history preset: their rows are left out, not an error
    for run in validate.RUNS:
        bal = {variant: [[0.85, 0.85]] for variant in reproduce.VALIDATION_VARIANTS}
        lines = [dict(r, commit="abc1234", machine="test box") for r in decision_log_records(f"/runs/{run}", bal)]
        (final / f"{run}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    text = validate.render_at_one_commit(tmp_path)
    assert "gan_preset=stable" not in text and "`gan_preset=paper_literal`" in text


def test_reproduce_validation_job_trains_no_classifier_for_a_run_whose_records_are_finished(tmp_path, monkeypatch):
    """A run another session finished (every variant and seed and the baselines, by this code, on one
    classifier) is left out of the job's commands; a run one GAN short, or measured by other code
    or on two classifiers, is not."""
    import reproduce
    import tables

    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    monkeypatch.setattr(reproduce, "commit", lambda: "head")
    monkeypatch.setattr(tables, "same_code", lambda commit, head, extra=(): commit == head)
    final = tmp_path / reproduce.FINAL_VALIDATION
    final.mkdir(parents=True)

    def write(name, drop=0, commit="head", second_classifier=False):
        keys = [("max_softmax", "-", 0)] + [("bal", v, s) for v in reproduce.VALIDATION_VARIANTS for s in (0, 1, 2)]
        keys = keys[:len(keys) - drop]
        records = [{"run": f"/x/{name}-seed0", "method": m, "variant": v, "seed": s, "commit": commit,
                    "classifier_sha256": "b" if second_classifier and i % 2 else "a"} for i, (m, v, s) in enumerate(keys)]
        (final / f"{name}-seed0.jsonl.partial").write_text("".join(json.dumps(r) + "\n" for r in records) + '{"cut')

    first, second, third = reproduce.VALIDATION_RUNS
    write(first)
    write(second, drop=1)
    write(third, commit="other")

    def commands():
        job = next(j for j in reproduce.jobs("R") if j.name == "validation")
        return [" ".join(c) for c in job.measure]

    listed = commands()
    assert not any(f"R/{first}-seed0" in c for c in listed)  # finished: no classifier, no sweep
    for name in (second, third):
        assert sum(f"R/{name}-seed0" in c for c in listed) == 2  # train.py and validate.py
    write(first, second_classifier=True)
    assert sum(f"R/{first}-seed0" in c for c in commands()) == 2


def test_reproduce_commands_import_bal_tf_from_their_own_checkout(tmp_path, monkeypatch, capsys):
    """A worktree using another checkout's virtualenv (editable install) must still measure its own
    code: the commands see this checkout first on PYTHONPATH."""
    import reproduce

    fake = tmp_path / "checkout"
    (fake / "bal_tf").mkdir(parents=True)
    (fake / "bal_tf" / "__init__.py").write_text("")
    (fake / "benchmarks").mkdir()  # run as a script: its own directory, not the cwd, leads sys.path
    (fake / "benchmarks" / "probe.py").write_text(
        "import os\nimport bal_tf\nprint(bal_tf.__file__)\nprint(os.environ['PYTHONPATH'])\n")
    monkeypatch.setattr(reproduce, "ROOT", fake)
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    out = reproduce.run_command([sys.executable, "benchmarks/probe.py"], dry_run=False, capture=True)
    module, path = out.split("\n")[:2]
    assert module == str(fake / "bal_tf" / "__init__.py")
    assert path == f"{fake}{os.pathsep}/elsewhere"


def test_declared_equivalent_code_joins_its_commits_for_the_jobs_it_covers_only():
    """benchmarks/equivalent_code.json: the refactor of issue 35 changed no number that
    tests/test_refactor_reference.py checks, so the records of 05e9f0b's code count for the jobs the
    entry covers, and not for those it excepts (whose numbers the change can move)."""
    import subprocess

    entries = tables.equivalences()
    assert entries, "benchmarks/equivalent_code.json holds no entry"
    root = Path(__file__).resolve().parents[1]
    for entry in entries:
        if subprocess.run(["git", "cat-file", "-e", entry["to"]], cwd=root).returncode != 0:
            pytest.skip("a shallow clone: the entry's commits are not here")
        assert (root / entry["evidence"].split(":")[0]).is_file()  # the test that shows it
        for commit in (entry["from"], entry["to"]):
            assert tables.code_digest(commit) in entry["code_digests"]
        assert not tables._git_agrees(entry["from"], entry["to"], ())  # the code does differ
        assert tables.same_code(entry["from"], entry["to"], (), "protocols")
        assert tables.same_code(entry["from"], entry["to"], ["benchmarks/validate.py"], "validation")
        for job in entry["except_jobs"]:
            assert not tables.same_code(entry["from"], entry["to"], (), job)
        # a job's path outside the entry still has to agree: .ci changed between the two commits
        assert not tables.same_code(entry["from"], entry["to"], ["tests"], "protocols")


def test_reproduce_status_says_which_jobs_a_change_stales_before_it_is_made():
    import reproduce

    jobs = reproduce.jobs("R")
    gan = reproduce.change_report(jobs, ["bal_tf/gan.py"], "a change to")
    assert f"would stale {len(jobs)} of {len(jobs)} jobs" in gan[0]  # every job measures bal_tf
    assert "classifiers and feature caches are reused" in gan[1]
    backbone = reproduce.change_report(jobs, ["bal_tf/backbones/resnet.py"], "a change to")
    assert "the classifiers are trained again" in backbone[1]
    validate_only = reproduce.change_report(jobs, ["benchmarks/validate.py"], "a change to")
    assert "would stale 1 of" in validate_only[0] and ": validation" in validate_only[0]
    assert reproduce.change_report(jobs, ["docs/DESIGN.md"], "a change to") == [
        "reproduce: a change to (docs/DESIGN.md) stale no job"]


def test_figure_5_draws_every_negative_source_of_the_default_but_the_shuffled_pairs():
    import figures
    import tensorflow as tf

    from bal_tf.config import GANConfig
    from bal_tf.gan import make_gan

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 600)
    points = (np.array([[-3.0, 0.0], [3.0, 0.0]])[labels] + rng.normal(size=(600, 2))).astype(np.float32)
    gan = make_gan(GANConfig(latent_dim=4, generator_units=[8], discriminator_units=[8]), 2, points, labels)
    samples = figures.negative_samples(gan, tf.constant(points[:256]), tf.constant(labels[:256], tf.int32))
    assert list(samples) == [figures.NEGATIVE_LABELS[name] for name in ("trivial", "hard", "ladder", "floor")]
    assert all(s.ndim == 2 and s.shape[1] == 2 and len(s) for s in samples.values())


def test_step_profile_times_the_train_step_of_each_variant():
    import timing

    features, labels = timing.synthetic_features(count=512, dim=8, classes=3)
    small = ["gan.discriminator_units=[16]", "gan.generator_units=[16]", "gan.latent_dim=4",
             "gan.steps_per_execution=2"]
    grouped = timing.step_time(features, labels, 3, small, {}, steps=16)
    assert grouped["ms_median"] > 0 and grouped["ms_iqr"][0] <= grouped["ms_median"] <= grouped["ms_iqr"][1]
    assert grouped["steps_timed"] >= 4
    # every variant is a valid config of today's GANConfig
    from bal_tf.config import RunConfig

    for overrides, _ in timing.STEP_VARIANTS.values():
        RunConfig().with_overrides(overrides)


def test_stage1_step_times_a_presets_backbone_on_its_image_shape():
    import timing

    row = timing.stage1_step_time("mnist-cnn-cpu", batch=8, jit=False, steps=12)
    assert row["ms_per_step"] > 0 and row["ms_per_image"] == pytest.approx(row["ms_per_step"] / 8, abs=0.01)
    assert row["steps_timed"] >= 4


def test_diagnostics_stamp_their_subcommand_once_and_render_or_demand_a_run(monkeypatch, capsys):
    import diagnose

    assert diagnose.diagnostic_command("bal", ["--run", "R", "--ood", "mnist"]) == \
        "python benchmarks/diagnose.py bal --run R --ood mnist"
    monkeypatch.setattr(sys, "argv", ["benchmarks/diagnose.py", "gcpl", "--run", "R"])  # from the command line
    assert diagnose.diagnostic_command("gcpl", None) == "python benchmarks/diagnose.py gcpl --run R"
    committed = Path(__file__).resolve().parents[1] / "docs" / "results" / "gcpl_geometry_mnist-cpu-seed0.json"
    assert diagnose.main(["gcpl", "--render", str(committed)]) is None
    assert "GCPL accuracy" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        diagnose.main(["bal", "--ood", "mnist"])  # no --run
    assert "give --run (one or more) and --ood" in capsys.readouterr().err


def test_density_ratio_sweep_applies_the_rank_rule_and_the_no_loss_rule(tmp_path, monkeypatch):
    import json

    import validate

    monkeypatch.setattr(validate, "DR_RUNS", ["A", "B"])
    monkeypatch.setattr(validate, "DR_CANDIDATES", {"better": "better", "loses": "loses"})
    folder = tmp_path / validate.DR_VALIDATION
    folder.mkdir(parents=True)
    seeds = lambda *aurocs: [list(a) for a in aurocs]  # noqa: E731
    for run in ("A", "B"):
        # "loses" ranks better on A but its mean AUROC on B falls 5 points below the incumbent's
        bal = {"default": seeds([0.85, 0.85], [0.86, 0.86], [0.84, 0.84]),
               "better": seeds([0.995, 0.96], [0.995, 0.96], [0.995, 0.96]),
               "loses": seeds([0.995, 0.96], [0.995, 0.96], [0.995, 0.96]) if run == "A" else
               seeds([0.80, 0.80], [0.80, 0.80], [0.80, 0.80])}
        lines = decision_log_records(run, bal)
        # seeds 1 and 2 in a file of their own, as a resumed sweep of other code writes them
        (folder / f"{run}.jsonl").write_text("\n".join(json.dumps(r) for r in lines if r["seed"] == 0) + "\n")
        (folder / f"{run}.seeds12.jsonl").write_text("\n".join(json.dumps(r) for r in lines if r["seed"] > 0) + "\n")
    text = validate.render_density_ratio_sweep(tmp_path)
    assert "| better | `better` | 1.00 | 1.00 | 1.00 (3 seeds) | - | clears the rule (-1.50); loses on no run |" in text
    assert "loses on B 80.00 < 85.00 - 1.00" in text
    assert "among the 2 feature-based baselines of the records" in text and "Without the depths'" not in text
    # a later round: another incumbent, its own candidates, its own folder
    second = validate.render_density_ratio_sweep(tmp_path, validate.DR_VALIDATION, {"worse": "default"},
                                                 ("round 2's incumbent", "better"))
    assert "| round 2's incumbent | `better` | 1.00 | 1.00 | 1.00 (3 seeds) | - | reference |" in second
    assert "| worse | `default` | 2.50 | 2.50 | 2.50 (3 seeds) | - | worse (+1.50); loses on A" in second
    # a variant measured on some runs only: its ranks there, no reading
    with (folder / "A.jsonl").open("a") as lines:
        lines.write(json.dumps(record("A", "bal", "only_on_a", 0, [0.995, 0.96])) + "\n")
    partial = validate.render_density_ratio_sweep(tmp_path, validate.DR_VALIDATION, {"A only": "only_on_a"})
    assert "| A only | `only_on_a` | 1.00 | - | - | - | measured on 1 of 2 runs: not read |" in partial
    # a depths' baseline on run A ahead of everything: counted, and the incumbent's rank without it said
    with (folder / "A.jsonl").open("a") as lines:
        lines.write(json.dumps(record("A", "knn_depths", "-", 0, [1.0, 1.0])) + "\n")
    deeper = validate.render_density_ratio_sweep(tmp_path)
    assert "among the 2-3 feature-based baselines" in deeper
    assert "| incumbent (the default at `08e45e1`) | `default` | 3.50 | 2.50 | 3.00 (3 seeds)" in deeper
    assert "the incumbent's mean rank would be 2.50 (round 1 ranked among the other 7 only)" in deeper
    (folder / "B.jsonl").unlink()
    assert "No records yet for `B`" in validate.render_density_ratio_sweep(tmp_path)
