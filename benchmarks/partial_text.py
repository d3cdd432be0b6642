"""Why partial expressions fail: Dice and wrong-lesion rate by the attributes a partial expression kept.

    python benchmarks/partial_text.py --model runs/demo/run/best --data runs/demo/data --split test \\
        --out benchmarks/results/partial_text

The model is evaluated on every row of the split with its full, half and quarter expression
(``lsms.evaluation.evaluate`` with the data's lesion map, so each row gets a ``wrong_lesion`` flag).
The attributes a partial expression kept are read back from its words
(``lsms.data.synth.expressions.mentioned_attributes``; ``relation`` when it adds one, "The larger ...");
``location`` always names the Couinaud segment and its lobe together. Tables, in --out as
partial_text.md and partial_text.json:

- per text variant: Dice, wrong-lesion rate, and the failed rows (Dice < 0.5) split into those whose
  prediction lies mostly on another lesion and those on the referred one (misdrawn or missed);
- per attribute kept and per set of attributes kept: Dice and wrong-lesion rate of the same rows with
  the full expression and with the partial one (paired: the same images, only the words differ).

Needs a synthetic data folder (``lsms data synth``, ``lsms demo``): its lesions.csv gives the lesions
of each slice.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, pct  # noqa: E402 - the scripts run from any directory

from lsms.data.synth.expressions import ATTRIBUTES, mentioned_attributes, mentioned_relation  # noqa: E402

VARIANTS = ("full", "half", "quarter")
PARTIAL = ("half", "quarter")
KEPT = (*ATTRIBUTES, "relation")
FAILED_DICE = 0.5  # a row "fails" below this Dice


def kept_attributes(text: str) -> tuple[str, ...]:
    """The attributes of :data:`KEPT` that a synthetic expression mentions."""
    return mentioned_attributes(text) + (("relation",) if mentioned_relation(text) else ())


def _mean(rows: Sequence[dict], key: str) -> float:
    return float(np.mean([row[key] for row in rows]))


def variant_summary(rows: Sequence[dict]) -> dict[str, float | int]:
    """Dice, wrong-lesion rate and the failed rows' split (shares of all rows) of one variant's rows."""
    failed = [row for row in rows if row["dice"] < FAILED_DICE]
    return {
        "n": len(rows),
        "dice": _mean(rows, "dice"),
        "wrong_lesion": _mean(rows, "wrong_lesion"),
        "failed": len(failed) / len(rows),
        "failed_other_lesion": sum(row["wrong_lesion"] for row in failed) / len(rows),
        "failed_referred_lesion": sum(not row["wrong_lesion"] for row in failed) / len(rows),
    }


def _paired(full: Sequence[dict], partial: Sequence[dict], keep: Callable[[dict], bool]) -> dict | None:
    """Full vs partial Dice and wrong-lesion rate over the rows whose partial row passes ``keep``."""
    pairs = [(f, p) for f, p in zip(full, partial, strict=True) if keep(p)]
    if not pairs:
        return None
    chosen_full, chosen_partial = zip(*pairs, strict=True)
    return {
        "n": len(pairs),
        "dice_full": _mean(chosen_full, "dice"),
        "dice_partial": _mean(chosen_partial, "dice"),
        "wrong_lesion_full": _mean(chosen_full, "wrong_lesion"),
        "wrong_lesion_partial": _mean(chosen_partial, "wrong_lesion"),
    }


def breakdown(rows: dict[str, Sequence[dict]]) -> dict:
    """The report of per-row evaluation results, one list per variant of :data:`VARIANTS` in one row
    order (``evaluate(...).per_sample`` with a lesion map); each partial row gets its ``kept`` list."""
    for variant in PARTIAL:
        for row in rows[variant]:
            row["kept"] = list(kept_attributes(row["text"]))
    by_attribute, by_set = [], []
    for variant in PARTIAL:
        full, partial = rows["full"], rows[variant]
        for attribute in KEPT:
            stats = _paired(full, partial, lambda row, a=attribute: a in row["kept"])
            if stats is not None:
                by_attribute.append({"variant": variant, "kept": attribute, **stats})
        found = []
        for kept in sorted({"+".join(row["kept"]) for row in partial}):
            stats = _paired(full, partial, lambda row, k=kept: "+".join(row["kept"]) == k)
            found.append({"variant": variant, "kept": kept, **stats})
        by_set += sorted(found, key=lambda entry: -entry["n"])
    return {
        "variants": {variant: variant_summary(rows[variant]) for variant in VARIANTS},
        "by_attribute": by_attribute,
        "by_kept_set": by_set,
        "rows": {variant: list(rows[variant]) for variant in VARIANTS},
    }


# (header, key) of the markdown columns
_VARIANT_COLUMNS = (
    ("Dice (%)", "dice"),
    ("wrong lesion (%)", "wrong_lesion"),
    ("failed (%)", "failed"),
    ("failed: other lesion (%)", "failed_other_lesion"),
    ("failed: referred lesion (%)", "failed_referred_lesion"),
)
_PAIRED_COLUMNS = (
    ("Dice full (%)", "dice_full"),
    ("Dice partial (%)", "dice_partial"),
    ("wrong lesion full (%)", "wrong_lesion_full"),
    ("wrong lesion partial (%)", "wrong_lesion_partial"),
)


def markdown(report: dict, min_n: int = 1) -> str:
    """The three tables of ``report`` (sets of attributes kept by fewer than ``min_n`` rows left out)."""
    variants = markdown_table(
        ["text", "n", *(header for header, _ in _VARIANT_COLUMNS)],
        [
            [variant, stats["n"], *(pct(stats[key]) for _, key in _VARIANT_COLUMNS)]
            for variant, stats in report["variants"].items()
        ],
    )
    headers = ["text", "kept", "n", *(header for header, _ in _PAIRED_COLUMNS), "Δ Dice (points)"]

    def paired_table(entries: list[dict]) -> str:
        return markdown_table(
            headers,
            [
                [
                    e["variant"],
                    e["kept"],
                    e["n"],
                    *(pct(e[key]) for _, key in _PAIRED_COLUMNS),
                    f"{100 * (e['dice_partial'] - e['dice_full']):+.2f}",
                ]
                for e in entries
                if e["n"] >= min_n
            ],
        )

    return (
        f"## Per text variant\n\nFailed: Dice < {FAILED_DICE}, split by where the prediction lies mostly "
        f"(shares of all rows).\n\n{variants}\n\n"
        f"## Per attribute kept (full vs partial expression on the same rows)\n\n"
        f"{paired_table(report['by_attribute'])}\n\n"
        f"## Per set of attributes kept (n >= {min_n})\n\n{paired_table(report['by_kept_set'])}\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, required=True, help="checkpoint folder (save_pretrained)")
    parser.add_argument("--data", type=Path, required=True, help="synthetic data folder or its manifest.csv")
    parser.add_argument("--split", default="test", help="split to evaluate, or all (default: test)")
    parser.add_argument("--out", type=Path, required=True, help="folder for partial_text.md / .json")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="default: the checkpoint's")
    parser.add_argument("--max-samples", type=int, default=None, help="the first N rows of the split only")
    parser.add_argument("--min-n", type=int, default=5, help="smallest set of attributes kept to list")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    from lsms import from_pretrained
    from lsms.data.loading import load_samples
    from lsms.evaluation.evaluate import evaluate
    from lsms.evaluation.referring import load_lesion_map
    from lsms.models.pretrained import read_checkpoint_config
    from lsms.predictor import Predictor

    manifest = args.data / "manifest.csv" if args.data.is_dir() else args.data
    samples = load_samples(manifest, None if args.split == "all" else args.split)[: args.max_samples]
    lesions = load_lesion_map(manifest, samples)
    if lesions is None:
        parser.error(f"{manifest.parent}: no lesions.csv listing every row (a folder of `lsms data synth`)")
    size = args.size or read_checkpoint_config(args.model)["preprocess"]["image_size"]
    predictor = Predictor(
        from_pretrained(args.model, device=args.device), image_size=tuple(size), batch_size=args.batch_size
    )
    rows = {
        variant: evaluate(
            predictor,
            samples,
            text_variant=variant,
            progress=False,
            lesions=lesions,
        ).per_sample
        for variant in VARIANTS
    }
    report = breakdown(rows)
    report["settings"] = {
        "model": str(args.model.resolve()),
        "data": str(manifest.resolve()),
        "split": args.split,
        "image_size": list(size),
        "failed_dice": FAILED_DICE,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    text = markdown(report, args.min_n)
    (args.out / "partial_text.md").write_text(text, encoding="utf-8")
    (args.out / "partial_text.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(text)
    print(f"wrote {args.out / 'partial_text.md'} and partial_text.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
