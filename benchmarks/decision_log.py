#!/usr/bin/env python
"""The evidence of DESIGN.md's decision log, rendered from its raw files (measures nothing).

Each decision of the log compares a reference (the default of its day) with the alternatives
tried, on the validation protocol's three runs x 3 GAN seeds (``benchmarks/validate.py`` and
``benchmarks/epoch_ensembles.py`` records in ``docs/results/validation/RUN-seed0.jsonl``). For
each decision this prints BAL's mean rank per run and over the runs, the change against the
reference and what the decision rule makes of it (an option is taken when it lowers the mean
rank over the three runs by more than ``RULE``), then every family whose AUROC moved by at least
``MOVE`` points, with the best feature-based baseline on it. The side measurements the log cites
(near-OOD geometry, k-NN ratios, quantized parity, stage-2 time) are rendered from their own
raw JSON files, each under the command that measured it. The last section reads the final
validation job's raw files (``docs/results/validation/final/``, ``reproduce.py --only validation``):
today's default against the defaults before it, the paper's presets and the default without its
EMA of D, all measured at one commit.

    python benchmarks/decision_log.py                         # prints docs/results/validation/decision_log.md
    python benchmarks/decision_log.py --out docs/results/validation/decision_log.md
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from tables import markdown_table, mean_std

ROOT = Path(__file__).resolve().parents[1]
VALIDATION = "docs/results/validation"
RUNS = ["mnist-4to9-cpu-seed0", "mnist-4to9-cnn-cpu-seed0", "fashion_mnist-4to9-cpu-seed0"]
RULE = 0.25  # the decision rule's margin in mean rank (DESIGN.md, "The decision rule")
MOVE = 0.5  # AUROC points: smaller changes are listed nowhere (seed noise on most families)
FAMILY_NAMES = {"pixel_permutation": "pixel permutation", "patch_shuffle": "patch shuffle",
                "noise_blobs": "noise blobs", "rotate90": "rotate90", "invert": "invert",
                "held_out_classes_validation": "held-out classes"}

# the defaults of the log's days, as their records name them
STABLE = "default"  # records before `0566035`: the default of the day (the `stable` preset, deleted after 05e9f0b)
WHITENED_SHELLS = "gan.discriminator_input=whitened,gan.shell_sampling=radial,gan.shell_weight=3.0"
NO_BOUNDARY = "gan_preset=default,gan.shell_radius=[2.0,4.0]"  # the default of 8ae86c3
BOUNDARY = "gan_preset=default,gan.boundary_weight=5.0,gan.boundary_scale=[0.15,0.6]"  # today's default
TOP1 = "gan_preset=default | D ensemble: top1:default"  # today's default read by epoch_ensembles.py


def ensemble(variant: str, *rules: str) -> list[str]:
    return [f"{variant} | D ensemble: {rule}" for rule in rules]


def on_default(*items: str) -> str:
    return ",".join(("gan_preset=default",) + items)


@dataclasses.dataclass
class Decision:
    anchor: str  # DESIGN.md cites it as decision_log.md#ANCHOR
    title: str
    reference: str
    alternatives: list[str]
    reference_note: str = "the default of its day"


CUT = "05e9f0b"  # the last commit holding the code of every experiment deleted in the cut (issue 35)
LIBRARY = "HEAD"  # the option is still a field of GANConfig (bal_tf/config.py)

# One row per experiment: what came of it, and the commit where its code can be read.
OUTCOMES = {
    "g-learning-rate": ("kept 5e-5 (chosen first on test OOD sets, before this protocol; re-measured here): 2e-4 "
                        "ranks worse", LIBRARY),
    "gan-epochs": ("kept 20: 10 ranks worse", LIBRARY),
    "gan-epochs-30": ("kept 20: 30 within the rule's margin, a third slower", LIBRARY),
    "box-margin": ("lost: a box widened by 0.5 ranks worse; deleted (`box_margin`)", CUT),
    "selection-families": ("kept the 3 image + 2 feature families; the near-OOD proxies `image_blend`, `half_swap` "
                           "lost and were deleted", CUT),
    "label-conditioning": ("lost: the projection discriminator ranks worse; deleted (`label_conditioning`)", CUT),
    "shells-on-stable": ("radial shells and D's whitened input together cleared the rule (the default since "
                         "`0566035`); `standardized`, `l2_normalized` inputs, Gaussian-tail shells, between-class "
                         "mixes lost and were deleted", CUT),
    "shell-radius": ("shells from 2 class radii (was 1.5): cleared the rule", LIBRARY),
    "extra-negatives": ("k-NN boundary negatives at weight 5 cleared the rule (the default); between-class mixes "
                        "lost and were deleted (`between_class_*`)", CUT),
    "lipschitz": ("lost: a spectral-norm bound on D ranks worse; deleted (`discriminator_lipschitz`)", CUT),
    "knn-input": ("lost: D's k-NN distance input, concat or monotone; deleted (`discriminator_knn_*`)", CUT),
    "graded-targets": ("lost: graded boundary targets; deleted (`boundary_targets`, `boundary_target_range`)", CUT),
    "boundary-weight-10": ("kept weight 5: 10 does not clear the rule", LIBRARY),
    "paper-as-default": ("not taken: `paper` and `paper_literal` rank worse; they stay presets", LIBRARY),
    "radius-input": ("lost: D's Mahalanobis-radius input; deleted (`discriminator_radius_input`)", CUT),
    "ensembles": ("lost: D averaged over epochs; deleted (`validation.ensemble_*`, `epoch_ensembles.py`)", CUT),
    "gaussian-tail": ("lost: Gaussian-tail shells on the default; the value deleted (`shell_sampling`)", CUT),
    "shell-ascent": ("lost: shells moved up D's logit; deleted (`shell_ascent_*`)", CUT),
    "shuffle": ("kept the paper's uniform T: `nearest_class` and a weight of 3 lost; deleted (`shuffle_labels`, "
                "`shuffle_weight`)", CUT),
    "d-width": ("kept [256, 256]: no width clears the rule", LIBRARY),
    "epsilon": ("kept N(0.5, 0.15^2) (chosen first on test OOD sets; re-measured here)", LIBRARY),
    "ema-bias-correction": ("kept off: ranks worse", LIBRARY),
    "at-one-commit": ("the EMA of D (chosen first on test OOD sets) kept: no EMA is within the rule's margin "
                      "(the section's last row); re-decided in the method issue's one sweep", LIBRARY),
}


def outcome_table() -> str:
    """The log in one table: a row per experiment, its evidence section and where its code is."""
    rows = []
    for decision in DECISIONS + [AT_ONE_COMMIT]:
        outcome, code = OUTCOMES[decision.anchor]
        code_cell = "this checkout" if code == LIBRARY else f"`{code}` (`git show {code}:bal_tf/config.py`)"
        rows.append([decision.title, outcome, f"[`{decision.anchor}`](#{decision.anchor})", code_cell])
    return markdown_table(["experiment", "outcome", "evidence", "code at"], rows) + "\n"


DECISIONS = [
    Decision("g-learning-rate", "G learning rate", STABLE, ["gan.g_learning_rate=0.0002"]),
    Decision("gan-epochs", "GAN epochs", STABLE, ["gan.epochs=10"]),
    Decision("gan-epochs-30", "GAN epochs, re-tried on the default of `8ae86c3`", NO_BOUNDARY,
             [on_default("gan.epochs=30")]),
    Decision("box-margin", "box margin", STABLE, ["gan.box_margin=0.5"]),
    Decision("selection-families", "selection families (criteria read from the same trainings)", TOP1,
             ensemble("gan_preset=default", "top1:image", "top1:feature", "top1:default+near", "top1:near",
                      "top5:default+near", "last1")),
    Decision("label-conditioning", "label conditioning", STABLE, ["gan.label_conditioning=projection"]),
    Decision("shells-on-stable", "per-class shells and D's input on the default before `0566035`", STABLE,
             ["gan.shell_sampling=radial", "gan.shell_sampling=radial,gan.shell_weight=3.0",
              "gan.shell_sampling=gaussian_tail", "gan.shell_sampling=radial,gan.shell_radius=[1.2,3.0]",
              "gan.shell_sampling=radial,gan.shell_radius=[2.0,6.0]",
              "gan.shell_sampling=radial,gan.shell_radius=[2.0,6.0],gan.shell_weight=3.0",
              "gan.shell_sampling=radial,gan.discriminator_units=[512,512]", "gan.between_class_weight=1.0",
              "gan.discriminator_input=standardized", "gan.shell_sampling=radial,gan.discriminator_input=standardized",
              "gan.discriminator_input=l2_normalized",
              "gan.shell_sampling=radial,gan.shell_weight=3.0,gan.discriminator_input=l2_normalized",
              "gan.discriminator_input=whitened", WHITENED_SHELLS]),
    Decision("shell-radius", "shell radius, on the default of `0566035`", WHITENED_SHELLS,
             [NO_BOUNDARY, on_default("gan.shell_radius=[2.5,5.0]")]),
    Decision("extra-negatives", "extra negatives on the default of `8ae86c3`", NO_BOUNDARY,
             [on_default("gan.between_class_weight=1.0"), on_default("gan.boundary_weight=1.0"),
              on_default("gan.boundary_weight=3.0"), on_default("gan.boundary_weight=3.0", "gan.boundary_scale=[0.25,0.75]"),
              BOUNDARY]),
    Decision("lipschitz", "D's Lipschitz bound, on the default of `8ae86c3`", NO_BOUNDARY,
             [on_default("gan.discriminator_lipschitz=true")]),
    Decision("knn-input", "D's k-NN input", BOUNDARY,
             [on_default("gan.discriminator_knn_size=250"),
              on_default("gan.discriminator_knn_size=250", "gan.discriminator_knn_mode=monotone")]),
    Decision("graded-targets", "graded boundary targets", BOUNDARY,
             [on_default("gan.boundary_targets=graded", "gan.boundary_scale=[0.15,2.0]"),
              on_default("gan.boundary_targets=graded", "gan.boundary_scale=[0.15,2.0]", "gan.boundary_target_range=[0.5,1.5]"),
              on_default("gan.boundary_scale=[0.15,2.0]"),
              on_default("gan.boundary_targets=graded", "gan.boundary_scale=[0.15,2.0]", "gan.boundary_target_range=[0.95,1.05]"),
              on_default("gan.boundary_targets=graded", "gan.boundary_target_range=[0.95,1.05]")]),
    Decision("boundary-weight-10", "boundary weight 10", BOUNDARY, [on_default("gan.boundary_weight=10.0")]),
    Decision("paper-as-default", "the paper's presets as the default", BOUNDARY,
             ["gan_preset=paper", "gan_preset=paper,gan.selection=last", "gan_preset=paper_literal"]),
    Decision("radius-input", "D's Mahalanobis-radius input", BOUNDARY,
             [on_default("gan.discriminator_radius_input=concat"), on_default("gan.discriminator_radius_input=monotone")]),
    Decision("ensembles", "D ensembles over epochs", BOUNDARY,
             ensemble("gan_preset=default", "top3", "top5", "last5", "all")),
    Decision("gaussian-tail", "Gaussian-tail shells on today's default", BOUNDARY,
             [on_default("gan.shell_sampling=gaussian_tail")]),
    Decision("shell-ascent", "shells moved up D's logit", BOUNDARY,
             [on_default("gan.shell_ascent_steps=3", "gan.shell_ascent_step=0.1")]),
    Decision("shuffle", "shuffle function T (Eq. 8)", TOP1,
             ensemble("gan_preset=default", "top1:default+near", "last1")
             + ensemble(on_default("gan.shuffle_labels=nearest_class"), "top1:default", "top1:default+near", "last1")
             + ensemble(on_default("gan.shuffle_weight=3.0"), "top1:default", "top1:default+near", "last1")),
    Decision("d-width", "D's width", TOP1,
             ensemble(on_default("gan.discriminator_units=[512,512]"), "top1:default", "last1")
             + ensemble(on_default("gan.discriminator_units=[512,512,512]"), "top1:default")
             + ensemble(on_default("gan.discriminator_units=[512,512]", "gan.shuffle_weight=3.0"), "top1:default", "last1")
             + ensemble(on_default("gan.discriminator_units=[384,384]"), "top1:default", "last1")
             + ensemble(on_default("gan.discriminator_units=[512,512]", "gan.shuffle_weight=3.0", "gan.lambda_c=2.0"),
                        "top1:default", "last1")
             + ensemble(on_default("gan.discriminator_units=[512,512]", "gan.shell_radius=[1.5,4.0]"), "top1:default", "last1")
             + ensemble(on_default("gan.discriminator_units=[512,512]", "gan.d_ema_decay=0.9995",
                                   "gan.d_ema_bias_correction=true"), "top1:default", "last1")
             + ensemble(on_default("gan.discriminator_units=[512,512]", "gan.epochs=14"), "top1:default", "top3", "top5",
                        "last1")),
    Decision("epsilon", "FGSM epsilon (Eq. 7)", TOP1,
             ensemble(on_default("gan.epsilon_mean=1.5", "gan.epsilon_std=0.45"), "top1:default", "last1")
             + ensemble(on_default("gan.epsilon_mean=0.15", "gan.epsilon_std=0.05"), "top1:default", "last1")),
    Decision("ema-bias-correction", "EMA bias correction", STABLE, ["gan.d_ema_bias_correction=true"]),
]

FINAL = f"{VALIDATION}/final"  # the final validation job's own raw files (never the decision log's)
# What that job measures beside today's default (benchmarks/reproduce.py VALIDATION_VARIANTS): the chain of
# defaults, the paper's presets, and the default without its EMA of D with selection kept (the EMA row's question).
# The presets deleted in the cut (issue 35), measured by that job at 05e9f0b: shown while the final
# files hold their records, and not asked of a job measured after the cut.
HISTORY_PRESETS = [f"gan_preset={name}" for name in ("no_boundary", "whitened_shells", "shells", "stable")]
AT_ONE_COMMIT = Decision(
    "at-one-commit", "Today's default against the earlier defaults, the paper's presets and no EMA, at one commit",
    "gan_preset=default",
    HISTORY_PRESETS + [f"gan_preset={name}" for name in ("paper", "paper_literal")]
    + ["gan_preset=default,gan.d_ema_decay=0.0"],
    reference_note="today's default, measured by the same code as every row")


def read_runs(paths: list[Path]) -> dict[str, list[dict]]:
    """Run name -> its records (a baseline measured again by a later invocation counted once)."""
    per_run: dict[str, list[dict]] = {}
    seen = set()
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"decision_log: expected the decision log's raw records at {path}; no such file")
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"decision_log: {path} line {number} is not JSON ({error})") from None
            if record["variant"] == "-":
                key = (record["run"], record["method"], record["seed"])
                if key in seen:
                    continue
                seen.add(key)
            per_run.setdefault(Path(record["run"]).name, []).append(record)
    return per_run


@dataclasses.dataclass
class RunSummary:
    """One run's numbers: per variant BAL's mean rank and per-family AUROCs (%, one per seed);
    per baseline its per-family AUROCs."""
    ranks: dict[str, float]
    bal: dict[str, dict[str, list[float]]]
    baselines: dict[str, dict[str, float]]


def summarize_run(records: list[dict]) -> RunSummary:
    """BAL's rank among the baselines per family by mean AUROC over seeds, averaged over the
    families (as ``validate.bal_mean_rank`` and the generated tables rank it)."""
    families = list(records[0]["validation"])
    bal: dict[str, dict[str, list[float]]] = {}
    baseline_values: dict[str, dict[str, list[float]]] = {}
    for record in records:
        if record["method"] == "bal":
            target = bal.setdefault(record["variant"], {f: [] for f in families})
        elif record["variant"] == "-":
            target = baseline_values.setdefault(record["method"], {f: [] for f in families})
        else:
            continue  # bal_last / bal_p2_only: read in the per-run tables, not ranked here
        for family in families:
            target[family].append(100 * record["validation"][family]["auroc"])
    baselines = {m: {f: float(np.mean(v)) for f, v in values.items()} for m, values in baseline_values.items()}
    ranks = {variant: float(np.mean([1 + sum(b[f] > np.mean(values[f]) for b in baselines.values())
                                     for f in families]))
             for variant, values in bal.items()}
    return RunSummary(ranks, bal, baselines)


def rule_reading(change: float) -> str:
    if change < -RULE:
        return f"clears the rule ({change:+.2f})"
    if change <= 0:
        return f"within the rule ({change:+.2f}; it asks below -{RULE:.2f})"
    return f"worse ({change:+.2f})"


def render_decision(decision: Decision, summaries: dict[str, RunSummary], source: str = "") -> str:
    """``source``: a sentence naming the raw records, when they are not the decision log's own."""
    runs = list(summaries)
    rows, moves = [], []
    for variant in [decision.reference] + decision.alternatives:
        measured = [run for run in runs if variant in summaries[run].ranks]
        if not measured:
            raise KeyError(f"decision_log: decision {decision.anchor!r} names variant {variant!r}, which no run's "
                           f"records hold")
        cells = [f"{summaries[run].ranks[variant]:.2f}" if run in measured else "-" for run in runs]
        complete = len(measured) == len(runs)
        mean = np.mean([summaries[run].ranks[variant] for run in runs]) if complete else None
        reference_complete = all(decision.reference in summaries[run].ranks for run in runs)
        if variant == decision.reference:
            reading = "reference"
        elif complete and reference_complete:
            change = float(mean - np.mean([summaries[run].ranks[decision.reference] for run in runs]))
            reading = rule_reading(change)
        else:
            changes = [f"{summaries[run].ranks[variant] - summaries[run].ranks[decision.reference]:+.2f} on {run}"
                       for run in measured if decision.reference in summaries[run].ranks]
            reading = "not on every run: " + ", ".join(changes)
        label = f"`{variant}`".replace("|", "\\|")  # a bare pipe would end the table cell
        rows.append([label] + cells + ["-" if mean is None else f"{mean:.2f}", reading])
        if variant == decision.reference:
            continue
        for run in measured:
            moved = family_moves(summaries[run], decision.reference, variant)
            if moved:
                moves.append(f"- `{variant}` on {run}: " + "; ".join(moved))
    header = ["variant"] + runs + ["mean over runs", "against the reference"]
    text = (f"### {decision.title}\n\n<a id=\"{decision.anchor}\"></a>Reference: `{decision.reference}` "
            f"({decision.reference_note}). {source}BAL's mean rank (p1 * p2 among the 7 feature-based baselines, "
            f"averaged over the six families):\n\n{markdown_table(header, rows)}\n")
    if moves:
        text += (f"\nFamilies whose AUROC (%, mean ± sample std (ddof=1) over the GAN seeds) moved by at least "
                 f"{MOVE} points, reference -> variant (best baseline on that family):\n\n" + "\n".join(moves) + "\n")
    return text


