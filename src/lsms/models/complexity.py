"""Parameter and FLOP counts, as ``lsms info`` prints them.

FLOPs are counted with ``torch.utils.flop_counter`` and reported as multiply-accumulates (MACs): one
multiply-add counts as 1, the convention of the tools behind the paper's "8.91 GFlops" (mmcv, fvcore).
Element-wise operations, normalisation and interpolation are not counted.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

# A QaTa-COV19-style sentence (about 20 tokens) for FLOPs of text models.
REFERENCE_SENTENCE = (
    "Bilateral pulmonary infection, two infected areas, middle left lung and middle right lung."
)


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
    called = {
        name.removeprefix(root + "."): sum(counts.values()) // 2
        for name, counts in counter.get_flop_counts().items()
        if name.startswith(root + ".")
    }

    def macs_of(path: str, module: nn.Module) -> int:
        # A ModuleList is never called: its cost is that of its items.
        if isinstance(module, nn.ModuleList):
            return sum(macs_of(f"{path}.{i}", item) for i, item in enumerate(module))
        return called.get(path, 0)

    by_module: dict[str, int] = {}
    for name, child in model.named_children():
        if isinstance(child, nn.ModuleList):
            by_module[f"{name}.*"] = macs_of(name, child)
            for index, item in enumerate(child):
                by_module[f"{name}.{index}"] = macs_of(f"{name}.{index}", item)
        else:
            by_module[name] = macs_of(name, child)
    total = counter.get_total_flops() // 2
    return {"total": total, "text_encoder": by_module.get("text_encoder", 0), "by_module": by_module}


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
