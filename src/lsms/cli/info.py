"""``lsms info``: parameters and FLOPs of a model preset or a checkpoint, with a per-module breakdown."""

from __future__ import annotations

import argparse
import dataclasses
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="parameters and FLOPs of a model",
        description="Parameters (visual part, text encoder, total) and multiply-accumulates at a given "
        "input size. One multiply-add counts as 1 FLOP (MACs), as in the paper's tools.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", default="lsms", help="registered model name (see --list); default: lsms")
    source.add_argument("--checkpoint", help="a checkpoint folder written by save_pretrained / lsms train")
    source.add_argument("--list", action="store_true", help="list the registered model names and exit")
    parser.add_argument("--size", nargs=2, type=int, default=[224, 224], metavar=("H", "W"))
    parser.add_argument(
        "--text-encoder",
        help="text encoder name or local folder (overrides the preset's; ignored with --checkpoint)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def _millions(count: int) -> str:
    return f"{count / 1e6:.2f}M"


def _giga(count: int) -> str:
    return f"{count / 1e9:.2f}G"


def run(args: argparse.Namespace) -> int:
    import lsms
    from lsms.models.complexity import count_macs, count_parameters, module_parameters
    from lsms.models.paper_table2 import paper_row

    if args.list:
        print("\n".join(lsms.list_models()))
        return 0
    if args.checkpoint:
        model, name = lsms.from_pretrained(args.checkpoint), args.checkpoint
    else:
        overrides = {"text_encoder": args.text_encoder} if args.text_encoder else {}
        model, name = lsms.create_model(args.model, **overrides), args.model
    size = (args.size[0], args.size[1])
    params = count_parameters(model)
    macs = count_macs(model, size)
    module_params = module_parameters(model)
    paper = paper_row(getattr(model, "architecture", ""), getattr(model, "uses_text", False))
    config = getattr(model, "config", None)
    align_stage = getattr(config, "decoder_align_stage", None) if getattr(config, "use_fsd", False) else None
    if args.json:
        print(
            json.dumps(
                {
                    "model": name,
                    "size": list(size),
                    "params": params,
                    "macs": macs,
                    "module_params": module_params,
                    "mac_convention": "1 multiply-add = 1",
                    "decoder_align_stage": align_stage,
                    "paper_table2": dataclasses.asdict(paper) if paper else None,
                },
                indent=2,
            )
        )
        return 0
    print(f"model {name} at {size[0]}x{size[1]} (FLOPs: one multiply-add counts as 1)")
    print(
        f"params: visual {_millions(params['visual'])}, text encoder {_millions(params['text_encoder'])}, "
        f"total {_millions(params['total'])}"
    )
    print(
        f"FLOPs: total {_giga(macs['total'])}, text encoder {_giga(macs['text_encoder'])}, "
        f"without text encoder {_giga(macs['total'] - macs['text_encoder'])}"
    )
    if align_stage is not None:
        print(
            f"decoder: Full-Scale Decoder aligned at F{align_stage} (1/{2 ** (align_stage + 1)} of the input; "
            "presets lsms: F2, lsms-f1: F1)"
        )
    if paper is not None:
        # LSMS's 8.91G is MACs; the baseline figures match 2 x MACs (docs/baselines.md)
        convention = "MACs, as above" if paper.method.startswith("LSMS") else "probably 2 x MACs"
        print(
            f"paper Table 2, {paper.method} (full-size network): params {paper.params_m}M, "
            f"Flops {paper.gflops}G ({convention}); Dice RefHL-Seg {paper.refhl[0]:.2f}, "
            f"QaTa-COV19 {paper.qata[0]:.2f}, MosMedData+ {paper.mosmed[0]:.2f}"
        )
    print("\n| module | params | FLOPs |\n|---|---:|---:|")
    for module in sorted(set(module_params) | set(macs["by_module"])):
        print(
            f"| {module} | {_millions(module_params.get(module, 0))} | {_giga(macs['by_module'].get(module, 0))} |"
        )
    return 0
