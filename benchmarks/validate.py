#!/usr/bin/env python
"""The sweep tool of the validation protocol (bal_tf/validation.py): it prints validation
metrics only, never a test OOD set's.

For each run, variant and GAN seed: train BAL's GAN on the run's cached features (checkpoint
selection as configured), then score held-out ID data against each validation family with
BAL's p1 * p2 (selected and last checkpoint) and with every feature-based baseline of
evaluate.py on the same backbone. Prints a table per run (mean ± sample std over seeds) with
BAL's rank among the methods, and appends JSON lines to --out.

    python benchmarks/validate.py --run runs/mnist-cpu-seed0 --run runs/mnist-4to9-cpu-seed0 \\
        --seeds 0 1 2 --variant default --variant gan.d_ema_decay=0 --out validation.jsonl
    python benchmarks/validate.py --summarize FILE.jsonl [FILE.jsonl ...] [--markdown FILE.md]
    # the decision log, rendered from its raw records (measures nothing)
    python benchmarks/validate.py decision-log --out docs/results/validation/decision_log.md
"""

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from tables import SPREAD_LABEL, classifier_digest, competition_rank, markdown_table, mean_std, provenance, resume_sweep, split_variant

def validate_run(run_dir: Path, variants: list[str], seeds: list[int], overrides: list[str] = (),
                 families: list[str] | None = None, done: set = frozenset(), emit=None) -> list[dict]:
    """Records: one per baseline, then one per (variant, seed); metrics per validation family.

    Args:
        done: keys ``(method, variant, seed)`` measured already (``resume_sweep``): a baseline key
            skips the baselines, ``("bal", variant, seed)`` that GAN.
        emit: called with each measurement's records as soon as they exist (``append_records``),
            so a sweep cut short keeps every GAN it finished.
    """
    from bal_tf import validation
    from bal_tf.evaluation import MethodScorer
    from bal_tf.features import RunFeatures
    from bal_tf.train_bal import train_bal

    emit = emit or (lambda records: None)
    run, base, features, sets, train, stamp = open_run(run_dir, families, "benchmarks/validate.py")
    records = []
    if not any(variant == "-" for _, variant, _ in done):
        scorer = MethodScorer(run, train, features.classifier, seed=base.seed, holdout=sets.id)
        records = [{"run": str(run.root), "method": method, "variant": "-", "seed": base.seed,
                    "validation": values, **stamp}
                   for method, values in validation.baseline_metrics(scorer, sets).items()]
        emit(records)
    for variant in variants:
        todo = [seed for seed in seeds if ("bal", variant, seed) not in done]
        if not todo:
            continue
        variant_overrides = list(overrides) + split_variant(variant)
        config = with_variant(base, variant_overrides)
        selection_data = RunFeatures(config, run, progress=False).selection_data()
        for seed in todo:
            start = time.time()
            result = train_bal(config.gan, train.at(config.features.depths), selection_data=selection_data, seed=seed,
                               verbose=0)
            seconds = round(time.time() - start, 1)
            print(f"validate: {run.root.name} [{variant}] GAN seed {seed}: selected epoch "
                  f"{result.selected_epoch}, {seconds:.0f} s", flush=True)  # a sweep takes hours: say where it is
            # BAL's score p1 * p2 at the selected and the last epoch; p2 alone as a diagnostic.
            measured = [{"run": str(run.root), "method": method, "variant": variant,
                         "overrides": variant_overrides, "seed": seed,
                         "selected_epoch": result.selected_epoch, "seconds": seconds,
                         "validation": validation.bal_metrics(discriminator, sets, score, config.features.depths),
                         **stamp}
                        for method, discriminator, score in (("bal", result.discriminator, "log_score"),
                                                             ("bal_last", result.last_discriminator, "log_score"),
                                                             ("bal_p2_only", result.discriminator, "d_logit"))]
            emit(measured)
            records += measured
    return records


def open_run(run_dir: Path, families, script: str):
    """``(run, its config, its RunFeatures, validation sets, training features, provenance stamp)``."""
    from bal_tf import validation
    from bal_tf.features import RunFeatures
    from bal_tf.run_dir import RunDir

    run = RunDir(Path(run_dir))
    # the classifier's digest lets a resumed sweep keep records measured on this very classifier
    stamp = {**provenance(), "command": " ".join(["python", script, *sys.argv[1:]]),
             "classifier_sha256": classifier_digest(run.root)}
    base = run.load_config()
    features = RunFeatures(base, run, progress=False)
    # every depth: the baselines and each variant read what they use (``FeatureSet.at``)
    return run, base, features, validation.validation_sets(features, families, seed=base.seed), \
        features.split("train", depths="stages"), stamp


