#!/usr/bin/env python
"""Timing benchmarks (not tests): each measures one thing on this machine, writes its raw JSON
(stamped with commit, machine and command) and renders the README's block from that file.

    python benchmarks/timing.py readme --out docs/results/readme_timing.json     # the README's run command, part by part
    python benchmarks/timing.py tests --out docs/results/test_command_timing.json # the README's test command
    python benchmarks/timing.py stage2 --run RUN --out FILE.json                # stage 2's wall clock
    python benchmarks/timing.py export-latency --run RUN --out FILE.json        # the exported graph vs the backbone
    python benchmarks/timing.py export-report --info INFO.json LATENCY.json ...  # the README's export block
    python benchmarks/timing.py step-profile --synthetic --out FILE.json        # where a stage-2 step's time goes
    python benchmarks/timing.py stage1-step --preset mnist-cpu --out FILE.json  # stage 1's step time per batch size
    python benchmarks/timing.py SUBCOMMAND --help

Run them on an idle machine: this host is shared, and its load moves every figure.
"""

from __future__ import annotations

import argparse
import datetime
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
from tables import markdown_table, provenance

README_DOC = """Times the README's quick-start command on a fresh clone (a benchmark, not a test).

Reads the command from README.md (the first ``bash`` block of "Quick start"), clones the
repository at HEAD into a temporary folder, runs each ``&&``-joined part there and reports
wall-clock seconds per part; for ``train.py`` also the time at which each stage finished
(from its ``stage N: done`` lines).

    python benchmarks/timing.py readme --out docs/results/readme_timing.json --conditions idle
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/timing.py readme --out docs/results/readme_timing_avx2.json --conditions idle
    python benchmarks/timing.py readme --render docs/results/readme_timing.json docs/results/readme_timing_avx2.json

On a CPU without AVX-512, the first line already measures the AVX2 row: write it to
readme_timing_avx2.json. The raw file's ``machine`` names the CPU kind and any oneDNN limit.

Run it on an otherwise idle machine: every figure is a wall-clock time. The clone's setup
reuses pip's download cache and the tfds data already provisioned in ~/tensorflow_datasets.
"""

TESTS_DOC = """Times the README's test command on a fresh clone (a benchmark, not a test).

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

STAGE2_DOC = """Stage 2's wall-clock time on a run's cached features (a benchmark, not a test).

Stage 2 as ``train.py`` runs it once the classifier is trained: load the cached penultimate
features, train BAL's GAN for the preset's epochs with checkpoint selection on synthetic OOD,
and keep the selected D. Nothing is written into the run. The target (issue "BAL that leads"):
under 4 minutes at the CPU preset.

    python benchmarks/stage2_time.py --run runs/mnist-cpu-seed0 [--gan-preset NAME] [--set gan.FIELD=VALUE ...] \
        [--out docs/results/stage2_time_mnist-cpu.json]
    python benchmarks/stage2_time.py --render docs/results/stage2_time_mnist-cpu.json  # README line

Run it on an otherwise idle machine: every figure is a wall-clock time.
"""

EXPORT_LATENCY_DOC = """Latency of the exported graph (backbone + head + D + score) vs the backbone alone.

    python benchmarks/export_latency.py --run runs/mnist-cpu-seed0 [--rounds 30 --calls 10]

Needs `python export/export_model.py --run RUN` first (or `--xla all --out DIR` for the
XLA-compiled graph, then `--saved-model DIR/saved_model` here). Goal: BAL adds at most 5% to the
backbone's latency. Two measurements per batch size (1 and 256):

* ``ratio``: exported graph / backbone (the classifier as a tf.function). The two are timed in
  alternating rounds, so that drifts in machine load hit both; the median of the per-round
  ratios is reported with its interquartile range.
* ``bal_part_ratio``: the part BAL adds (D on the features, the argmax and the score) timed on
  its own, divided by the backbone's time. It is far less noisy than a difference of two large
  timings.
"""

EXPORT_REPORT_DOC = """The README's export figures (parity and latency), rendered from the raw JSON the export and
the latency benchmark wrote; ``benchmarks/reproduce.py --only export`` puts them in place.

    python benchmarks/export_report.py --info docs/results/export_info_mnist-cpu-seed0.json \\
        docs/results/export_latency_default.json [docs/results/export_latency_xla_all.json]
