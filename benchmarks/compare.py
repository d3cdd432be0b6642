"""Table 2 at CPU scale: every CPU-sized model, one step budget, on the synthetic referring benchmark
and on QaTa-COV19, evaluated with full, half and quarter text and with shuffled / empty text.

    python benchmarks/compare.py --datasets synth --seeds 0            # the comparison, seed 0
    python benchmarks/compare.py --headline-seeds 0 1 2                # LSMS vs best text baseline vs text-free
    python benchmarks/compare.py --datasets qata --seeds 0             # QaTa-COV19, every method
    python benchmarks/compare.py --report-only --out-md table2.md      # tables and plots from the JSONs

Each (dataset, method, seed) writes benchmarks/results/compare/<key>.json and is skipped when it exists.
The models are the scaled-down presets (``lsms-nano``, ``*-small``), not the paper's full-size networks.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsms.atomic import atomic_write_text
from lsms.models.paper_table2 import PAPER_TABLE2

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402 - the scripts run from any directory
    QATA_DIR,
    RESULTS_ROOT,
    Budget,
    DataSpec,
    RunSpec,
    add_common_args,
    budget_line,
    ensure_synth,
    load_results,
    markdown_table,
    mean_std,
    pct,
    run_all,
)

TEXT_VARIANTS = ("full", "half", "quarter", "shuffled", "none")
DEFAULT_RESULTS = RESULTS_ROOT / "compare"


@dataclass(frozen=True)
class Method:
    """A row group of the table: a registry model (plus overrides) and the paper's matching row."""

    id: str
    model: str
    label: str
    text: bool
    overrides: dict[str, Any] = field(default_factory=dict)
    paper: str | None = None  # method of lsms.models.paper_table2.PAPER_TABLE2


# Our synthetic benchmark stands in for the paper's RefHL-Seg column.
PAPER_COLUMN = {"synth": "refhl", "qata": "qata"}

# lsms-nano feeds all four stages to the FSD (the paper: S2-S4). Chosen on validation Dice of ablation (e)
# at 128 px (S1-S4 64.6 vs S2-S4 57.9, benchmarks/results/ablations), where S4 is only 4x4 pixels.
NANO_DECODER = {"decoder_stages": (1, 2, 3, 4)}

METHODS: tuple[Method, ...] = (
    Method("unet-small", "unet-small", "U-Net (unet-small)", False, paper="U-Net"),
    Method("unetpp-small", "unetpp-small", "UNet++ (unetpp-small)", False, paper="UNet++"),
    Method(
        "attention-unet-small",
        "attention-unet-small",
        "AttUNet (attention-unet-small)",
        False,
        paper="AttUNet",
    ),
    Method(
        "lsms-nano-textfree",
        "lsms-nano",
        "LSMS text-free (lsms-nano)",
        False,
        {**NANO_DECODER, "use_text": False},
        paper="LSMS (no text)",
    ),
    Method("late-fusion-unet-small", "late-fusion-unet-small", "Late-fusion U-Net (small)", True),
    Method("lvit-small", "lvit-small", "LViT (lvit-small)", True, paper="LViT"),
    Method("lsms-nano", "lsms-nano", "LSMS (lsms-nano)", True, NANO_DECODER, paper="LSMS"),
)
METHODS_BY_ID = {method.id: method for method in METHODS}
TEXT_BASELINES = ("lvit-small", "late-fusion-unet-small")
HEADLINE = ("lsms-nano", "lsms-nano-textfree")  # + the best text baseline of seed 0