def with_variant(base, overrides: list[str]):
    """``base`` with a variant's overrides; an item ``gan_preset=NAME`` first replaces the whole
    stage-2 config (the ``gan`` and ``features`` sections) by that preset's
    (``bal_tf.config.apply_gan_preset``), the others apply after it."""
    from bal_tf.config import GAN_PRESETS, apply_gan_preset
    from bal_tf.errors import ConfigError

    config = base
    for item in (o for o in overrides if o.startswith("gan_preset=")):
        name = item.split("=", 1)[1]
        if name not in GAN_PRESETS:
            raise ConfigError(f"Unknown GAN preset {name!r} in variant item {item!r}; known: {sorted(GAN_PRESETS)}")
        config = apply_gan_preset(config, name)
    return config.with_overrides([o for o in overrides if not o.startswith("gan_preset=")])


def summary_table(records: list[dict]) -> str:
    """Rows: baselines and BAL per variant; columns: AUROC per family and BAL's rank."""
    from bal_tf.validation import SEEN_TEST_CELLS

    families = list(records[0]["validation"])
    rows, means = [], {}
    groups = {}
    for record in records:
        groups.setdefault((record["method"], record["variant"]), []).append(record)
    for (method, variant), group in groups.items():
        name = method if variant == "-" else f"{method} [{variant}]"
        means[name] = {f: np.mean([100 * r["validation"][f]["auroc"] for r in group]) for f in families}
        rows.append([name, len(group)] + [mean_std([100 * r["validation"][f]["auroc"] for r in group])
                                          for f in families])
    baselines = [n for n in means if "[" not in n]
    for row in rows:
        if "[" in row[0]:  # BAL's rank among the baselines, per family, by mean AUROC
            ranked = {f: 1 + sum(means[b][f] > means[row[0]][f] for b in baselines) for f in families}
            row.append(", ".join(f"{ranked[f]}" for f in families))
            row.append(f"{np.mean(list(ranked.values())):.2f}")
        else:
            row += ["", ""]
    header = ["method", "seeds"] + [f + (f" (seen: {SEEN_TEST_CELLS[f]})" if f in SEEN_TEST_CELLS else "")
                                    for f in families] + ["BAL's rank per family", "mean rank"]
    return (f"Validation AUROC in %, held-out ID vs each family; {SPREAD_LABEL.format(n='the listed')}.\n"
            + markdown_table(header, rows))


def bal_mean_rank(records: list[dict]) -> dict[str, float]:
    """``{variant: BAL's mean rank over the families}`` for the ``bal`` rows of one run's records
    (rank among the baselines by mean AUROC over seeds, as in ``summary_table``)."""
    families = list(records[0]["validation"])
    means = {}
    for record in records:
        if record["method"] == "bal" or record["variant"] == "-":
            key = record["variant"] if record["method"] == "bal" else "-" + record["method"]
            means.setdefault(key, []).append([100 * record["validation"][f]["auroc"] for f in families])
    means = {k: np.mean(v, axis=0) for k, v in means.items()}
    baselines = [k for k in means if k.startswith("-")]
    # standard competition ranks (1-2-2-4) at the tables' printed precision: ties are ties
    return {k: float(np.mean([competition_rank({name: means[name][i] for name in [k, *baselines]}, k)
                              for i in range(len(families))]))
            for k in means if not k.startswith("-")}


def cross_run_table(per_run: dict[str, list[dict]]) -> str:
    """BAL's mean rank per run and averaged over the runs, for the variants every run has."""
    ranks = {run: bal_mean_rank(records) for run, records in per_run.items()}
    common = [v for v in next(iter(ranks.values())) if all(v in r for r in ranks.values())]
    rows = [[v] + [f"{ranks[run][v]:.2f}" for run in ranks] + [f"{np.mean([r[v] for r in ranks.values()]):.2f}"]
            for v in common]
    return ("BAL's mean rank over the families (1 = best among the feature-based baselines), per run and "
            "averaged over the runs; variants measured on every run.\n\n"
            + markdown_table(["variant"] + [Path(run).name for run in ranks] + ["mean over runs"], rows))