"""


# ---- readme (was benchmarks/readme_timing.py) ---------------------------------------------------

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


# The README's timing block: the run command on an AVX-512 CPU, and with AVX2 kernels (a real
# AVX2-only CPU, or ONEDNN_MAX_CPU_ISA=AVX2 on an AVX-512 one; each file's machine says which).
README_TIMING_RAW = ("docs/results/readme_timing.json", "docs/results/readme_timing_avx2.json")


def readme_rows(raw: dict) -> list[tuple[str, str, float]]:
    """(step, what it prints, seconds) per part of one raw file."""
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
    return rows


def readme_render(*paths: Path) -> str:
    """The README's sentence and table, from the raw files only: one time column per file (one
    per CPU kind: AVX-512, or oneDNN limited to AVX2 / a real AVX2 CPU)."""
    raws = [json.loads(Path(path).read_text()) for path in paths]
    measured = []
    for path, raw in zip(paths, raws):
        conditions = raw.get("conditions", "load not recorded")
        measured.append(f"**{minutes(raw['total_seconds'])} in all** on {raw['machine']}, {conditions}, at commit "
                        f"`{raw['commit']}` on {raw['date_utc'][:10]} (raw: `{path}`)")
    command = raws[-1].get("measured_by", "python benchmarks/timing.py readme")
    lines = [f"What the run command prints, and how long it takes: measured with `{command}` (clones the "
             "repository, runs this README's command part by part; setup with pip's download cache warm and the "
             "datasets already provisioned): " + "; ".join(measured) + ".", ""]
    per_file = [readme_rows(raw) for raw in raws]
    headers = ["step", "prints"] + [f"time at `{raw['commit']}` ({raw['machine']})" if len(raws) > 1 else "time"
                                    for raw in raws]
    lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for index, (step, prints, _) in enumerate(per_file[0]):
        times = [minutes(rows[index][2]) if index < len(rows) else "-" for rows in per_file]
        lines.append(f"| {step} | {prints} | " + " | ".join(times) + " |")
    return "\n".join(lines)


def readme_main(argv=None):
    parser = argparse.ArgumentParser(prog="timing.py readme", description=README_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=ROOT, help="repository to clone (default: this one)")
    parser.add_argument("--keep", type=Path, default=None, help="clone here and keep it (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=None, help="also write the raw JSON here")
    parser.add_argument("--conditions", default=None, help="the machine's load, recorded with the figures")
    parser.add_argument("--render", type=Path, nargs="+", default=None, metavar="RAW_JSON",
                        help="print the README's table from these raw files (one time column each) and stop "
                             "(no timing)")
    args = parser.parse_args(argv)
    if args.render:
        print(readme_render(*args.render))
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
        "commit": commit, "machine": provenance()["machine"],
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "measured_by": "python benchmarks/timing.py readme" + (f" --out {args.out}" if args.out else ""),
        **({"conditions": args.conditions} if args.conditions else {}),
        "total_seconds": round(sum(p["seconds"] for p in parts), 1), "parts": parts,
    }
    text = json.dumps(raw, indent=2)
    print(text)
    if args.out:
        sys.path.insert(0, str(ROOT))
        from bal_tf.io import atomic_write_text

        atomic_write_text(args.out, text + "\n")


# ---- tests (was benchmarks/test_command_timing.py) ----------------------------------------------

# pytest's last line, "251 passed, 6 warnings in 263.61s (0:04:23)" (with -q, as .ci/run runs it) or
# wrapped in "=" signs (without -q)
SUMMARY = re.compile(r"^[= ]*(?:\d+ \w+, )*(\d+) passed[^\n]* in ([\d.]+)s", re.M)


def pytest_summary(output: str) -> tuple[int, float]:
    """(tests passed, pytest's seconds) from pytest's last summary line; (0, 0.0) if absent."""
    found = SUMMARY.findall(output)
    return (int(found[-1][0]), float(found[-1][1])) if found else (0, 0.0)


def time_test_command(repo: Path, conditions: str, measured_by: str = "python benchmarks/timing.py tests") -> dict:
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
            "measured_by": measured_by,
            "date": datetime.date.today().isoformat(), "tests_passed": passed,
            "pytest_seconds": pytest_seconds, "total_seconds": round(total), "rc": process.returncode,
            "pytest_tail": process.stdout[-2000:], "stderr_tail": process.stderr[-1000:]}


def tests_render(result: dict, source: str) -> str:
    minutes, seconds = divmod(int(result["total_seconds"]), 60)
    p_minutes, p_seconds = divmod(int(round(result["pytest_seconds"])), 60)
    outcome = "passed" if result["rc"] == 0 else f"FAILED (exit code {result['rc']})"
    return (f"The test command took **{minutes} min {seconds} s** from a fresh clone (`.ci/run`, which runs it "
            f"verbatim) on {result['machine']}, on {result['date']} at commit `{result['commit']}`: "
            f"{result['tests_passed']} tests {outcome}, {p_minutes} min {p_seconds} s of it in pytest "
            f"after setup (raw: `{source}`, written by `{result.get('measured_by', result['command'])}`).")


def tests_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="timing.py tests", description=TESTS_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=ROOT, help="repository to clone (default: this one)")
    parser.add_argument("--out", type=Path, help="write the raw result here (JSON)")
    parser.add_argument("--conditions", default="", help="how loaded the machine was, for the record")
    parser.add_argument("--render", metavar="JSON", nargs="+",
                        help="print the README sentence of each of these raw results instead (one per CPU kind)")
    args = parser.parse_args(argv)
    if args.render:
        print("\n\n".join(tests_render(json.loads(Path(path).read_text()), path) for path in args.render))
        return 0
    result = time_test_command(args.repo, args.conditions, " ".join(
        ["python", "benchmarks/timing.py", "tests", *(sys.argv[2:] if argv is None else argv)]))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if result["rc"] == 0 else 1


# ---- stage2 (was benchmarks/stage2_time.py) -----------------------------------------------------

# Issue 36's targets for stage 2 of the default at the CPU preset: 1 min with AVX-512 kernels,
# 2 min with AVX2 ones (a CPU without AVX-512, or ONEDNN_MAX_CPU_ISA=AVX2).
TARGET_SECONDS = {"AVX-512": 60.0, "AVX2": 120.0}


def kernel_kind() -> str:
    """``AVX-512`` when oneDNN may use it here, else ``AVX2`` (the slower kernels' target)."""
    from bal_tf.provenance import cpu_kernels

    kernels = cpu_kernels()
    return "AVX-512" if kernels.startswith("AVX-512") and "limited" not in kernels else "AVX2"


def stage2_time(run_dir: Path, gan_preset: str | None = None, seed: int = 0, overrides=()) -> dict:
    """Seconds to load the cached features and train + select BAL's GAN on them."""
    import dataclasses

    from bal_tf.config import GAN_PRESETS
    from bal_tf.features import RunFeatures
    from bal_tf.run_dir import RunDir
    from bal_tf.train_bal import train_bal

    run = RunDir(Path(run_dir))
    config = run.load_config()
    if gan_preset:
        config = dataclasses.replace(config, gan=GAN_PRESETS[gan_preset]())
    config = config.with_overrides(list(overrides))  # after the preset, as validate.py's variants
    start = time.perf_counter()
    features = RunFeatures(config, run, progress=False)
    train, selection_data = features.split("train"), features.selection_data()
    loaded = time.perf_counter()
    result = train_bal(config.gan, train, selection_data=selection_data, seed=seed, verbose=0)
    done = time.perf_counter()
    total = done - start
    return {"run": str(run.root), "preset": config.preset, "gan_preset": gan_preset or "the run's own",
            "overrides": list(overrides),
            "features": int(len(train.labels)), "feature_dim": int(train.features.shape[-1]),
            "epochs": config.gan.epochs, "selected_epoch": result.selected_epoch,
            "seconds_load_features": round(loaded - start, 1), "seconds_gan": round(done - loaded, 1),
            "seconds_total": round(total, 1), "kernels": kernel_kind(),
            "target_seconds": TARGET_SECONDS[kernel_kind()], "meets_target": total <= TARGET_SECONDS[kernel_kind()]}


def stage2_render(result: dict, source: str) -> str:
    """The README's sentence, from a raw result."""
    verdict = "meets" if result["meets_target"] else "misses"
    changed = "".join(f", `{item}`" for item in result.get("overrides", []))
    return (f"Stage 2 on the `{result['preset']}` preset (GAN preset {result['gan_preset']}{changed}, "
            f"{result['features']:,} cached features of dimension {result['feature_dim']}, {result['epochs']} epochs "
            f"with checkpoint selection): **{result['seconds_total']:.0f} s** wall clock "
            f"({result['seconds_load_features']:.0f} s loading features, {result['seconds_gan']:.0f} s GAN), "
            + (f"which {verdict} the {result['target_seconds'] / 60:.0f}-minute target of {result['kernels']} kernels"
               if "kernels" in result else
               f"before issue 36 (against its day's {result['target_seconds'] / 60:.0f}-minute target; today's "
               f"targets: {TARGET_SECONDS['AVX-512'] / 60:.0f} min with AVX-512 kernels, "
               f"{TARGET_SECONDS['AVX2'] / 60:.0f} min with AVX2 ones)")
            + ". Measured by "
            f"`{result['command']}` at commit {result['commit']} on {result['machine']} (raw: `{source}`).")


def stage2_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="timing.py stage2", description=STAGE2_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a run whose stage 1 is done (features cached "
                        "or extracted on the way, which is then timed too)")
    parser.add_argument("--render", metavar="JSON", nargs="+",
                        help="print the README sentence of each of these raw results instead (one per CPU kind)")
    parser.add_argument("--gan-preset", help="time this GAN preset instead of the run's GAN settings")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="gan.FIELD=VALUE",
                        help="change a GAN setting after the preset, e.g. gan.discriminator_units=[512,512] "
                        "(repeatable): the stage-2 time of a validation variant")
    parser.add_argument("--seed", type=int, default=0, help="the GAN's seed (default: 0)")
    parser.add_argument("--out", type=Path, help="also write the result here (JSON, stamped)")
    args = parser.parse_args(argv)
    if args.render:
        print("\n\n".join(stage2_render(json.loads(Path(path).read_text()), path) for path in args.render))
        return 0
    if args.run is None:
        parser.error("--run is required (or --render JSON)")
    result = {**stage2_time(args.run, args.gan_preset, args.seed, args.overrides), **provenance(),
              "command": " ".join(["python", "benchmarks/timing.py", "stage2", *(sys.argv[2:] if argv is None else argv)])}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


# ---- export-latency (was benchmarks/export_latency.py) ------------------------------------------

def time_ms(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return 1000 * (time.perf_counter() - start) / calls


def interleaved(fns: dict, rounds: int, calls: int) -> dict:
    """Per-round mean ms of each function, the functions taking turns within every round."""
    for fn in fns.values():  # warm-up (tracing, allocation)
        time_ms(fn, 3)
    out = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            out[name].append(time_ms(fn, calls))
    return out


def export_latency(run: Path, rounds: int = 30, calls: int = 10, saved_model: Path | None = None) -> dict:
    """Latency figures of ``saved_model`` (default: ``RUN/export/saved_model``) vs the backbone."""
    import numpy as np
    import tensorflow as tf

    from bal_tf.classifier import load_classifier
    from bal_tf.detector import BALDetector, PredictedClass, ProductScore

    saved_model = saved_model or run / "export" / "saved_model"
    served = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    classifier = load_classifier(run / "classifier.keras")
    detector = BALDetector.load(run / "detector.keras")
    discriminator = detector.model.get_layer("discriminator")
    shape = tuple(classifier.input_shape[1:])
    backbone = tf.function(lambda x: classifier(tf.cast(x, tf.float32), training=False))
    features_of = detector.model.get_layer("feature_model")
    predicted_class, product = PredictedClass(), ProductScore()

    @tf.function
    def bal_part(features, logits):
        predicted, log_p1 = predicted_class(logits)
        return product(log_p1, discriminator([features, predicted], training=False))

    results = {"machine": f"{platform.machine()} {platform.processor()}".strip(), "cpus": os.cpu_count(),
               "run": str(run), "saved_model": str(saved_model), "tensorflow": tf.__version__}
    for batch in (1, 256):
        images = tf.constant(np.random.default_rng(0).integers(0, 256, (batch, *shape), dtype=np.uint8))
        features, logits = features_of(tf.cast(images, tf.float32), training=False)
        batch_calls = calls if batch == 1 else max(1, calls // 5)
        ms = interleaved({"exported": lambda: served(images=images), "backbone": lambda: backbone(images),
                          "bal_part": lambda: bal_part(features, logits)}, rounds, batch_calls)
        ratios = np.array(ms["exported"]) / np.array(ms["backbone"])
        results[f"batch{batch}"] = {
            "exported_ms": round(float(np.median(ms["exported"])), 3),
            "backbone_ms": round(float(np.median(ms["backbone"])), 3),
            "ratio": round(float(np.median(ratios)), 3),
            "ratio_iqr": [round(float(q), 3) for q in np.percentile(ratios, [25, 75])],
            "bal_part_ms": round(float(np.median(ms["bal_part"])), 4),
            "bal_part_ratio": round(float(np.median(ms["bal_part"]) / np.median(ms["backbone"])), 4),
        }
    return results


def export_latency_main(argv=None):
    parser = argparse.ArgumentParser(prog="timing.py export-latency", description=EXPORT_LATENCY_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--saved-model", type=Path, help="another export of the run (default: RUN/export/saved_model)")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=10, help="calls per round at batch 1 (batch 256: a fifth)")
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    import subprocess

    results = export_latency(args.run, args.rounds, args.calls, args.saved_model)
    results["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                                       capture_output=True, text=True).stdout.strip()
    results["command"] = "python benchmarks/timing.py export-latency " + " ".join(argv or sys.argv[2:])
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


# ---- export-report (was benchmarks/export_report.py) --------------------------------------------

def parity_text(info: dict, source: str) -> str:
    parity, aurocs = info["parity"], info.get("auroc_parity", {})
    sizes = {mode: info[f"tflite_{mode}"]["bytes"] / 1e6 for mode in ("float32", "full_int8") if f"tflite_{mode}" in info}
    where = f" (export of commit {info.get('commit', 'unstamped')}, {info.get('machine', 'machine unknown')})"
    lines = [f"From `{source}`{where}: SavedModel vs Keras max abs difference "
             f"{parity['saved_model_vs_keras_max_abs']:.1e}, float TFLite {parity['tflite_float32_vs_keras_max_abs']:.1e}."]
    if aurocs:
        lines.append(f"{aurocs['ood']} AUROC on {aurocs['images_each']:,} + {aurocs['images_each']:,} images: "
                     f"Keras {100 * aurocs['keras']:.2f}, float32 TFLite {100 * aurocs['bal_float32']:.2f}, "
                     f"dynamic-range {100 * aurocs['bal_dynamic_range']:.2f}, full int8 {100 * aurocs['bal_full_int8']:.2f}"
                     + (f" ({sizes['full_int8']:.2f} MB against {sizes['float32']:.2f} MB in float)." if len(sizes) == 2 else "."))
    return " ".join(lines)


def latency_table(reports: dict[str, dict]) -> str:
    rows = []
    for name, report in reports.items():
        cells = [name]
        for batch in ("batch1", "batch256"):
            r = report[batch]
            cells.append(f"{r['ratio']:.3f} [{r['ratio_iqr'][0]:.2f}-{r['ratio_iqr'][1]:.2f}], "
                         f"{r['exported_ms']:.2f} vs {r['backbone_ms']:.2f} ms; BAL's part {100 * r['bal_part_ratio']:.1f}%")
        rows.append(cells)
    stamps = "; ".join(f"`{name}`: commit {r['commit']}, {r['machine']} {r['cpus']} CPUs, `{r['command']}`"
                       for name, r in reports.items())
    return ("Exported graph / backbone alone, median of the alternating rounds [interquartile range]; "
            f"measured by {stamps}.\n\n" + markdown_table(["export", "batch 1", "batch 256"], rows))


def export_report_main(argv=None):
    parser = argparse.ArgumentParser(prog="timing.py export-report", description=EXPORT_REPORT_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--info", type=Path, help="export_info.json of an export with --parity-ood")
    parser.add_argument("latency", type=Path, nargs="+", help="export_latency.py outputs (default first)")
    args = parser.parse_args(argv)
    if args.info and args.info.is_file():
        print(parity_text(json.loads(args.info.read_text()), str(args.info)))
    else:
        print("Parity: no export_info.json kept yet (`python benchmarks/reproduce.py --only export` writes "
              "docs/results/export_info_mnist-cpu-seed0.json).")
    print()
    print(latency_table({path.stem.replace("export_latency_", ""): json.loads(path.read_text())
                         for path in args.latency}))


# ---- step-profile ------------------------------------------------------------------------------

STEP_PROFILE_DOC = """Where one stage-2 step's time goes: the median wall time of BAL's train_step (Algorithm 1:
the D step with every negative source, the FGSM step, the G step) for the default and for
variants that each remove or change one part, on a run's cached training features or on
synthetic ones of the CPU preset's size (54,000 x 128, 10 classes). It trains nothing that is
kept; the numbers say what a faster step has to remove.

    python benchmarks/timing.py step-profile --synthetic --out FILE.json
    python benchmarks/timing.py step-profile --run RUN --steps 200
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/timing.py step-profile --synthetic   # the AVX2 kernels
"""

# variant -> (gan.FIELD=VALUE overrides, compile options)
STEP_VARIANTS = {
    "default": ([], {}),
    "default, one step per call": (["gan.steps_per_execution=1"], {}),
    "no floor references": (["gan.floor_weight=0.0"], {}),
    "no ladder references": (["gan.ladder_weight=0.0"], {}),
    "the paper's negatives only": (["gan.ladder_weight=0.0", "gan.floor_weight=0.0", "gan.p2_target=ratio",
                                    "gan.p2_calibration=none", "gan.discriminator_input=raw"], {}),
    "no EMA of D": (["gan.d_ema_decay=0.0"], {}),
    "batch 256 (a step of 256 features)": (["gan.batch_size=256"], {}),
}
# XLA (jit_compile) is not a variant: before issue 37 the k-NN source split its batch by class
# (dynamic shapes, which XLA does not compile), and before that split XLA made the step slower on
# these CPUs (37.7 against 19.7 ms at ca8dbc2: docs/results/step_profile_before_ca8dbc2_avx2.json);
# without that source it has not been re-measured.


def synthetic_features(count: int = 54000, dim: int = 128, classes: int = 10, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, count).astype(np.int32)
    centers = rng.normal(0.0, 2.0, (classes, dim))
    return np.maximum(centers[labels] + rng.normal(size=(count, dim)), 0.0).astype(np.float32), labels


def step_time(features, labels, classes: int, overrides: list[str], compile_options: dict, steps: int) -> dict:
    """Median and interquartile range of one train_step's wall time (ms), after a warm-up quarter."""
    import keras
    import numpy as np

    from bal_tf.config import RunConfig
    from bal_tf.gan import feature_batches, make_gan

    config = RunConfig().with_overrides(overrides).gan
    gan = make_gan(config, classes, features, labels, seed=0)
    per_call = int(gan.steps_per_execution)  # the config's (gan.steps_per_execution; None = an epoch)
    if compile_options:
        gan.compile(d_optimizer=gan.d_optimizer, g_optimizer=gan.g_optimizer, steps_per_execution=per_call,
                    **compile_options)
    stamps = []
    clock = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: stamps.append(time.perf_counter()))
    calls = max(steps // per_call, 8)
    gan.fit(feature_batches(features, labels, config.batch_size, seed=0, epochs=1 + calls * per_call * config.batch_size
                            // len(features)), epochs=1, steps_per_epoch=calls * per_call, verbose=0, callbacks=[clock])
    # with steps_per_execution the callback may run once per call: a gap then spans several steps
    steps_per_stamp = calls * per_call / len(stamps)
    gaps = np.diff(stamps[len(stamps) // 4:]) * 1000.0 / steps_per_stamp
    return {"ms_median": round(float(np.median(gaps)), 2),
            "ms_iqr": [round(float(q), 2) for q in np.percentile(gaps, [25, 75])], "steps_timed": int(len(gaps))}


def step_profile_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="timing.py step-profile", description=STEP_PROFILE_DOC,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="a run with cached training features (RUN/features/train.npz)")
    source.add_argument("--synthetic", action="store_true", help="synthetic features of the CPU preset's size")
    parser.add_argument("--steps", type=int, default=160, help="steps timed per variant (default 160)")
    parser.add_argument("--variant", action="append", choices=sorted(STEP_VARIANTS),
                        help="only these variants (repeatable; default: all)")
    parser.add_argument("--out", type=Path, help="also write the result here (JSON, stamped)")
    args = parser.parse_args(argv)
    import numpy as np

    if args.synthetic:
        features, labels = synthetic_features()
        classes, where = 10, "synthetic 54,000 x 128, 10 classes"
    else:
        cached = args.run / "features" / "train.npz"
        if not cached.is_file():
            parser.error(f"{cached} is missing: run stage 2 first (train.py), or use --synthetic")
        from bal_tf.features import FeatureSet

        stored = FeatureSet.load(cached).at("penultimate")  # the cache holds every depth
        features, labels = stored.features.astype(np.float32), stored.labels.astype(np.int32)
        classes, where = int(labels.max()) + 1, f"{cached} ({len(features):,} x {features.shape[1]})"
    result = {"features": where, "isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "default"), "variants": {}}
    for name in args.variant or list(STEP_VARIANTS):
        overrides, options = STEP_VARIANTS[name]
        result["variants"][name] = {"overrides": overrides, "compile": options,
                                    **step_time(features, labels, classes, overrides, options, args.steps)}
        print(f"{name:34s} {result['variants'][name]['ms_median']:8.2f} ms per step", flush=True)
    result.update(provenance(), command=" ".join(["python", "benchmarks/timing.py", "step-profile",
                                                  *(sys.argv[2:] if argv is None else argv)]))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


# ---- stage1-step ------------------------------------------------------------------------------

STAGE1_STEP_DOC = """Stage 1's step time: the median wall time of one classifier training step (Adam, cross-entropy,
Keras fit) of a preset's backbone on random images of its ID shape, per batch size and with or
without XLA. It trains nothing that is kept; images per second decide the preset's schedule.

    python benchmarks/timing.py stage1-step --preset mnist-cpu --batch 128 --batch 256 --out FILE.json
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/timing.py stage1-step --preset mnist-cpu   # the AVX2 kernels
"""


def stage1_step_time(preset: str, batch: int, jit: bool, steps: int = 40) -> dict:
    import keras
    import numpy as np

    from bal_tf.backbones import build_classifier
    from bal_tf.config import get_preset
    from bal_tf.data import dataset_spec

    config = get_preset(preset)
    shape = dataset_spec(config.data.id_dataset).image_shape
    keras.utils.set_random_seed(0)
    model = build_classifier(config.backbone, shape, 10)
    model.compile(keras.optimizers.Adam(config.classifier.learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch * steps, *shape)).astype(np.float32)
    labels = rng.integers(0, 10, batch * steps)
    stamps = []
    clock = keras.callbacks.LambdaCallback(on_train_batch_end=lambda step, logs: stamps.append(time.perf_counter()))
    model.fit(images, labels, batch_size=batch, epochs=1, verbose=0, callbacks=[clock])
    gaps = np.diff(stamps[len(stamps) // 4:]) * 1000.0
    return {"batch": batch, "jit_compile": jit, "ms_per_step": round(float(np.median(gaps)), 1),
            "ms_per_image": round(float(np.median(gaps)) / batch, 3), "steps_timed": int(len(gaps))}


def stage1_step_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="timing.py stage1-step", description=STAGE1_STEP_DOC,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="mnist-cpu", help="the preset whose backbone is timed (default mnist-cpu)")
    parser.add_argument("--batch", type=int, action="append", help="batch sizes (repeatable; default 128 and 256)")
    parser.add_argument("--xla", action="store_true", help="also time each batch size with jit_compile")
    parser.add_argument("--steps", type=int, default=40, help="steps per measurement (default 40)")
    parser.add_argument("--out", type=Path, help="also write the result here (JSON, stamped)")
    args = parser.parse_args(argv)
    rows = []
    for batch in args.batch or [128, 256]:
        for jit in ([False, True] if args.xla else [False]):
            rows.append(stage1_step_time(args.preset, batch, jit, args.steps))
            print(f"batch {batch:4d}{' XLA' if jit else '    '} {rows[-1]['ms_per_step']:8.1f} ms per step, "
                  f"{rows[-1]['ms_per_image']:.3f} ms per image", flush=True)
    result = {"preset": args.preset, "isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "default"), "rows": rows,
              **provenance(), "command": " ".join(["python", "benchmarks/timing.py", "stage1-step",
                                                    *(sys.argv[2:] if argv is None else argv)])}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


COMMANDS = {"readme": readme_main, "tests": tests_main, "stage2": stage2_main, "export-latency": export_latency_main, "export-report": export_report_main, "step-profile": step_profile_main,
            "stage1-step": stage1_step_main}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        return 0 if argv[:1] in ([], ["-h"], ["--help"]) else 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