def family_moves(summary: RunSummary, reference: str, variant: str) -> list[str]:
    if reference not in summary.bal:
        return []
    moved = []
    for family, values in summary.bal[variant].items():
        before = summary.bal[reference][family]
        if abs(np.mean(values) - np.mean(before)) >= MOVE:
            best = max(summary.baselines, key=lambda m: summary.baselines[m][family])
            moved.append(f"{FAMILY_NAMES.get(family, family)} {mean_std(before)} -> {mean_std(values)} "
                         f"({best} {summary.baselines[best][family]:.2f})")
    return moved


def stamps(per_run: dict[str, list[dict]]) -> str:
    commits = sorted({r.get("commit", "?") for records in per_run.values() for r in records})
    machines = sorted({r.get("machine", "?") for records in per_run.values() for r in records})
    return f"commits {', '.join(commits)}; {'; '.join(machines)}"


def side_measurements(root: Path) -> str:
    """The log's other raw files, each rendered under the command that measured it."""
    sections = []
    geometry = sorted((root / VALIDATION).glob("near_ood_geometry_*.json"))
    if geometry:
        rows = []
        for path in geometry:
            report = json.loads(path.read_text())
            for kind, values in report["kinds"].items():
                d = values["distance_over_radius"]
                rows.append([path.stem.removeprefix("near_ood_geometry_"), kind, f"{d['p10']:.2f}",
                             f"{d['median']:.2f}", f"{d['p90']:.2f}", f"{values['d_mean']:.2f}"])
        aurocs = [[p.stem.removeprefix("near_ood_geometry_"),
                   *[f"{100 * v:.2f}" for v in json.loads(p.read_text())["auroc_held_out_id_vs_near_ood"].values()]]
                  for p in geometry]
        names = list(json.loads(geometry[0].read_text())["auroc_held_out_id_vs_near_ood"])
        sections.append(
            "### <a id=\"near-ood-geometry\"></a>Near-OOD geometry\n\n(by a script deleted after `05e9f0b`, where it can be read) `python benchmarks/near_ood_geometry.py --run RUN "
            "--seed 0 [--set ...] --out FILE` (one GAN, seed 0; raw: "
            + ", ".join(f"`{p.relative_to(root)}`" for p in geometry)
            + "). Distance to the centroid of the (predicted or conditioning) class in units of the class's radius "
            "(median distance of its training features), and D's mean output:\n\n"
            + markdown_table(["report", "features", "p10", "median", "p90", "mean D"], rows)
            + "\n\nAUROC (%), held-out ID vs held-out classes:\n\n"
            + markdown_table(["report"] + names, aurocs) + "\n")
    ratios = sorted((root / VALIDATION).glob("knn_ratio_*.json"))
    if ratios:
        rows = []
        for path in ratios:
            report = json.loads(path.read_text())
            for kind, values in report["ratio"].items():
                rows.append([Path(report["run"]).name, kind, f"{values['p5']:.2f}", f"{values['p50']:.2f}",
                             f"{values['p95']:.2f}", f"{100 * values['beyond_level']:.0f}%"])
        sections.append(
            "### <a id=\"knn-ratio\"></a>k-NN ratio r\n\n(by a script deleted after `05e9f0b`) `python benchmarks/knn_ratio.py --run RUN --out FILE` (raw: "
            + ", ".join(f"`{p.relative_to(root)}`" for p in ratios)
            + "). r: the class-conditional k-NN distance in units of the class's ID level:\n\n"
            + markdown_table(["run", "features", "p5", "median", "p95", "beyond the level"], rows) + "\n")
    parity = sorted((root / VALIDATION / "int8_parity").glob("*_export_info.json"))
    if parity:
        rows = []
        for path in parity:
            info = json.loads(path.read_text())
            auroc = info.get("auroc_parity")
            rows.append([path.stem.removesuffix("_export_info"), info.get("commit", "?"),
                         f"{info['parity']['tflite_dynamic_range_vs_keras_max_abs']:.3f}",
                         f"{info['parity']['tflite_full_int8_vs_keras_max_abs']:.3f}",
                         " / ".join(f"{100 * auroc[k]:.2f}" for k in ("keras", "bal_dynamic_range", "bal_full_int8"))
                         if auroc else "-"])
        sections.append(
            "### <a id=\"int8-parity\"></a>Quantized parity of the validation exports\n\n`export/export_model.py --run RUN "
            "[--parity-ood rotate90]` on the `mnist-4to9-cpu` validation classifier (raw: `"
            + str((root / VALIDATION / "int8_parity").relative_to(root)) + "/*_export_info.json`). Max abs difference "
            "to Keras over p1, p2, score and log score on held-out ID images; rotate90 AUROC (held-out ID images "
            "against the same images rotated, a validation family):\n\n"
            + markdown_table(["export", "commit", "dynamic-range max abs", "full-int8 max abs",
                              "rotate90 AUROC Keras / dynamic-range / full-int8"], rows) + "\n")
    timings = sorted((root / VALIDATION).glob("stage2_time_*.json"))
    if timings:
        rows = [[Path(t["run"]).name, " ".join(t.get("overrides", [])) or "-", t["epochs"], f"{t['seconds_total']:.0f}",
                 t["target_seconds"], t["commit"], t["machine"]]
                for t in (json.loads(p.read_text()) for p in timings)]
        sections.append(
            "### <a id=\"stage2-time\"></a>Stage-2 time of variants\n\n`python benchmarks/stage2_time.py --run RUN --set "
            "...` (raw: " + ", ".join(f"`{p.relative_to(root)}`" for p in timings) + "; today's default: the README's "
            "generated stage-2 block):\n\n"
            + markdown_table(["run", "overrides", "GAN epochs", "seconds", "target", "commit", "machine"], rows) + "\n")
    return "\n".join(sections)