def dataset_specs(args: argparse.Namespace) -> dict[str, tuple[DataSpec, Budget]]:
    """Synthetic: 128 px, test split, select on val. QaTa: 224 px, train on Train_Folder, no selection
    (final weights, so that Val_Folder, the evaluation split, is not also used to pick a checkpoint)."""
    max_eval = args.max_eval
    synth = DataSpec("synth", str(args.synth_dir / "manifest.csv"), 128, max_eval_samples=max_eval)
    qata = DataSpec(
        "qata",
        str(args.qata_dir),
        224,
        val_split=None,
        eval_split="val",
        max_eval_samples=max_eval if max_eval is not None else 400,
    )
    synth_budget = Budget(
        steps=args.steps or 600,
        batch_size=args.batch_size,
        lr=args.lr,
        val_every=args.val_every or 300,
        max_val_samples=160,
        text_variant=args.train_text,
    )
    qata_budget = Budget(
        steps=args.qata_steps,
        batch_size=args.batch_size,
        lr=args.lr,
        val_every=None,
        max_val_samples=None,
        text_variant=args.train_text,
    )
    return {"synth": (synth, synth_budget), "qata": (qata, qata_budget)}


def run_key(dataset: str, method_id: str, seed: int) -> str:
    return f"{dataset}__{method_id}__s{seed}"


def make_spec(method: Method, data: DataSpec, budget: Budget, seed: int) -> RunSpec:
    variants = TEXT_VARIANTS if method.text else ("full",)
    return RunSpec(
        run_key(data.name, method.id, seed),
        method.model,
        dict(method.overrides),
        data,
        budget,
        seed,
        variants,
        extra={"method": method.id},
    )


def best_text_baseline(results: dict[str, dict], dataset: str = "synth", seed: int = 0) -> str | None:
    """The text baseline with the highest full-text Dice at ``seed`` (None before any has finished)."""
    scored = {
        method_id: results[key]["metrics"]["full"]["dice"]
        for method_id in TEXT_BASELINES
        if (key := run_key(dataset, method_id, seed)) in results
    }
    return max(scored, key=scored.get) if scored else None


# ---------------------------------------------------------------- report


def _row_metric(result: dict | None, variant: str) -> tuple[float | None, float | None]:
    if result is None:
        return None, None
    metrics = result["metrics"].get(variant) or result["metrics"]["full"]
    return metrics["dice"], metrics["miou"]


def table2(results: dict[str, dict], seed: int = 0, datasets: Sequence[str] = ("synth", "qata")) -> str:
    """Markdown laid out like Table 2: one row per (method, text variant), our numbers then the paper's."""
    rows = []
    for method in METHODS:
        variants = [("full", "100%", method.paper)]
        if method.id == "lsms-nano":
            variants = [
                ("quarter", "25%", "LSMS (1/4)"),
                ("half", "50%", "LSMS (1/2)"),
                ("full", "100%", "LSMS"),
            ]
        for variant, text_share, paper_key in variants:
            found = [results.get(run_key(d, method.id, seed)) for d in datasets]
            if not any(found):
                continue
            reference = next(r for r in found if r)
            label = (
                method.label if variant == "full" else method.label.replace("LSMS", f"LSMS ({text_share})", 1)
            )
            row = [
                label,
                text_share if method.text else "no",
                f"{reference['complexity_224']['params_m']:.2f}",
                f"{reference['complexity_224']['gmacs']:.2f}",
            ]
            for result in found:
                row += [pct(value) for value in _row_metric(result, variant)]
            paper = PAPER_TABLE2.get(paper_key or "")
            for dataset in datasets:
                row += [f"{v:.2f}" for v in getattr(paper, PAPER_COLUMN[dataset])] if paper else ["–", "–"]
            row.append(f"{paper.params_m} / {paper.gflops}" if paper else "–")
            rows.append(row)
    headers = ["Method (ours, CPU-sized)", "Text", "Params (M)", "GMACs @224"]
    names = {"synth": "Synth", "qata": "QaTa val"}
    for dataset in datasets:
        headers += [f"{names[dataset]} Dice", f"{names[dataset]} mIoU"]
    paper_names = {"synth": "paper RefHL", "qata": "paper QaTa"}
    for dataset in datasets:
        headers += [f"{paper_names[dataset]} Dice", f"{paper_names[dataset]} mIoU"]
    headers.append("paper Params (M) / Flops (G)")
    return markdown_table(headers, rows)


