#!/usr/bin/env python
"""The README's export figures (parity and latency), rendered from the raw JSON the export and
the latency benchmark wrote; ``benchmarks/reproduce.py --only export`` puts them in place.

    python benchmarks/export_report.py --info docs/results/export_info_mnist-cpu-seed0.json \\
        docs/results/export_latency_default.json [docs/results/export_latency_xla_all.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tables import markdown_table


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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


if __name__ == "__main__":
    main()
