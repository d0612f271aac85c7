"""The run directory: one folder holds everything about a run, ``config.json`` first.

Layout::

    RUN/config.json              resolved RunConfig
    RUN/classifier.keras         stage 1 result (or a copy of the user's classifier)
    RUN/stage1/                  resume/ (last epochs, for resuming), metrics.json
    RUN/features/                cached penultimate features and logits per split (.npz)
    RUN/bal/                     stage 2: G and D (selected and last), history.json
    RUN/detector.keras           image -> {class, p1, p2, score, log_score} (selected D)
    RUN/logs/                    TensorBoard (stage1/, stage2/)
    RUN/eval/                    evaluate.py's tables
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from bal_tf.config import RunConfig
from bal_tf.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class RunDir:
    """Paths of a run. ``writable=False`` is a multi-worker run's non-chief view: it reads the
    chief's files and writes nothing."""

    root: Path
    writable: bool = True

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def classifier_path(self) -> Path:
        return self.root / "classifier.keras"

    @property
    def stage1_dir(self) -> Path:
        return self.root / "stage1"

    @property
    def features_dir(self) -> Path:
        return self.root / "features"

    @property
    def bal_dir(self) -> Path:
        return self.root / "bal"

    @property
    def detector_path(self) -> Path:
        return self.root / "detector.keras"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def load_config(self) -> RunConfig:
        if not self.config_path.is_file():
            raise ConfigError(f"{self.root} is not a run directory: it has no config.json.")
        return RunConfig.from_json(self.config_path, absent_gan_options_off=True)

    def write_json(self, relative: str, values: dict) -> Path:
        from bal_tf.io import atomic_write_text

        path = self.root / relative
        if self.writable:
            atomic_write_text(path, json.dumps(values, indent=2, sort_keys=True) + "\n")
        return path


STAGE2_SECTIONS = ("gan.", "features.")


def open_run_dir(root: str | Path, config: RunConfig) -> RunDir:
    """Creates ``root`` with ``config.json``, or reopens it if its config is the same.

    Before stage 2 has begun (no ``bal/``, no detector), the stage-2 sections (``gan``,
    ``features``: the cache holds every depth) may differ: the config is updated, so a trained
    classifier can be reused with other GAN settings.

    Raises:
        ConfigError: ``root`` holds a run made with another config (the differing fields are
            listed); use another ``--run-dir`` or delete it.
    """
    run = RunDir(Path(root))
    if run.config_path.is_file():
        existing = run.load_config().to_dict()
        wanted = config.to_dict()
        diffs = sorted(_diff(existing, wanted))
        stage2_begun = run.detector_path.exists() or (run.bal_dir.is_dir() and any(run.bal_dir.iterdir()))
        # A config.json from an older version lacks the fields added since: they load as off
        # (config.GAN_FIELDS_ABSENT_MEANS) or as today's defaults. Before stage 2 the file is written
        # out in full, so that it says what the run will use.
        missing = sorted(_missing(json.loads(run.config_path.read_text()), wanted))
        if diffs and all(d.startswith(STAGE2_SECTIONS) for d in diffs) and not stage2_begun:
            print(f"bal-tf: stage 2 has not begun in {run.root}: its stage-2 settings are updated "
                  f"({', '.join(diffs)})")
            config.to_json(run.config_path)
        elif not diffs and missing and not stage2_begun:
            print(f"bal-tf: {run.config_path} predates fields {', '.join(missing)}: rewritten with "
                  "their current defaults")
            config.to_json(run.config_path)
        elif diffs:
            raise ConfigError(
                f"Run directory {run.root} was made with another config (differs in "
                f"{', '.join(diffs)}). Use another --run-dir, or delete it to start over."
            )
    else:
        run.root.mkdir(parents=True, exist_ok=True)
        config.to_json(run.config_path)
    return run


def _missing(written: dict, full: dict, prefix: str = "") -> list[str]:
    """Keys of ``full`` (nested) that ``written`` lacks."""
    out = []
    for key, value in full.items():
        if key not in written:
            out.append(f"{prefix}{key}")
        elif isinstance(value, dict) and isinstance(written[key], dict):
            out.extend(_missing(written[key], value, f"{prefix}{key}."))
    return out


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out.extend(_diff(va, vb, f"{prefix}{key}."))
        elif va != vb:
            out.append(f"{prefix}{key}: {va!r} -> {vb!r}")
    return out
