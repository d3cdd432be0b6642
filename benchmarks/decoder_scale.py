"""Where should the Full-Scale Decoder align its features: F1 (1/4, the paper's text) or F2 (1/8, the
paper's cost figures)? Accuracy of the default preset both ways at the same optimiser-step budget and
at the same wall-clock budget.

- equal steps: ``lsms`` with ``decoder_align_stage`` 1 and 2, the same steps, seeds and data;
- equal wall clock: F2 gets ``steps x t(F1) / t(F2)`` steps, the ratio of their training-step times
  measured here first in interleaved rounds (same process, batch and image size, default precision).

Synthetic benchmark (128 px, test split, checkpoint selected on val) and QaTa-COV19 (224 px, trained on
Train_Folder with final weights, evaluated on the first ``--max-eval`` images of Val_Folder, as
benchmarks/compare.py does). One JSON per run in benchmarks/results/decoder_scale/ (resumable, as
every benchmark built on common.py), and a report:

    python benchmarks/decoder_scale.py --datasets synth --seeds 0 1 2
    python benchmarks/decoder_scale.py --datasets qata --seeds 0
    python benchmarks/decoder_scale.py --report-only --out-md benchmarks/results/decoder_scale/report.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from common import (
    QATA_DIR,
    RESULTS_ROOT,
    Budget,
    DataSpec,
    RunSpec,
    add_common_args,
    ensure_synth,
    load_results,
    machine_info,
    markdown_table,
    mean_std,
    now_utc,
    pct,
    run_all,
    step_closure,
    write_json,
)

from lsms.atomic import atomic_write_text

ALIGN_STAGES = (1, 2)


def step_time_ratio(image_size: int, batch_size: int, rounds: int = 4, threads: int = 1) -> dict:
    """Median over interleaved rounds of t(F1 step) / t(F2 step): one AdamW step each, same weights."""
    import torch

    import lsms
    from lsms.runtime import autocast_dtype, set_channels_last

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dtype = autocast_dtype("auto", torch.device("cpu"))
    models = {stage: lsms.create_model("lsms", decoder_align_stage=stage) for stage in ALIGN_STAGES}
    models[2].load_state_dict(models[1].state_dict())
    steps = {
        stage: step_closure(set_channels_last(model), "train", batch_size, image_size, dtype)
        for stage, model in models.items()
    }

    def step(stage: int) -> float:
        start = time.perf_counter()
        steps[stage]()
        return time.perf_counter() - start

    for stage in ALIGN_STAGES:  # warm-up
        step(stage)
    ratios, seconds = [], {stage: [] for stage in ALIGN_STAGES}
    for _ in range(rounds):
        timed = {stage: step(stage) for stage in ALIGN_STAGES}
        for stage, value in timed.items():
            seconds[stage].append(value)
        ratios.append(timed[1] / timed[2])
    return {
        "image_size": image_size,
        "batch_size": batch_size,
        "rounds": rounds,
        "ratio_f1_over_f2": statistics.median(ratios),
        "seconds_per_step": {f"F{s}": statistics.median(v) for s, v in seconds.items()},
        "precision": "bf16" if dtype is not None else "fp32",
        "date": now_utc(),
        "machine": machine_info(),
    }


def dataset_spec(name: str, args: argparse.Namespace) -> tuple[DataSpec, Budget]:
    if name == "synth":
        data = DataSpec("synth", str(args.synth_dir / "manifest.csv"), 128, max_eval_samples=args.max_eval)
        return data, Budget(steps=args.steps or 400, batch_size=args.batch_size, lr=args.lr, val_every=200)
    data = DataSpec(
        "qata",
        str(args.qata_dir),
        224,
        val_split=None,
        eval_split="val",
        max_eval_samples=args.max_eval or 400,
    )
    budget = Budget(
        steps=args.qata_steps, batch_size=args.batch_size, lr=args.lr, val_every=None, max_val_samples=None
    )
    return data, budget


def timing(results_dir: Path, data: DataSpec, batch_size: int, threads: int) -> dict:
    """The measured F1/F2 step-time ratio of ``data``'s image size, measured once and kept as JSON."""
    path = results_dir / "timing" / f"{data.name}_{data.image_size}px_b{batch_size}.json"
    if not path.is_file():
        write_json(path, step_time_ratio(data.image_size, batch_size, threads=threads))
    return json.loads(path.read_text())