def summaries_from_file(path: Path | list[Path], cross_run_only: bool = False) -> str:
    """One table per run from JSON lines files of several invocations (baselines, which every
    invocation scores again with the same values, counted once); with several runs, a
    cross-run table of BAL's mean rank too (``cross_run_only``: that table alone)."""
    paths = [Path(p) for p in (path if isinstance(path, (list, tuple)) else [path])]
    missing = [p for p in paths if not p.is_file()]
    if missing:  # e.g. reproduce.py --render-only before its validation job has measured them
        return (f"No records yet in {', '.join(map(str, missing))}: `python benchmarks/reproduce.py --only "
                "validation` measures them.\n")
    per_run: dict[str, list[dict]] = {}
    seen = set()
    for line in (line for p in paths for line in p.read_text().splitlines()):
        record = json.loads(line)
        if record["variant"] == "-":
            key = (record["run"], record["method"], record["seed"])
            if key in seen:
                continue
            seen.add(key)
        per_run.setdefault(record["run"], []).append(record)
    stamps = sorted({(r.get("commit", "?"), r.get("machine", "?")) for rs in per_run.values() for r in rs})
    header = (f"Generated by `python benchmarks/validate.py --summarize {' '.join(map(str, paths))}` from its raw "
              f"records; measured at commit(s) {', '.join(sorted({c for c, _ in stamps}))} on "
              f"{'; '.join(sorted({m for _, m in stamps}))} ('?': records written before they were stamped).\n\n")
    cross = f"## Across runs\n\n{cross_run_table(per_run)}\n\n" if len(per_run) > 1 else ""
    if cross_run_only:
        return header + cross_run_table(per_run) + "\n"
    return header + cross + "\n".join(f"## {run}\n\n{summary_table(records)}\n" for run, records in per_run.items())


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["decision-log"]:
        return decision_log_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", type=Path, help="a run with stage 1 done")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="GAN seeds")
    parser.add_argument("--variant", action="append", default=[],
                        help="'default', or comma-separated gan.field=value overrides, of which one may be "
                             "gan_preset=NAME (that GAN preset, the other overrides on top) (repeatable)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="gan.field=value applied to every variant")
    parser.add_argument("--family", action="append", help="validation families (default: all that apply)")
    parser.add_argument("--out", type=Path, help="JSON lines output (appended)")
    parser.add_argument("--resume", action="store_true",
                        help="skip the baselines and GANs whose records --out already holds, written by the "
                             "same code on the same classifier file; drop the runs' other records there "
                             "(for a file this sweep owns, e.g. reproduce.py's; never the decision log's own files)")
    parser.add_argument("--summarize", type=Path, nargs="+", help="only tabulate these JSON lines files (every run in them)")
    parser.add_argument("--markdown", type=Path, help="with --summarize: also write the tables to this file")
    parser.add_argument("--cross-run-only", action="store_true", help="with --summarize: only the cross-run table")
    args = parser.parse_args(argv)
    from bal_tf.errors import run_cli

    return run_cli(lambda: sweep(args, parser))


def sweep(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """The body of ``main``: a run directory that is not one, or an unknown field in any variant,
    ends it with one ``error:`` line (``run_cli``) before anything trains."""
    from bal_tf.errors import ConfigError

    if args.summarize:
        text = summaries_from_file(args.summarize, args.cross_run_only)
        if args.markdown:
            args.markdown.parent.mkdir(parents=True, exist_ok=True)
            args.markdown.write_text(text)
        print(text)
        return
    if not args.run:
        parser.error("give --run (or --summarize FILE)")
    not_runs = [str(run) for run in args.run if not (run / "config.json").is_file()]
    if not_runs:  # checked for every run first: a typo in the last --run would otherwise surface hours in
        raise ConfigError(f"--run expects run directories written by train.py (DIR/config.json); "
                          f"received {', '.join(not_runs)} (no config.json there).")
    variants, done = args.variant or ["default"], {}
    from bal_tf.run_dir import RunDir

    for run in args.run:  # an unknown field in the last variant: an error now, not after the others' GANs
        for variant in variants:
            with_variant(RunDir(run).load_config(), list(args.overrides) + split_variant(variant))
    if args.resume:
        if not args.out:
            parser.error("--resume needs --out (the file it resumes from)")
        expected = {run.name: {("bal", variant, seed) for variant in variants for seed in args.seeds}
                    for run in args.run}
        done = resume_sweep(args.out, {run.name: classifier_digest(run) for run in args.run},
                            lambda r: (r["method"], r["variant"], r["seed"]), expected)
    for run in args.run:
        run_done = done.get(run.name, set())
        if all(("bal", v, s) in run_done for v in variants for s in args.seeds) \
                and any(variant == "-" for _, variant, _ in run_done):
            print(f"validate: {run} finished by the same code already ({args.out}); skipped", flush=True)
            continue
        if run_done:
            print(f"validate: {run}: resuming, {sum(1 for m, v, _ in run_done if m == 'bal')} of "
                  f"{len(variants) * len(args.seeds)} GANs measured by the same code already ({args.out})", flush=True)
        records = validate_run(run, variants, args.seeds, args.overrides, args.family, done=run_done,
                               emit=lambda records: append_records(args.out, records))
        if args.out:  # the table covers the records of earlier sessions too
            records = [r for r in read_records(args.out) if Path(r.get("run", "")).name == run.name]
        if records:
            print(f"## {run}\n\n{summary_table(records)}\n", flush=True)


def append_records(out: Path | None, records: list[dict]) -> None:
    """Appends records to ``out`` (JSON lines; nothing without ``out``), in one write."""
    if out and records:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a") as handle:
            handle.write("".join(json.dumps(r) + "\n" for r in records))


def read_records(path: Path) -> list[dict]:
    """The records of a JSON lines file (none if it does not exist yet)."""
    path = Path(path)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def report(run, records: list[dict], out: Path | None) -> None:
    """Appends one run's records to ``out`` (JSON lines) and prints their table."""
    append_records(out, records)
    print(f"## {run}\n\n{summary_table(records)}\n", flush=True)


# ---- decision-log (was benchmarks/decision_log.py) ------------------------------------------

DECISION_LOG_DOC = """The evidence of DESIGN.md's decision log, rendered from its raw files (measures nothing).

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

    python benchmarks/validate.py decision-log                         # prints docs/results/validation/decision_log.md
    python benchmarks/validate.py decision-log --out docs/results/validation/decision_log.md
"""


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
BOUNDARY = "gan_preset=default,gan.boundary_weight=5.0,gan.boundary_scale=[0.15,0.6]"  # the default from issue 35 until issue 37
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
DR_CUT = "3aaed79"  # the last commit holding shells and k-NN negatives (deleted in issue 37)
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
    "shell-radius": ("shells from 2 class radii (was 1.5): cleared the rule; the shells lost to D's references in "
                     "issue 37 and were deleted (`shell_sampling=radial`, `shell_weight`)", DR_CUT),
    "extra-negatives": ("k-NN boundary negatives at weight 5 cleared the rule (the default until issue 37, where "
                        "they lost to D's references and were deleted: `boundary_*`); between-class mixes lost and "
                        "were deleted (`between_class_*`, code at `05e9f0b`)", DR_CUT),
    "lipschitz": ("lost: a spectral-norm bound on D ranks worse; deleted (`discriminator_lipschitz`)", CUT),
    "knn-input": ("lost: D's k-NN distance input, concat or monotone; deleted (`discriminator_knn_*`)", CUT),
    "graded-targets": ("lost: graded boundary targets; deleted (`boundary_targets`, `boundary_target_range`)", CUT),
    "boundary-weight-10": ("kept weight 5: 10 does not clear the rule; the k-NN negatives deleted in issue 37",
                           DR_CUT),
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
    "at-one-commit": ("the EMA of D (chosen first on test OOD sets) kept then: no EMA was within the rule's "
                      "margin (the section's last row); re-decided in issue 37's round 2, where no EMA cleared the "
                      "rule and became the default (`density-ratio-second`)", LIBRARY),
}

# Issue 37's decisions (title, outcome, evidence anchor, code at): the sections of the sweep below.
DR_OUTCOMES = [
    ("D's references (ladder and floor) in place of shells and k-NN negatives",
     "taken: the default (clears the rule, loses on no run); the shells and k-NN negatives deleted", "density-ratio",
     DR_CUT),
    ("the references on top of shells and k-NN negatives", "not taken: within the rule's 0.25 of the references "
     "alone (seed 0 against their 3 seeds), with more parts, and fewer parts win; the screen rule would have given "
     "it seeds 1-2, which it did not get", "density-ratio", DR_CUT),
    ("p2 = the density (logit + log q) / the calibrated ratio", "lost to the blend; both stay `p2_target` values: "
     "the ratio is the paper presets' target, the density the blend's end point (beta = 1) and the toy test's "
     "target", "density-ratio",
     LIBRARY),
    ("no EMA of D, on the references' default", "taken: clears the rule (-0.33, 3 seeds), loses on no run; "
     "`d_ema_decay` stays a field (the `paper` preset's 0.999)", "density-ratio-second", LIBRARY),
    ("features at every stage (`features.depths=stages`)", "taken: clears the rule over 3 seeds (-0.88: 2.79 "
     "against 3.67), loses on no run (its lower means on both CNN runs are within the seed std); the paper's GAN "
     "presets keep h(x) alone (`features.depths=penultimate`, a field value)", "density-ratio-third", LIBRARY),
    ("G's hard features at weight 0.3 / 3 (`gan.hard_weight`), 10 GAN epochs (`gan.epochs`)", "not taken: over 3 seeds "
     "none clears the rule (weight 0.3: +0.13; weight 3: -0.04; 10 epochs: -0.08; it asks below -0.25), and none "
     "loses on any run. 10 epochs trains stage 2 in about 0.6 of the time (107 s against 175 s at 632c7fb), which "
     "the rule does not weigh. The fields stay, at 1 and 20", "density-ratio-fourth", LIBRARY),
]


def outcome_table() -> str:
    """The log in one table: a row per experiment, its evidence section and where its code is."""
    rows = []
    for decision in DECISIONS + [AT_ONE_COMMIT]:
        outcome, code = OUTCOMES[decision.anchor]
        code_cell = "this checkout" if code == LIBRARY else f"`{code}` (`git show {code}:bal_tf/config.py`)"
        rows.append([decision.title, outcome, f"[`{decision.anchor}`](#{decision.anchor})", code_cell])
    for title, outcome, anchor, code in DR_OUTCOMES:
        code_cell = "this checkout" if code == LIBRARY else f"`{code}` (`git show {code}:bal_tf/config.py`)"
        rows.append([title, outcome, f"[`{anchor}`](#{anchor})", code_cell])
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
            "### <a id=\"stage2-time\"></a>Stage-2 time of variants\n\n`python benchmarks/stage2_time.py` (now `timing.py stage2`) `--run RUN --set "
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


# Issue 37's sweep (DESIGN.md, "The density-ratio sweep's rule"): four validation runs with the
# classifiers of the MNIST CPU presets of issue 36. Round 1 (records in
# docs/results/validation/density_ratio/RUN-seed0*.jsonl, measured before `3aaed79`): the incumbent
# and the references; round 2 (density_ratio/second/, at `3aaed79`, whose fields the variants name):
# the references' default, its EMA and its depths.
DR_VALIDATION = f"{VALIDATION}/density_ratio"
DR_SECOND = f"{DR_VALIDATION}/second"
DR_RUNS = ["mnist-4to9-cpu-seed0", "mnist-4to9-cnn-cpu-seed0", "fashion_mnist-4to9-cpu-seed0",
           "fashion_mnist-4to9-cnn-cpu-seed0"]
DR_REFERENCES = "gan.ladder_weight=1.0,gan.floor_weight=1.0,gan.p2_calibration=held_out_id"
DR_LEAN = "gan.shell_sampling=none,gan.boundary_weight=0.0," + DR_REFERENCES
DR_DEFAULT = DR_LEAN + ",gan.p2_target=blend"  # round 1's winner: the default since issue 37
DR_CANDIDATES = {
    "references on the default, blended p2": DR_REFERENCES + ",gan.p2_target=blend",
    "references in place of shells and k-NN negatives, blended p2": DR_DEFAULT,
    "the same, p2 = the density": DR_LEAN + ",gan.p2_target=density",
    "the same, p2 = the ratio (calibrated)": DR_LEAN + ",gan.p2_target=ratio",
}
DR_SECOND_CANDIDATES = {
    "the same, no EMA of D": DR_DEFAULT + ",gan.d_ema_decay=0.0",
    "the same, features at every stage": DR_DEFAULT + ",features.depths=stages",
}

# Round 3 (density_ratio/third/, at `d888952`, whose default is round 2's winner): the depths' screen
# that round 2 cut short, on the default itself.
DR_THIRD = f"{DR_VALIDATION}/third"
DR_THIRD_CANDIDATES = {"the default, features at every stage": "features.depths=stages"}

# Round 4 (density_ratio/fourth/): G's weight and the epochs on round 3's winner (every stage), whose
# records of round 3 are the incumbent's (same classifiers, same stage-2 code). The variants name the
# depths, as the validation runs' config.json were written before they became the default.
DR_FOURTH = f"{DR_VALIDATION}/fourth"
DR_STAGES = "features.depths=stages"
DR_FOURTH_CANDIDATES = {
    "hard features (G) at weight 0.3": DR_STAGES + ",gan.hard_weight=0.3",
    "hard features (G) at weight 3": DR_STAGES + ",gan.hard_weight=3.0",
    "10 GAN epochs": DR_STAGES + ",gan.epochs=10",
}


def mean_auroc_over_families(summary: RunSummary, variant: str) -> tuple[float, float, int]:
    """(mean over seeds of the mean AUROC over families, its sample std (ddof=1), seeds)."""
    per_seed = np.mean(np.array(list(summary.bal[variant].values())), axis=0)
    return float(per_seed.mean()), float(per_seed.std(ddof=1)) if len(per_seed) > 1 else float("nan"), len(per_seed)


def baseline_count(summaries: dict) -> str:
    """How many baselines BAL is ranked among: one number, or a range when rounds' records differ
    (the depths' baselines joined in issue 37's round 2)."""
    counts = sorted({len(summary.baselines) for summary in summaries.values()})
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def render_density_ratio_sweep(root: Path, directory: str = DR_VALIDATION, candidates: dict | None = None,
                               incumbent: tuple[str, str] = ("incumbent (the default at `08e45e1`)", "default"),
                               earlier: tuple[str, ...] = ()) -> str:
    """The sweep's rule applied: mean rank change against the incumbent, and on every run the mean AUROC
    over the families against the incumbent's, beside the larger of the two seed stds.

    Args:
        directory: the round's records, under ``root``.
        candidates: name -> variant (default: round 1's, ``DR_CANDIDATES``).
        incumbent: (name, variant) of the reference the candidates are measured against.
        earlier: directories of earlier rounds whose records join this round's (the incumbent
            measured there, on the same classifiers by the same code, is not trained again).
    """
    candidates = DR_CANDIDATES if candidates is None else candidates
    # RUN.jsonl (the seed-0 screen), RUN.seeds12.jsonl (seeds 1 and 2), RUN.ratio.jsonl: one file per
    # invocation of a code version, since a resumed sweep keeps only the records of its own code
    paths = [p for folder in (*earlier, directory) for p in
             sorted(p for run in DR_RUNS for p in (root / folder).glob(f"{run}*.jsonl"))]
    missing = [run for run in DR_RUNS if not (root / directory / f"{run}.jsonl").is_file()]
    if missing:
        return "No records yet for " + ", ".join(f"`{m}`" for m in missing) + ".\n"
    per_run = read_runs(paths)
    summaries = {run: summarize_run(per_run[run]) for run in DR_RUNS}
    reference = incumbent[1]
    rows = []
    for name, variant in [incumbent] + list(candidates.items()):
        seconds = [r["seconds"] for run in DR_RUNS for r in per_run[run] if r.get("method") == "bal"
                   and r.get("variant") == variant and "seconds" in r]
        measured = [run for run in DR_RUNS if variant in summaries[run].ranks]
        if len(measured) < len(DR_RUNS):  # a screen cut short: what it has, and no reading
            rows.append([name, f"`{variant}`"]
                        + [f"{summaries[run].ranks[variant]:.2f}" if run in measured else "-" for run in DR_RUNS]
                        + ["-", f"{np.mean(seconds):.0f}" if seconds else "-",
                           f"measured on {len(measured)} of {len(DR_RUNS)} runs: not read"])
            continue
        ranks = [summaries[run].ranks[variant] for run in DR_RUNS]
        change = np.mean(ranks) - np.mean([summaries[run].ranks[reference] for run in DR_RUNS])
        losses = []
        for run in DR_RUNS:
            mean, std, seeds = mean_auroc_over_families(summaries[run], variant)
            ref_mean, ref_std, _ = mean_auroc_over_families(summaries[run], reference)
            noise = np.nanmax([std, ref_std]) if seeds > 1 else float("nan")
            if mean < ref_mean - (0 if np.isnan(noise) else noise):
                losses.append(f"{run} {mean:.2f} < {ref_mean:.2f}" + ("" if np.isnan(noise) else f" - {noise:.2f}"))
        seeds = min(len(next(iter(summaries[run].bal[variant].values()))) for run in DR_RUNS)
        reading = "reference" if variant == reference else rule_reading(float(change))
        rows.append([name, f"`{variant}`"] + [f"{r:.2f}" for r in ranks]
                    + [f"{np.mean(ranks):.2f} ({seeds} seed{'s' if seeds > 1 else ''})",
                       f"{np.mean(seconds):.0f}" if seconds else "-",
                       reading + ("" if variant == reference else
                                  "; loses on " + ", ".join(losses) if losses else "; loses on no run")])
    # ranks among more baselines are higher: the incumbent among the penultimate layer's baselines
    # only says how far a round's ranks stand from round 1's
    depth_methods = {"mahalanobis_depths", "knn_depths"}
    penultimate_only = ""
    if any(depth_methods & set(summary.baselines) for summary in summaries.values()):
        ranks = [summarize_run([r for r in per_run[run] if r["method"] not in depth_methods]).ranks[reference]
                 for run in DR_RUNS]
        penultimate_only = (f" Without the depths' Mahalanobis and KNN, the incumbent's mean rank would be "
                            f"{np.mean(ranks):.2f} (round 1 ranked among the other 7 only).")
    return ("Raw records: " + ", ".join(f"`{p.relative_to(root)}`" for p in paths)
            + f" (measured at {stamps(per_run)}). BAL's mean rank among the {baseline_count(summaries)} feature-based "
            "baselines of the records over the six families of each run; a candidate is taken when the mean over runs is lower than the incumbent's by more "
            f"than {RULE} and on no run its mean AUROC over the families falls below the incumbent's by more than the "
            "larger seed std (with one seed: by anything). Stage-2 seconds: the mean GAN training time over the "
            f"records (validation selection included), on the machine of the stamp.{penultimate_only}\n\n"
            + markdown_table(["candidate", "variant", *DR_RUNS, "mean over runs", "stage-2 s", "against the incumbent"],
                             rows) + "\n")


def render_decision_log(root: Path = ROOT) -> str:
    paths = [root / VALIDATION / f"{run}.jsonl" for run in RUNS]
    per_run = read_runs(paths)
    summaries = {run: summarize_run(per_run[run]) for run in RUNS if run in per_run}
    command = "python benchmarks/validate.py decision-log --out docs/results/validation/decision_log.md"
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
            + "\n## Measured again at one commit\n\n" + render_at_one_commit(root)
            + "\n## The density-ratio sweep (issue 37)\n\n### <a id=\"density-ratio\"></a>Round 1: the references\n\n"
            + render_density_ratio_sweep(root)
            + "\n### <a id=\"density-ratio-second\"></a>Round 2: on the references' default, its EMA and its depths\n\n"
            + render_density_ratio_sweep(root, DR_SECOND, DR_SECOND_CANDIDATES,
                                         ("the default (the references, blended p2)", DR_DEFAULT))
            + "\n### <a id=\"density-ratio-third\"></a>Round 3: the depths, on the default without EMA\n\n"
            + render_density_ratio_sweep(root, DR_THIRD, DR_THIRD_CANDIDATES,
                                         ("the default (references, blended p2, no EMA)", "default"))
            + "\n### <a id=\"density-ratio-fourth\"></a>Round 4: G's weight and the epochs, on features at every "
            "stage\n\n"
            + render_density_ratio_sweep(root, DR_FOURTH, DR_FOURTH_CANDIDATES,
                                         ("the default (features at every stage)", DR_STAGES), earlier=(DR_THIRD,)))


def decision_log_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="validate.py decision-log", description=DECISION_LOG_DOC.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=DECISION_LOG_DOC)
    parser.add_argument("--out", type=Path, help="write the Markdown here (default: print it)")
    args = parser.parse_args(argv)
    try:
        text = render_decision_log()
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