def text_controls(
    results: dict[str, dict], seed: int = 0, datasets: Sequence[str] = ("synth", "qata")
) -> str:
    """Every text model under every text variant: how much of its Dice the text carries, and how often it
    segments another lesion of the slice than the referred one (synthetic data; "–" for runs before the
    rate existed)."""
    rows = []
    for method in METHODS:
        if not method.text:
            continue
        for dataset in datasets:
            result = results.get(run_key(dataset, method.id, seed))
            if result is None:
                continue
            dice, wrong = (
                [pct(result["metrics"].get(v, {}).get(key)) for v in TEXT_VARIANTS]
                for key in ("dice", "wrong_lesion")
            )
            full, shuffled = (result["metrics"].get(v, {}).get("dice") for v in ("full", "shuffled"))
            gap = f"{100 * (full - shuffled):+.2f}" if full is not None and shuffled is not None else "–"
            rows.append([method.label, dataset, *dice, gap, *wrong])
    headers = [
        "Method",
        "Dataset",
        *[f"Dice {v}" for v in TEXT_VARIANTS],
        "full − shuffled (points)",
        *[f"wrong lesion {v}" for v in TEXT_VARIANTS],
    ]
    return markdown_table(headers, rows)


def headline(results: dict[str, dict], dataset: str = "synth") -> str:
    """LSMS with text vs the text baselines vs LSMS text-free over every seed found (mean ± std), and
    LSMS's lead over each row on the seeds both share (paired, so seed-to-seed luck cancels)."""

    def metrics_by_seed(method_id: str, variant: str) -> dict[int, dict]:
        found = (r for r in results.values() if r.get("method") == method_id and r["data"]["name"] == dataset)
        return {
            r["seed"]: r["metrics"][variant]
            for r in sorted(found, key=lambda r: r["seed"])
            if variant in r["metrics"]
        }

    lsms = {seed: m["dice"] for seed, m in metrics_by_seed("lsms-nano", "full").items()}
    rows = []
    for method_id, variant in [
        ("lsms-nano", "full"),
        *((baseline, "full") for baseline in TEXT_BASELINES),
        ("lsms-nano", "shuffled"),
        ("lsms-nano-textfree", "full"),
    ]:
        metrics = metrics_by_seed(method_id, variant)
        if not metrics:
            continue
        dice = [m["dice"] for m in metrics.values()]
        (dm, ds), (im, is_) = mean_std(dice), mean_std([m["miou"] for m in metrics.values()])
        shared = [seed for seed in metrics if seed in lsms]
        lead = "–"
        if shared and (method_id, variant) != ("lsms-nano", "full"):
            mean, std = mean_std([lsms[seed] - metrics[seed]["dice"] for seed in shared])
            lead = f"{100 * mean:+.2f} ± {100 * std:.2f} ({len(shared)})"
        label = METHODS_BY_ID[method_id].label + (" with shuffled text" if variant == "shuffled" else "")
        rows.append(
            [
                label,
                len(metrics),
                str(list(metrics)),
                f"{100 * dm:.2f} ± {100 * ds:.2f}",
                f"{100 * im:.2f} ± {100 * is_:.2f}",
                " / ".join(pct(v) for v in dice),
                lead,
            ]
        )
    headers = ["Method", "runs", "seeds", "Dice mean ± std", "mIoU mean ± std", "Dice per seed"]
    return markdown_table([*headers, "LSMS lead, paired (seeds)"], rows)