def specs(args: argparse.Namespace, results_dir: Path) -> list[RunSpec]:
    out = []
    for name in args.datasets:
        data, budget = dataset_spec(name, args)
        ratio = timing(results_dir, data, budget.batch_size, args.threads)["ratio_f1_over_f2"]
        wall_budget = dataclasses.replace(budget, steps=round(budget.steps * ratio))
        for seed in args.seeds:
            for stage in ALIGN_STAGES:
                out.append(
                    RunSpec(
                        key=f"{name}__F{stage}__steps{budget.steps}__s{seed}",
                        model="lsms",
                        overrides={"decoder_align_stage": stage},
                        data=data,
                        budget=budget,
                        seed=seed,
                        text_variants=("full", "shuffled"),
                        extra={"dataset": name, "align_stage": stage, "protocol": "equal steps"},
                    )
                )
            out.append(
                RunSpec(
                    key=f"{name}__F2__steps{wall_budget.steps}__s{seed}",
                    model="lsms",
                    overrides={"decoder_align_stage": 2},
                    data=data,
                    budget=wall_budget,
                    seed=seed,
                    text_variants=("full", "shuffled"),
                    extra={
                        "dataset": name,
                        "align_stage": 2,
                        "protocol": f"equal wall clock with F1 at {budget.steps} steps",
                        "step_time_ratio": ratio,
                    },
                )
            )
    return out


def report(results: dict[str, dict]) -> str:
    """Dice (full / shuffled text) per dataset, decoder alignment and protocol, mean +- std over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for result in results.values():
        key = (result["dataset"], result["align_stage"], result["budget"]["steps"], result["protocol"])
        groups.setdefault(key, []).append(result)
    rows = []
    for (dataset, stage, steps, protocol), runs in sorted(groups.items()):
        full = [r["metrics"]["full"]["dice"] for r in runs]
        shuffled = [r["metrics"]["shuffled"]["dice"] for r in runs if "shuffled" in r["metrics"]]
        mean, std = mean_std(full)
        hours = statistics.fmean(r["train_seconds"] for r in runs if r.get("train_seconds")) / 3600
        rows.append(
            [
                dataset,
                f"F{stage}",
                protocol,
                steps,
                len(runs),
                f"{pct(mean)} +- {pct(std)}",
                pct(statistics.fmean(shuffled)) if shuffled else "-",
                f"{runs[0]['complexity_224']['gmacs']:.2f}",
                f"{hours:.2f}",
            ]
        )
    headers = [
        "data",
        "FSD aligned at",
        "protocol",
        "steps",
        "seeds",
        "Dice full text (%)",
        "Dice shuffled (%)",
        "GMACs 224",
        "train hours (mean)",
    ]
    return markdown_table(headers, rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_args(parser)
    parser.add_argument("--datasets", nargs="+", choices=["synth", "qata"], default=["synth"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--qata-steps", type=int, default=200)
    parser.add_argument("--qata-dir", type=Path, default=QATA_DIR)
    args = parser.parse_args(argv)
    results_dir = args.results_dir or RESULTS_ROOT / "decoder_scale"
    if not args.report_only:
        if "synth" in args.datasets:
            ensure_synth(args.synth_dir, args.synth_cases)
        run_all(specs(args, results_dir), results_dir, args.runs_dir, args.threads)
    text = report(load_results(results_dir))
    print(text)
    if args.out_md:
        atomic_write_text(args.out_md, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
