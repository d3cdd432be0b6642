"""Table 3 at CPU scale: the LSMS ablations (a)-(e), plus (f) block design, as ``lsms-nano`` configs on the synthetic benchmark.

    python benchmarks/ablations.py                      # every unique config, 400 steps, seed 0
    python benchmarks/ablations.py --report-only        # the table from the JSONs found

Rows that describe the same network (e.g. the default appears in (b), (c) and (e); S4-Head-MLP in (d)
and (e)) are trained once: a row's config is reduced to the fields that differ from LSMS's defaults,
and that canonical form names the run. Results: benchmarks/results/ablations/<key>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402 - the scripts run from any directory
    RESULTS_ROOT,
    Budget,
    DataSpec,
    RunSpec,
    add_common_args,
    budget_line,
    ensure_synth,
    load_results,
    markdown_table,
    pct,
    run_all,
)

from lsms.atomic import atomic_write_text
from lsms.models.lsms import LSMSConfig  # noqa: E402

MODEL = "lsms-nano"
DEFAULT_RESULTS = RESULTS_ROOT / "ablations"
ALL_STAGES = {"decoder_stages": (1, 2, 3, 4)}

# (table, row label, overrides of create_model, paper (Dice, mIoU) in % on RefHL-Seg val)
ROWS: tuple[tuple[str, str, dict[str, Any], tuple[float, float]], ...] = (
    ("a", "d = 5", {"kernel_sizes": (5,)}, (72.95, 64.14)),
    ("a", "d = 7", {"kernel_sizes": (7,)}, (73.28, 64.81)),
    ("a", "d = 11", {"kernel_sizes": (11,)}, (74.03, 65.27)),
    ("a", "d = 15", {"kernel_sizes": (15,)}, (73.97, 65.31)),
    ("a", "d = 19", {"kernel_sizes": (19,)}, (72.33, 63.97)),
    ("a", "d = 21", {"kernel_sizes": (21,)}, (73.36, 65.22)),
    ("b", "ConvU1 + ConvU2 (7, 11)", {"kernel_sizes": (7, 11), "pixel_map": False}, (76.34, 66.96)),
    ("b", "ConvU1 + ConvU3 (7, 21)", {"kernel_sizes": (7, 21), "pixel_map": False}, (76.52, 67.03)),
    ("b", "ConvU2 + ConvU3 (11, 21)", {"kernel_sizes": (11, 21), "pixel_map": False}, (76.44, 67.17)),
    ("b", "ConvU1-3 (7, 11, 21)", {"kernel_sizes": (7, 11, 21), "pixel_map": False}, (77.10, 68.88)),
    ("b", "ConvU1-3 + PixelMap", {"kernel_sizes": (7, 11, 21), "pixel_map": True}, (78.14, 70.22)),
    ("c", "LSMS (w/o FSD)", {"use_fsd": False}, (74.86, 65.64)),
    ("c", "LSMS (w/ FSD)", {}, (78.14, 70.22)),
    ("d", "S4-Head-MLP", {"decoder_stages": (4,)}, (75.82, 67.39)),
    ("d", "S1-S4 MLP-Concat-MLP", {"decoder_design": "mlp-concat-mlp", **ALL_STAGES}, (77.07, 68.48)),
    ("d", "S1-S4 Concat-Head-MLP", {"decoder_design": "concat-head-mlp", **ALL_STAGES}, (77.95, 69.33)),
    (
        "d",
        "S1-S4 MLP-Concat-Head-MLP",
        {"decoder_design": "mlp-concat-head-mlp", **ALL_STAGES},
        (76.35, 68.21),
    ),
    ("e", "S4", {"decoder_stages": (4,)}, (77.82, 66.39)),
    ("e", "S3, S4", {"decoder_stages": (3, 4)}, (78.71, 67.26)),
    ("e", "S1, S2, S3", {"decoder_stages": (1, 2, 3)}, (77.83, 66.92)),
    ("e", "S2, S3, S4", {"decoder_stages": (2, 3, 4)}, (78.14, 70.22)),
    ("e", "S1, S2, S3, S4", ALL_STAGES, (77.95, 69.33)),
    # Not in the paper: eqs. (2)-(3) are post-norm; how the blocks start decides whether they train.
    ("f", "post-norm, zero-initialised branch ends (default)", {}, (None, None)),
    ("f", "post-norm, default initialisation", {"zero_init_branches": False}, (None, None)),
    ("f", "pre-norm with layer scale (MSCAN style)", {"block_style": "pre-norm"}, (None, None)),
)
TITLES = {
    "a": "(a) Kernel size of a single ConvUnit in SVLA",
    "b": "(b) Design choices of SVLA (PM = PixelMap)",
    "c": "(c) Ablation on FSD",
    "d": "(d) Design choices of FSD",
    "e": "(e) FSD on various stages",
    "f": "(f) Encoder block design (not in the paper; `block_style`, `zero_init_branches`)",
}


def canonical(overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides that differ from LSMS's defaults (lists as tuples), sorted by field name."""
    defaults = LSMSConfig()
    known = {f.name for f in dataclasses.fields(LSMSConfig)}
    out = {}
    for name in sorted(overrides):
        if name not in known:
            raise ValueError(f"ablation row: unknown LSMS config field {name!r}")
        value = tuple(overrides[name]) if isinstance(overrides[name], list) else overrides[name]
        if value != getattr(defaults, name):
            out[name] = value
    return out