def render_at_one_commit(root: Path) -> str:
    """The final validation job's section; says what measures it while its raw files are missing."""
    paths = [root / FINAL / f"{run}.jsonl" for run in RUNS]
    missing = [str(p.relative_to(root)) for p in paths if not p.is_file()]
    if missing:
        return (f"### {AT_ONE_COMMIT.title}\n\n<a id=\"{AT_ONE_COMMIT.anchor}\"></a>No records yet in "
                + ", ".join(f"`{m}`" for m in missing)
                + ": `python benchmarks/reproduce.py --only validation` measures them.\n")
    per_run = read_runs(paths)
    summaries = {run: summarize_run(per_run[run]) for run in RUNS if run in per_run}
    source = (f"Raw records: {', '.join(f'`{p.relative_to(root)}`' for p in paths)} "
              f"(measured at {stamps(per_run)}). ")
    held = [v for v in AT_ONE_COMMIT.alternatives
            if v not in HISTORY_PRESETS or any(v in summary.ranks for summary in summaries.values())]
    return render_decision(dataclasses.replace(AT_ONE_COMMIT, alternatives=held), summaries, source)


def render(root: Path = ROOT) -> str:
    paths = [root / VALIDATION / f"{run}.jsonl" for run in RUNS]
    per_run = read_runs(paths)
    summaries = {run: summarize_run(per_run[run]) for run in RUNS if run in per_run}
    command = "python benchmarks/decision_log.py --out docs/results/validation/decision_log.md"
    return (f"# The decision log's evidence\n\nGenerated by `{command}` from the raw records "
            + ", ".join(f"`{p.relative_to(root)}`" for p in paths)
            + f" (measured at {stamps(per_run)}) and the side measurements' raw files below. "
            "DESIGN.md's decision log cites the sections by name. Every record was measured when its decision was "
            "made, at the commit in its stamp; `default` in records before `0566035` is the default of that day "
            "(the `stable` preset, deleted after `05e9f0b`). Records of options deleted in the cut name fields this "
            f"code no longer has: their code is at `{CUT}`.\n\n## The log, one row per experiment\n\n"
            + outcome_table() + "\n## Decisions\n\n"
            + "\n".join(render_decision(d, summaries) for d in DECISIONS)
            + "\n## Side measurements\n\n" + side_measurements(root)
            + "\n## Measured again at one commit\n\n" + render_at_one_commit(root))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--out", type=Path, help="write the Markdown here (default: print it)")
    args = parser.parse_args(argv)
    try:
        text = render()
    except (FileNotFoundError, ValueError, KeyError) as error:
        print(f"error: {error.args[0] if error.args else error}", file=sys.stderr)
        return 2
    if args.out:
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(args.out)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
