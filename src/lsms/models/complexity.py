"""Parameter and FLOP counts, as ``lsms info`` prints them.

FLOPs are counted with ``torch.utils.flop_counter`` and reported as multiply-accumulates (MACs): one
multiply-add counts as 1, the convention of the tools behind the paper's "8.91 GFlops" (mmcv, fvcore).
Element-wise operations, normalisation and interpolation are not counted.
"""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

# A QaTa-COV19-style sentence (about 20 tokens) for FLOPs of text models.
REFERENCE_SENTENCE = "Bilateral pulmonary infection, two infected areas, middle left lung and middle right lung."


def count_parameters(model: nn.Module) -> dict[str, int]:
    """``visual`` (everything but the text encoder), ``text_encoder`` and ``total`` parameter counts."""
    text = sum(p.numel() for n, p in model.named_parameters() if n.startswith("text_encoder."))
    total = sum(p.numel() for p in model.parameters())
    return {"visual": total - text, "text_encoder": text, "total": total}


def count_macs(model: nn.Module, size: tuple[int, int], sentence: str = REFERENCE_SENTENCE) -> dict:
    """MACs of one forward pass at batch 1 and ``size`` = (H, W).

    Returns ``total``, ``text_encoder`` and ``by_module`` (MACs of each direct child and of each stage).
    """
    model = model.eval()
    in_chans = getattr(model.config, "in_chans", 1)
    image = torch.zeros(1, in_chans, *size)
    text_inputs = model.tokenize([sentence]) if getattr(model, "uses_text", False) else {}
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(image, **text_inputs)
    root = type(model).__name__
    by_module: dict[str, int] = defaultdict(int)
    for name, counts in counter.get_flop_counts().items():
        parts = name.split(".")
        if parts[0] != root or len(parts) < 2:
            continue
        macs = sum(counts.values()) // 2
        # direct children, items of module lists (downsamples.0), and blocks of nested lists summed per
        # list item (stages.0 = its blocks): a ModuleList itself is never called, so it has no entry.
        if len(parts) == 2 or (len(parts) == 3 and parts[2].isdigit()):
            by_module[".".join(parts[1:])] += macs
        elif len(parts) == 4 and parts[2].isdigit() and parts[3].isdigit():
            by_module[".".join(parts[1:3])] += macs
    # ModuleLists are never called: their totals are the sums of their items
    for key in [k for k in by_module if "." in k]:
        container = key.split(".")[0]
        by_module[container + ".*"] += by_module[key]
    total = counter.get_total_flops() // 2
    return {"total": total, "text_encoder": by_module.get("text_encoder", 0), "by_module": dict(by_module)}


def module_parameters(model: nn.Module) -> dict[str, int]:
    """Parameters of each direct child (and each stage of a ``stages`` list)."""
    counts: dict[str, int] = {}
    for name, child in model.named_children():
        counts[name] = sum(p.numel() for p in child.parameters())
        if isinstance(child, nn.ModuleList):
            counts[f"{name}.*"] = counts.pop(name)
            for index, item in enumerate(child):
                counts[f"{name}.{index}"] = sum(p.numel() for p in item.parameters())
    return counts