def config_key(overrides: dict[str, Any]) -> str:
    """A file-name-safe name of a canonical config: ``default`` or e.g. ``kernel_sizes-7-11__pixel_map-False``."""
    parts = []
    for name, value in canonical(overrides).items():
        text = "-".join(str(v) for v in value) if isinstance(value, tuple) else str(value)
        parts.append(f"{name}-{text}")
    return "__".join(parts) or "default"


def unique_configs(rows: Sequence[tuple] = ROWS) -> dict[str, dict[str, Any]]:
    """Each distinct config once, in the order of first appearance: key -> canonical overrides."""
    configs: dict[str, dict[str, Any]] = {}
    for _, _, overrides, _ in rows:
        configs.setdefault(config_key(overrides), canonical(overrides))
    return configs


def run_order() -> list[str]:
    """Unique config keys, the most telling parts first ((c), (b), (d), (e), then (a)), so that a sweep
    stopped early still answers most rows."""
    return list(unique_configs(sorted(ROWS, key=lambda row: "cbdeaf".index(row[0]))))


def run_key(config: str, seed: int) -> str:
    return f"synth__{config}__s{seed}"


def table3(results: dict[str, dict], seed: int = 0) -> str:
    """Markdown laid out like Table 3: one small table per part (a)-(e), our numbers beside the paper's."""
    headers = ["Row", "run (config)", "Dice", "mIoU", "Params (M)", "GMACs @224", "paper Dice", "paper mIoU"]
    parts = []
    for table, title in TITLES.items():
        rows = []
        for row_table, label, overrides, (paper_dice, paper_miou) in ROWS:
            if row_table != table:
                continue
            key = config_key(overrides)
            result = results.get(run_key(key, seed))
            full = result["metrics"]["full"] if result else {}
            size = result["complexity_224"] if result else None
            rows.append(
                [
                    label,
                    f"`{key}`",
                    pct(full.get("dice")),
                    pct(full.get("miou")),
                    f"{size['params_m']:.3f}" if size else "–",
                    f"{size['gmacs']:.3f}" if size else "–",
                    "–" if paper_dice is None else f"{paper_dice:.2f}",
                    "–" if paper_miou is None else f"{paper_miou:.2f}",
                ]
            )
        parts.append(f"### {title}\n\n{markdown_table(headers, rows)}")
    return "\n\n".join(parts)


def report(results: dict[str, dict], seed: int = 0) -> str:
    done = [r for r in results.values() if r["seed"] == seed]
    return (
        f"## Table 3 at CPU scale (lsms-nano, synthetic benchmark, test split, seed {seed})\n\n"
        f"{table3(results, seed)}\n\n{len(done)} of {len(unique_configs())} unique configs finished; "
        f"{budget_line(done)}\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_args(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", default=None, help="config keys to run (default: all)")
    args = parser.parse_args(argv)
    results_dir = args.results_dir or DEFAULT_RESULTS
    if not args.report_only:
        manifest = ensure_synth(args.synth_dir, args.synth_cases)
        data = DataSpec("synth", str(manifest), 128, max_eval_samples=args.max_eval)
        steps = args.steps or 400
        budget = Budget(
            steps=steps,
            batch_size=args.batch_size,
            lr=args.lr,
            val_every=args.val_every or max(1, steps // 2),
            max_val_samples=160,
        )
        queue = [
            RunSpec(
                run_key(key, args.seed),
                MODEL,
                overrides,
                data,
                budget,
                args.seed,
                ("full",),
                extra={"config": key},
            )
            for key, overrides in ((key, unique_configs()[key]) for key in run_order())
            if args.only is None or key in args.only
        ]
        run_all(queue, results_dir, args.runs_dir, args.threads)
    text = report(load_results(results_dir), args.seed)
    print(text)
    if args.out_md:
        atomic_write_text(args.out_md, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