def plots(results: dict[str, dict], out_dir: Path, seed: int = 0) -> list[Path]:
    """Dice per method (bar) and Dice against parameters / GMACs (scatter), one set per dataset."""
    from lsms.viz.plots import plot_bar, plot_scatter

    written = []
    for dataset in ("synth", "qata"):
        found = {m.id: results[k] for m in METHODS if (k := run_key(dataset, m.id, seed)) in results}
        if not found:
            continue
        dice = {m: 100 * r["metrics"]["full"]["dice"] for m, r in found.items()}
        title = f"{dataset}, seed {seed}, full text"
        written.append(plot_bar(dice, out_dir / f"{dataset}_dice.png", "Dice (%)", title))
        for axis, xlabel in (("params_m", "visual parameters (M)"), ("gmacs", "visual GMACs at 224x224")):
            points = {m: (r["complexity_224"][axis], dice[m]) for m, r in found.items()}
            written.append(
                plot_scatter(points, out_dir / f"{dataset}_dice_vs_{axis}.png", xlabel, "Dice (%)", title)
            )
    return written


def report(results: dict[str, dict], out_dir: Path | None = None) -> str:
    """The whole markdown report (tables; plots too when ``out_dir`` is given)."""
    datasets = [d for d in ("synth", "qata") if any(r["data"]["name"] == d for r in results.values())]
    if not datasets:
        return "no finished runs\n"
    parts = [
        f"## Table 2 at CPU scale (seed 0)\n\n{table2(results, 0, datasets)}",
        f"## Text controls (seed 0)\n\n{text_controls(results, 0, datasets)}",
    ]
    names = {"synth": "synthetic benchmark", "qata": "QaTa-COV19"}
    parts += [f"## Headline ({names[d]}, all seeds)\n\n{headline(results, d)}" for d in datasets]
    for dataset in datasets:
        subset = [r for r in results.values() if r["data"]["name"] == dataset]
        parts.append(f"{dataset}: {budget_line(subset)}")
    if out_dir is not None:
        parts.append("Plots: " + ", ".join(str(p.name) for p in plots(results, out_dir)))
    return "\n\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_args(parser)
    parser.add_argument("--datasets", nargs="*", default=[], choices=["synth", "qata"])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    parser.add_argument("--methods", nargs="*", default=None, help=f"subset of {list(METHODS_BY_ID)}")
    parser.add_argument(
        "--headline-seeds",
        nargs="*",
        type=int,
        default=[],
        help="run lsms-nano, its text-free mode and the best text baseline (seed 0) on synth",
    )
    parser.add_argument("--qata-dir", type=Path, default=QATA_DIR)
    parser.add_argument("--qata-steps", type=int, default=150)
    parser.add_argument(
        "--train-text",
        default="mixed",
        choices=["full", "mixed"],
        help="training expressions of every text model (mixed: full, half or quarter per sample)",
    )
    args = parser.parse_args(argv)
    results_dir = args.results_dir or DEFAULT_RESULTS
    if not args.report_only:
        if "synth" in args.datasets or args.headline_seeds:
            ensure_synth(args.synth_dir, args.synth_cases)
        specs = dataset_specs(args)
        queue = []
        for dataset in args.datasets:
            data, budget = specs[dataset]
            for seed in args.seeds:
                queue += [
                    make_spec(METHODS_BY_ID[m], data, budget, seed) for m in (args.methods or METHODS_BY_ID)
                ]
        if args.headline_seeds:
            baseline = best_text_baseline(load_results(results_dir))
            if baseline is None:
                parser.error("--headline-seeds: run the text baselines on synth with seed 0 first")
            data, budget = specs["synth"]
            for seed in args.headline_seeds:
                queue += [make_spec(METHODS_BY_ID[m], data, budget, seed) for m in (*HEADLINE, baseline)]
        run_all(queue, results_dir, args.runs_dir, args.threads)
    text = report(load_results(results_dir), results_dir)
    print(text)
    if args.out_md:
        atomic_write_text(args.out_md, text)
    return 0


__all__ = ["METHODS", "best_text_baseline", "headline", "main", "make_spec", "table2"]

if __name__ == "__main__":
    raise SystemExit(main())
