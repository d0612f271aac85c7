#!/usr/bin/env python
"""Regenerate every measured number in the docs from raw results this command writes.

Each job measures (train / evaluate / sweep commands that write raw JSON or JSON lines, each
record stamped with commit, machine and command), then renders: the Markdown under docs/ and the
README's generated blocks come from those raw files only. ``--render-only`` redoes the second
half from the raw files already there.

    python benchmarks/reproduce.py --list
    python benchmarks/reproduce.py --all                 # every job not yet done at this commit
    python benchmarks/reproduce.py --only protocols --only table1-2
    python benchmarks/reproduce.py --all --render-only   # docs from the raw files, no training
    python benchmarks/reproduce.py --all --dry-run       # print the commands
    python benchmarks/reproduce.py --status              # which jobs' committed raw results HEAD's code measured

Resumable: a killed job is redone from its start on the next call, and the commands inside it
resume their own runs (train.py skips finished stages and resumes epochs); JSON lines of a sweep
go to a temporary file that replaces the committed one only when the sweep has finished, so a
kill never leaves a half-written raw file. The validation and ablation sweeps keep every GAN
their temporary file has finished by the same code on the same classifier (each record holds a
sha256 of its weights and architecture: ``tables.classifier_digest``, ``tables.resume_sweep``) and
measure only the rest; committed, that file carries them to the next session (a machine without
the run dirs retrains the classifiers; training is deterministic given preset and seed, so the
retrained classifier has the same digest and its runs resume; if it differed, they would be
measured again; a validation run whose records are finished is not trained at all). Finished jobs are recorded, with their commit, in
``RUNS_ROOT/reproduce_state.json`` and not measured again while HEAD differs from that commit only under docs/. The protocol jobs keep every finished run's evaluation in
``docs/results/protocol_runs.jsonl`` too (``protocols.py --archive``): committed, it carries them to
a machine without the run dirs, where runs evaluated at the same commit are not trained again.

Full cost on the 2-core CPU machine: roughly 4 h for the protocols (2 backbones x 4 protocols x
3 seeds); for each other GAN preset on the ResNet-18 runs about 3 h (12 runs; paper_literal's stage 2 alone took
1108-2295 s per ResNet-18 MNIST run here, the default's ~230 s; the preset runs reuse the default runs' cached features and skip
ODIN, see protocols.BAL_ROWS_ONLY); 4 h for the GAN presets on the validation runs, 1.5 h for Tables
1-2, 2 h for Table 3.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = "docs/results"
PROTOCOLS = ["offline-mnist", "offline-fashion_mnist", "heldout-mnist", "heldout-fashion_mnist"]
OTHER_GAN_PRESETS = ["paper_literal", "paper"]
# ... run on the paper's backbone only: a preset's run costs 15-40 min here (its stage 2 is 4-10x
# the default's, depending on what shares the cores), and its rows answer "what does the paper's recipe give", not "on which backbone"
PAPER_PRESET_ARCHES = ("resnet18",)
VALIDATION_RUNS = ["mnist-4to9-cpu", "mnist-4to9-cnn-cpu", "fashion_mnist-4to9-cpu"]
# The validation job measures, at the commit it runs, the default and every GAN preset that was a
# default before it or is the paper's, each on the three validation runs x 3 GAN seeds, into files of
# its own (FINAL_VALIDATION). The decision log's raw files (docs/results/validation/NAME-seed0.jsonl)
# hold each decision's evidence as measured when it was made (every record stamped with its commit;
# about 45 variants, some read by epoch_ensembles.py, deleted after 05e9f0b): the job renders them, never rewrites them.
# Also the default without its EMA of D (selection kept), which separates the EMA from the
# selection (the decision log's EMA row: first measured only together, as no EMA + last epoch).
# (At 05e9f0b it also measured the four history presets deleted in the cut: their records stay in
# the final files and in the decision log's at-one-commit section.)
VALIDATION_VARIANTS = [f"gan_preset={name}" for name in ("default", "paper", "paper_literal")]
VALIDATION_VARIANTS.append("gan_preset=default,gan.d_ema_decay=0.0")
FINAL_VALIDATION = f"{RESULTS}/validation/final"
BLOCK = "<!-- reproduce:{name}:{edge} -->"
# what a fresh clone's setup runs (the timing jobs measure it too)
SETUP_PATHS = ["scripts", "pyproject.toml", "requirements-dev.txt"]


@dataclasses.dataclass
class Job:
    """One reproducible result: measuring commands, then rendering commands.

    Attributes:
        name: for --only.
        what: one line for --list.
        measure: commands (argv lists, run from the repository root) that write raw results.
        sweeps: ``{temporary JSON lines file: committed file}``, moved into place after ``measure``.
        resumable: the sweep resumes from its temporary file instead of starting over (commit
            that file to carry its finished runs to another machine).
        render: ``(command, target)``: the command's stdout replaces the block ``target``
            (``"FILE#BLOCK"``, between ``<!-- reproduce:BLOCK:begin/end -->``) or, with target
            ``None``, the command writes its own files.
        raw, archived_runs, depends: what ``--status`` checks: the job is current when every raw
            file's records and every archived run were measured by HEAD's code (tables.CODE_PATHS
            plus ``depends``, e.g. tests/ for the test command's timing).
    """

    name: str
    what: str
    measure: list[list[str]]
    render: list[tuple[list[str], str | None]]
    sweeps: dict[str, str] = dataclasses.field(default_factory=dict)
    resumable: bool = False  # the sweep keeps its temporary file's finished runs (ablations.py)
    raw: list[str] = dataclasses.field(default_factory=list)  # stamped raw files it writes (--status)
    archived_runs: list[str] = dataclasses.field(default_factory=list)  # run names it adds to the protocol archive
    depends: list[str] = dataclasses.field(default_factory=list)  # code it measures beyond tables.CODE_PATHS


def python(script: str, *args: str) -> list[str]:
    return [sys.executable, script, *args]


def protocol_args(runs_root: str, arches=("resnet18", "cnn")) -> list[str]:
    args = [arg for p in PROTOCOLS for arg in ("--protocol", p)]
    # the archive keeps every finished run's evaluation in the repository: a job cut short by the
    # end of a session resumes on another machine without the run dirs (protocols.py --archive)
    return args + [arg for arch in arches for arg in ("--arch", arch)] + ["--seeds", "0", "1", "2", "--runs-root", runs_root,
                   "--archive", f"{RESULTS}/protocol_runs.jsonl", "--quiet"]


# protocol runs (evaluated with GCPL) -> the OOD set GCPL's geometry is measured against
GCPL_GEOMETRY_RUNS = [("fashion_mnist-cpu-seed0", "mnist"), ("mnist-cpu-seed0", "fashion_mnist")]


def bal_geometry_cells() -> list[tuple[str, str, str, list[str]]]:
    """Every cell of protocols.json: (protocol, backbone, OOD set, its default runs' names)."""
    from protocols import ARCH_INFIX, EXTRA_OOD, PROTOCOL_PRESETS, preset_for, run_dir_name

    from bal_tf.protocols import PROTOCOLS

    return [(protocol, arch, ood, [run_dir_name(preset_for(protocol, "cpu", arch), seed, None) for seed in (0, 1, 2)])
            for arch in ARCH_INFIX for protocol in PROTOCOL_PRESETS
            for ood in ["+".join(PROTOCOLS[protocol][1])] + EXTRA_OOD.get(protocol, [])]


def protocol_run_names(arches, gan_preset: str | None = None) -> list[str]:
    """The run dir names a protocol job archives (protocols.py: <preset>[-gan_<NAME>]-seed<N>)."""
    from protocols import gan_preset_tag, preset_for, run_dir_name

    tag = gan_preset_tag(gan_preset) if gan_preset else None
    return [run_dir_name(preset_for(protocol, "cpu", arch), seed, tag)
            for arch in arches for protocol in PROTOCOLS for seed in (0, 1, 2)]


def bal_geometry_file(protocol: str, arch: str, ood: str) -> str:
    return f"{RESULTS}/bal_geometry/{protocol}-{arch}-{ood}.json"


def validation_run_finished(name: str, raw: str) -> bool:
    """True when the validation job's records of run ``name`` (its partial file, else its final
    one) hold the baselines and every (variant, GAN seed) of the job, all measured by this code
    (``tables.same_code`` with validate.py) on one classifier: the sweep would skip the run
    (``tables.resume_sweep``), so the job need not train its classifier on this machine."""
    from tables import same_code

    path = next((p for p in (ROOT / f"{raw}.partial", ROOT / raw) if p.is_file()), None)
    if path is None:
        return False
    head, keys = commit(), {}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        if Path(record.get("run", "")).name == f"{name}-seed0" and \
                same_code(record.get("commit", "?"), head, ["benchmarks/validate.py"]):
            keys.setdefault(record.get("classifier_sha256"), set()).add(
                (record["method"], record["variant"], record["seed"]))
    expected = {("bal", variant, seed) for variant in VALIDATION_VARIANTS for seed in (0, 1, 2)}
    return any(expected <= found and any(variant == "-" for _, variant, _ in found) for found in keys.values())


def jobs(runs_root: str) -> list[Job]:
    r = runs_root
    tables = python("benchmarks/protocols.py", *protocol_args(r), "--summarize-only",
                    *[arg for n in OTHER_GAN_PRESETS for arg in ("--beside-gan-preset", n)],
                    "--out", f"{RESULTS}/protocols.md", "--json", f"{RESULTS}/protocols.json")
    validation_runs = [f"{r}/{name}-seed0" for name in VALIDATION_RUNS]
    validation_raw = [f"{RESULTS}/validation/{name}-seed0.jsonl" for name in VALIDATION_RUNS]  # the decision log's
    final_raw = [f"{FINAL_VALIDATION}/{name}-seed0.jsonl" for name in VALIDATION_RUNS]
    finished = {name: validation_run_finished(name, raw) for name, raw in zip(VALIDATION_RUNS, final_raw)}
    mnist_runs = [f"{r}/mnist-cpu-seed{s}" for s in (0, 1, 2)]
    return [
        Job("protocols", "test protocols, both backbones, 3 seeds, every method incl. GCPL / AEC (default GAN)",
            [python("benchmarks/protocols.py", *protocol_args(r), "--trained-baselines",
                    "--out", f"{r}/protocols_default.md")],
            [(tables, None), (python("benchmarks/protocols.py", "headline"), None)],
            archived_runs=protocol_run_names(("resnet18", "cnn"))),
        *[Job(f"protocols-{name}", f"the {name} GAN preset on the protocols' classifiers",
              [python("benchmarks/protocols.py", *protocol_args(r, PAPER_PRESET_ARCHES), "--gan-preset", name,
                      "--out", f"{r}/protocols_{name}.md")],
              [(tables, None), (python("benchmarks/protocols.py", "headline"), None)],
              archived_runs=protocol_run_names(PAPER_PRESET_ARCHES, name))
          for name in OTHER_GAN_PRESETS],
        Job("validation", "the GAN presets on the three validation runs, 3 GAN seeds; the decision log's tables",
            # a run whose committed records are finished (another session's) needs no classifier here
            [python("train.py", "--preset", name, "--run-dir", run, "--stages", "classifier", "--quiet")
             for name, run, raw in zip(VALIDATION_RUNS, validation_runs, final_raw) if not finished[name]]
            + [python("benchmarks/validate.py", "--run", run, "--seeds", "0", "1", "2",
                      *[arg for v in VALIDATION_VARIANTS for arg in ("--variant", v)], "--out", raw + ".partial",
                      "--resume")
               for name, run, raw in zip(VALIDATION_RUNS, validation_runs, final_raw) if not finished[name]],
            [(python("benchmarks/validate.py", "--summarize", *validation_raw,
                     "--markdown", f"{RESULTS}/validation/summary.md"), None),
             (python("benchmarks/validate.py", "decision-log", "--out", f"{RESULTS}/validation/decision_log.md"), None),
             (python("benchmarks/validate.py", "--summarize", *validation_raw, "--cross-run-only"),
              "docs/results/validation/ranks.md#validation-ranks"),
             (python("benchmarks/validate.py", "--summarize", *final_raw, "--cross-run-only"),
              "docs/results/validation/ranks.md#validation-presets"),
             (python("benchmarks/validate.py", "--summarize", *final_raw,
                     "--markdown", f"{FINAL_VALIDATION}/summary.md"), None)],
            sweeps={raw + ".partial": raw for raw in final_raw}, resumable=True, raw=final_raw,
            depends=["benchmarks/validate.py"]),
        Job("table1-2", "Tables 1 and 2 (loss terms, lambda_c) on the MNIST runs of the protocols",
            [python("benchmarks/ablations.py", "--table", "1", "--table", "2", "--ood", "fashion_mnist",
                    "--runs", *mnist_runs, "--out", f"{RESULTS}/ablations_mnist_cpu.jsonl.partial")],
            [(python("benchmarks/ablations.py", "summarize", f"{RESULTS}/ablations_mnist_cpu.jsonl", "--ood",
                     "fashion_mnist", "--prefix", "table1:", "--reading", "--paper-order",
                     *[f"table1:{name}" for name in ("L_t", "L_t+L_s", "L_t+L_u", "L_t+L_s+L_u")]),
              "docs/results/REPRODUCTION.md#table1"),
             (python("benchmarks/ablations.py", "summarize", f"{RESULTS}/ablations_mnist_cpu.jsonl", "--ood",
                     "fashion_mnist", "--prefix", "table2:", "--reading", "--identical", "table2:lambda_c=0.7",
                     "table1:L_t+L_s+L_u"), "docs/results/REPRODUCTION.md#table2")],
            sweeps={f"{RESULTS}/ablations_mnist_cpu.jsonl.partial": f"{RESULTS}/ablations_mnist_cpu.jsonl"},
            resumable=True, raw=[f"{RESULTS}/ablations_mnist_cpu.jsonl"], depends=["benchmarks/ablations.py"]),
        Job("table3", "Table 3 (uniform vs low-density Gaussian vs whole Gaussian, dims 2-512)",
            [python("benchmarks/ablations.py", "--table", "3", "--table3-classifier-seed", "0", "--ood",
                    "fashion_mnist", "--table3-root", f"{r}/ablation", "--out",
                    f"{RESULTS}/table3_mnist_cpu.jsonl.partial")],
            [(python("benchmarks/ablations.py", "summarize", f"{RESULTS}/table3_mnist_cpu.jsonl", "--ood", "fashion_mnist",
                     "--by-dim", "--reading"), "docs/results/REPRODUCTION.md#table3")],
            sweeps={f"{RESULTS}/table3_mnist_cpu.jsonl.partial": f"{RESULTS}/table3_mnist_cpu.jsonl"},
            resumable=True, raw=[f"{RESULTS}/table3_mnist_cpu.jsonl"], depends=["benchmarks/ablations.py"]),
        export_job(r),
        Job("gcpl-geometry", "why GCPL scores what it does: its features and prototypes on two protocol runs",
            [python("benchmarks/diagnose.py", "gcpl", "--run", f"{r}/{run}", "--ood", ood, "--out",
                    f"{RESULTS}/gcpl_geometry_{run}.json") for run, ood in GCPL_GEOMETRY_RUNS],
            [(python("benchmarks/diagnose.py", "gcpl", "--render",
                     *[f"{RESULTS}/gcpl_geometry_{run}.json" for run, _ in GCPL_GEOMETRY_RUNS]),
              "docs/results/diagnostics.md#gcpl-geometry")],
            raw=[f"{RESULTS}/gcpl_geometry_{run}.json" for run, _ in GCPL_GEOMETRY_RUNS],
            depends=["benchmarks/diagnose.py"]),
        Job("bal-geometry", "why BAL scores what it does per protocol cell: test OOD features vs the bands of D's references, "
            "D alone vs the distance alone (explains, chooses nothing)",
            [python("benchmarks/diagnose.py", "bal", *[arg for run in runs for arg in ("--run", f"{r}/{run}")],
                    "--ood", ood, "--cell", f"{protocol}, {arch}: {ood}", "--out", bal_geometry_file(protocol, arch, ood))
             for protocol, arch, ood, runs in bal_geometry_cells()],
            [(python("benchmarks/diagnose.py", "bal", "--render",
                     *[bal_geometry_file(p, a, o) for p, a, o, _ in bal_geometry_cells()]),
              "docs/results/diagnostics.md#bal-geometry")],
            raw=[bal_geometry_file(p, a, o) for p, a, o, _ in bal_geometry_cells()],
            depends=["benchmarks/diagnose.py"]),
        Job("test-command", "the README's test command on a fresh clone, with the CPU's own oneDNN kernels and "
            "limited to AVX2 (run it on an idle AVX-512 machine)",
            [python("benchmarks/timing.py", "tests", "--out", f"{RESULTS}/test_command_timing.json"),
             ["env", "ONEDNN_MAX_CPU_ISA=AVX2", *python("benchmarks/timing.py", "tests", "--out",
                                                        f"{RESULTS}/test_command_timing_avx2.json")]],
            [(python("benchmarks/timing.py", "tests", "--render", f"{RESULTS}/test_command_timing.json",
                     f"{RESULTS}/test_command_timing_avx2.json"), "README.md#test-command")],
            raw=[f"{RESULTS}/test_command_timing.json", f"{RESULTS}/test_command_timing_avx2.json"],
            depends=SETUP_PATHS + ["tests", ".ci"]),
        Job("readme-timing", "the README's run command on a fresh clone, part by part, with the CPU's own oneDNN "
            "kernels and limited to AVX2 (run it on an idle AVX-512 machine)",
            [python("benchmarks/timing.py", "readme", "--out", f"{RESULTS}/readme_timing.json", "--conditions", "idle"),
             ["env", "ONEDNN_MAX_CPU_ISA=AVX2", *python("benchmarks/timing.py", "readme", "--out",
                                                        f"{RESULTS}/readme_timing_avx2.json", "--conditions", "idle")]],
            [(python("benchmarks/timing.py", "readme", "--render", f"{RESULTS}/readme_timing.json",
                     f"{RESULTS}/readme_timing_avx2.json"), "README.md#readme-timing")],
            raw=[f"{RESULTS}/readme_timing.json", f"{RESULTS}/readme_timing_avx2.json"], depends=SETUP_PATHS),
        Job("stage2-time", "stage 2's wall-clock time at the CPU preset, with the CPU's own oneDNN kernels and "
            "limited to AVX2 (run it on an idle AVX-512 machine)",
            [python("benchmarks/timing.py", "stage2", "--run", f"{r}/mnist-cpu-seed0", "--gan-preset", "default",
                    "--out", f"{RESULTS}/stage2_time_mnist-cpu.json"),
             ["env", "ONEDNN_MAX_CPU_ISA=AVX2", *python("benchmarks/timing.py", "stage2", "--run", f"{r}/mnist-cpu-seed0",
                                                        "--gan-preset", "default", "--out",
                                                        f"{RESULTS}/stage2_time_mnist-cpu_avx2.json")]],
            [(python("benchmarks/timing.py", "stage2", "--render", f"{RESULTS}/stage2_time_mnist-cpu.json",
                     f"{RESULTS}/stage2_time_mnist-cpu_avx2.json"), "README.md#stage2-time")],
            raw=[f"{RESULTS}/stage2_time_mnist-cpu.json", f"{RESULTS}/stage2_time_mnist-cpu_avx2.json"],
            depends=["benchmarks/timing.py"]),
        Job("figures", "Figures 1, 4 and 5: the 2-D toy and MNIST with a 2-neuron penultimate layer",
            [python("train.py", "--preset", "mnist-cpu", "--set", "backbone.feature_dim=2", "--set",
                    "features.depths=penultimate", "--run-dir",
                    f"{r}/mnist-cpu-dim2-seed0", "--quiet"),
             python("benchmarks/figures.py", "--toy", "--out", "docs/figures"),
             python("benchmarks/figures.py", "--mnist-2d", f"{r}/mnist-cpu-dim2-seed0", "--out", "docs/figures")],
            [], raw=["docs/figures/figures.json"], depends=["benchmarks/figures.py"]),
    ]


def export_job(r: str) -> Job:
    run, out, xla = f"{r}/mnist-cpu-seed0", f"{r}/export-mnist-cpu-seed0", f"{r}/export-xla-mnist-cpu-seed0"
    info = f"{RESULTS}/export_info_mnist-cpu-seed0.json"
    fresh = "import shutil, sys; [shutil.rmtree(p, ignore_errors=True) for p in sys.argv[1:]]"
    latency = [f"{RESULTS}/export_latency_default.json", f"{RESULTS}/export_latency_xla_all.json"]
    return Job(
        "export", "export parity (SavedModel, TFLite float / dynamic-range / int8) and latency, mnist-cpu-seed0",
        [[sys.executable, "-c", fresh, out, xla],
         python("export/export_model.py", "--run", run, "--out", out, "--parity-ood", "fashion_mnist"),
         [sys.executable, "-c", "import shutil, sys; shutil.copyfile(sys.argv[1], sys.argv[2])",
          f"{out}/export_info.json", info],
         python("benchmarks/timing.py", "export-latency", "--run", run, "--saved-model", f"{out}/saved_model", "--out", latency[0]),
         python("export/export_model.py", "--run", run, "--out", xla, "--xla", "all", "--no-tflite"),
         python("benchmarks/timing.py", "export-latency", "--run", run, "--saved-model", f"{xla}/saved_model", "--out", latency[1])],
        [(python("benchmarks/timing.py", "export-report", "--info", info, *latency), "README.md#export")],
        raw=[info, *latency], depends=["benchmarks/timing.py"])


def replace_block(text: str, name: str, content: str, path: str = "") -> str:
    begin, end = BLOCK.format(name=name, edge="begin"), BLOCK.format(name=name, edge="end")
    if begin not in text or end not in text:
        raise SystemExit(f"{path or 'the document'} has no {begin} ... {end} block.")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{content.rstrip()}\n{end}{tail}"


def run_command(command: list[str], dry_run: bool, capture: bool = False) -> str:
    shown = " ".join(["python", *command[1:]]) if command[0] == sys.executable else " ".join(command)
    print(f"reproduce: {shown}", flush=True)
    if dry_run:
        return ""
    result = subprocess.run(command, cwd=ROOT, check=True, text=True, env=checkout_environment(),
                            stdout=subprocess.PIPE if capture else None)
    return result.stdout if capture else ""


def checkout_environment() -> dict[str, str]:
    """The commands' environment: ``bal_tf`` imported from this checkout. A script run as
    ``python benchmarks/X.py`` finds ``bal_tf`` through the virtualenv, and an editable install
    there points at the checkout it was made from: a second checkout (a git worktree) using that
    virtualenv would measure the other checkout's code and stamp its commit (``+dirty`` when it
    has local changes, so such records never count)."""
    import os

    paths = [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def render(job: Job, dry_run: bool) -> None:
    for command, target in job.render:
        if target is None:
            run_command(command, dry_run)
            continue
        output = run_command(command, dry_run, capture=True)
        if dry_run:
            continue
        file, block = target.split("#", 1)
        path = ROOT / file
        path.write_text(replace_block(path.read_text(), block, output, file))


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip() or "unknown"


def uncommitted_code() -> list[str]:
    """Tracked files changed outside docs/ (what stamps a record ``COMMIT+dirty``, which never counts
    as reproduced: ``bal_tf.provenance``). README.md is one: the headline job renders it."""
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)docs"],
                         cwd=ROOT, capture_output=True, text=True).stdout
    return [line[3:] for line in out.splitlines() if line.strip()]


def measured_by_this_code(done_at: str | None) -> bool:
    """True if a job recorded as measured at ``done_at`` need not run again: HEAD differs from it
    only under docs/ (results files and prose, which the jobs themselves commit between sessions)."""
    if not done_at:
        return False
    if done_at == commit():
        return True
    diff = subprocess.run(["git", "diff", "--quiet", done_at, "HEAD", "--", ".", ":(exclude)docs"], cwd=ROOT,
                          capture_output=True)
    return diff.returncode == 0


def record_commits(path: Path) -> list[str]:
    """The commit stamp of each record of a raw file (JSON: one; JSON lines: one per line;
    ``unstamped`` where a record has none)."""
    if path.name.endswith((".jsonl", ".partial")):  # a sweep's partial file is JSON lines
        records = []
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a sweep's partial file: its last line, cut by a kill (tables.resume_sweep drops it)
    else:
        records = [json.loads(path.read_text())]
    if len(records) == 1 and "commit" not in records[0] and records[0] and all(
            isinstance(v, dict) and "commit" in v for v in records[0].values()):
        records = list(records[0].values())  # one stamp per file drawn (docs/figures/figures.json)
    return [r.get("commit") or r.get("results", {}).get("commit") or "unstamped" for r in records]


def job_status(job: Job, head: str, same_code) -> tuple[bool, list[str]]:
    """Whether a job's raw results were all measured by HEAD's code, and one line per raw file or
    archive: ``same_code(commit, head, extra_paths, job name)`` decides (tables.same_code in main)."""
    current, lines = True, []
    for raw in job.raw:
        path, partial = ROOT / raw, ROOT / (raw + ".partial")
        if not path.is_file():
            current = False
            line = f"{raw}: missing"
        else:
            commits = sorted(set(record_commits(path)))
            stale = [c for c in commits if not same_code(c, head, job.depends, job.name)]
            current &= not stale
            line = f"{raw}: " + (f"current (measured at {', '.join(commits)})" if not stale else
                                 f"stale (measured at {', '.join(stale)}, other code than {head})")
        if partial.is_file():  # a resumable sweep under way (its partial file is committed between sessions)
            done = [c for c in record_commits(partial) if same_code(c, head, job.depends, job.name)]
            line += f"; in progress: {len(done)} records of this code in {raw}.partial"
        lines.append(line)
    if job.archived_runs:
        archive = ROOT / RESULTS / "protocol_runs.jsonl"
        records = {}
        if archive.is_file():
            for line in archive.read_text().splitlines():
                if line.strip():
                    record = json.loads(line)
                    records[record["run"]] = record["results"].get("commit", "unstamped")
        done = [run for run in job.archived_runs if run in records and same_code(records[run], head, job.depends, job.name)]
        current &= len(done) == len(job.archived_runs)
        missing = [run for run in job.archived_runs if run not in done]
        lines.append(f"{RESULTS}/protocol_runs.jsonl: {len(done)} of {len(job.archived_runs)} runs at this code"
                     + (f" (to do: {', '.join(missing)})" if missing else ""))
    if not job.raw and not job.archived_runs:
        current = False
        lines.append("no stamped raw file: re-run it at the final commit")
    return current, lines


def changed_paths() -> list[str]:
    """Paths with uncommitted changes (tracked or not), outside docs/."""
    out = subprocess.run(["git", "status", "--porcelain", "--", ".", ":(exclude)docs"], cwd=ROOT,
                         capture_output=True, text=True).stdout
    return [line[3:].split(" -> ")[-1] for line in out.splitlines() if line.strip()]


def staled_by(job: Job, paths: list[str]) -> list[str]:
    """The paths among ``paths`` whose change makes ``job``'s raw results stale."""
    from tables import CODE_PATHS, NOT_MEASURED, under

    excluded = [p.removeprefix(":(exclude)") for p in NOT_MEASURED]
    return [p for p in paths if (under(p, CODE_PATHS) and not under(p, excluded)) or under(p, job.depends)]


def change_report(jobs_: list[Job], paths: list[str], what: str) -> list[str]:
    """What a change to ``paths`` stales, job by job, and whether it retrains classifiers."""
    from tables import STAGE1_PATHS, under

    stale = [job.name for job in jobs_ if staled_by(job, paths)]
    if not stale:
        return [f"reproduce: {what} ({', '.join(paths)}) stale no job"]
    stage1 = [p for p in paths if under(p, STAGE1_PATHS)]
    return [f"reproduce: {what} ({', '.join(paths)}) would stale {len(stale)} of {len(jobs_)} jobs: {', '.join(stale)}",
            "reproduce: " + (f"stage-1 code among them ({', '.join(stage1)}): the classifiers are trained again"
                             if stage1 else "no stage-1 code among them: the trained classifiers and feature caches "
                             "are reused (stage 2 runs again: protocols.py --redo-gan, validate.py per GAN)")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--all", action="store_true",
                        help="every job not yet done at this commit (or one that differs from it only under docs/)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="this job (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the jobs")
    parser.add_argument("--status", action="store_true",
                        help="which jobs' raw results were measured by HEAD's code (committed files only; "
                             "exit 1 if any is not)")
    parser.add_argument("--change", action="append", default=[], metavar="PATH",
                        help="with --status: which jobs a change to PATH would stale, before it is made "
                        "(repeatable; without it, --status reports the checkout's uncommitted changes)")
    parser.add_argument("--runs-root", default="runs", help="where the jobs' run directories live")
    parser.add_argument("--render-only", action="store_true", help="only regenerate docs from the raw files")
    parser.add_argument("--force", action="store_true", help="redo jobs already done at this commit")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="measure with local changes outside docs/ (their records are stamped COMMIT+dirty "
                             "and never count as reproduced)")
    args = parser.parse_args(argv)
    known = jobs(args.runs_root)
    names = [job.name for job in known]
    if args.list:
        for job in known:
            print(f"{job.name:26s} {job.what}")
        return 0
    if args.status:
        from tables import same_code

        head, current = commit(), 0
        for job in known:
            ok, lines = job_status(job, head, same_code)
            current += ok
            print(f"{job.name:26s} {'current' if ok else 'TO DO'}")
            for line in lines:
                print(f"{'':28s}{line}")
        print(f"reproduce: {current} of {len(known)} jobs measured by the code of {head}")
        if args.change:
            print("\n".join(change_report(known, args.change, "a change to")))
        elif changed_paths():
            print("\n".join(change_report(known, changed_paths(), "the uncommitted changes")))
        return 0 if current == len(known) else 1
    unknown = [n for n in args.only if n not in names]
    if unknown:
        parser.error(f"unknown job(s) {unknown}; known: {names}")
    if not args.all and not args.only:
        parser.error("give --all, --only NAME or --list")
    selected = [job for job in known if args.all or job.name in args.only]
    changed = [] if args.render_only or args.dry_run or args.allow_dirty else uncommitted_code()
    if changed:
        print(f"reproduce: local changes outside docs/ ({', '.join(changed)}): every record measured now would be "
              "stamped +dirty and never count as reproduced. Commit them, or restore them (a render left "
              "README.md changed: `git checkout -- README.md`), or pass --allow-dirty.", file=sys.stderr)
        return 2
    state_path = Path(args.runs_root) / "reproduce_state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    measured = []
    try:
        for job in selected:
            done_at = state.get(job.name, {}).get("commit")
            if not args.render_only:
                if measured_by_this_code(done_at) and not args.force:
                    print(f"reproduce: {job.name}: measured at {done_at} (the same code outside docs/) already; "
                          "rendering only")
                else:
                    start = time.time()
                    for temporary in job.sweeps if not job.resumable else []:
                        (ROOT / temporary).unlink(missing_ok=True)  # a killed sweep starts over
                    for command in job.measure:
                        run_command(command, args.dry_run)
                    if not args.dry_run:
                        for temporary, final in job.sweeps.items():
                            shutil.move(ROOT / temporary, ROOT / final)
                        state[job.name] = {"commit": commit(), "seconds": round(time.time() - start)}
                        state_path.parent.mkdir(parents=True, exist_ok=True)
                        state_path.write_text(json.dumps(state, indent=1) + "\n")
            measured.append(job)
    finally:
        # Every render after every measurement: a render may rewrite README.md (outside docs/), and a
        # job measured after it would stamp its records +dirty. A job that failed is not rendered.
        for job in measured:
            render(job, args.dry_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
