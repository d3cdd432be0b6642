"""Load SegNeXt MSCAN ImageNet checkpoints into LSMS (the paper initialises SVLA's Visual Knowledge
Branch this way, sec. 4.3).

Both key spellings are understood: the original SegNeXt release (``mlp.dwconv.dwconv``) and
mmsegmentation 1.x (``mlp.dwconv``), with or without ``backbone.`` / ``module.`` prefixes and a
``state_dict`` wrapper. ``scope="visual-knowledge"`` maps only the 5x5 and strip convolutions (conv0,
convK_1, convK_2); ``scope="all"`` also maps the stem, down-sampling, feed-forward, norms and conv3.
MSCAN's attention projections (proj_1, proj_2), stage LayerNorms and classifier have no counterpart
and are reported as skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from lsms.errors import CheckpointError

SCOPES = ("visual-knowledge", "all")
_BLOCK = re.compile(r"^block(\d)\.(\d+)\.(.+)$")
_PATCH_EMBED = re.compile(r"^patch_embed(\d)\.(.+)$")
_STRIP_CONV = re.compile(r"^conv(\d)_([12])\.(weight|bias)$")


@dataclass
class ConversionReport:
    """Which checkpoint keys were loaded (as ``source -> target``), skipped, and which targets stayed missing."""

    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"loaded {len(self.loaded)}, skipped {len(self.skipped)}, missing in scope {len(self.missing)}"


def _strip_prefixes(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for wrapper in ("state_dict", "model"):
        if isinstance(state_dict.get(wrapper), dict):
            state_dict = state_dict[wrapper]
    stripped = {}
    for key, value in state_dict.items():
        for prefix in ("module.", "backbone."):
            key = key.removeprefix(prefix)
        stripped[key] = value
    return stripped


def _map_block_key(
    rest: str, unit_index_by_kernel: dict[int, int], source: torch.Tensor
) -> tuple[str | None, bool]:
    """Block-relative MSCAN key -> (LSMS block-relative key or None, belongs to the visual-knowledge scope)."""
    gating = rest.removeprefix("attn.spatial_gating_unit.")
    if gating != rest:
        if gating.startswith("conv0."):
            return "attention.pre_conv." + gating.removeprefix("conv0."), True
        strip = _STRIP_CONV.match(gating)
        if strip:
            kernel = max(source.shape[-2:]) if source.ndim == 4 else None
            unit = unit_index_by_kernel.get(kernel) if kernel else None
            if unit is None and strip.group(3) == "bias":
                # biases carry no kernel size: follow the MSCAN order 7, 11, 21
                unit = unit_index_by_kernel.get((7, 11, 21)[int(strip.group(1))])
            if unit is None:
                return None, True
            part = "conv_row" if strip.group(2) == "1" else "conv_col"
            return f"attention.conv_units.{unit}.{part}.{strip.group(3)}", True
        if gating.startswith("conv3."):
            return "attention.mix." + gating.removeprefix("conv3."), False
        return None, False
    replacements = {
        "mlp.fc1.": "feed_forward.expand.",
        "mlp.dwconv.dwconv.": "feed_forward.depthwise.",
        "mlp.dwconv.": "feed_forward.depthwise.",
        "mlp.fc2.": "feed_forward.project.",
        "norm1.": "norm_attention.",
        "norm2.": "norm_feed_forward.",
    }
    for old, new in replacements.items():
        if rest.startswith(old):
            return new + rest.removeprefix(old), False
    if rest in ("layer_scale_1", "layer_scale_2"):
        return {"layer_scale_1": "layer_scale_attention", "layer_scale_2": "layer_scale_feed_forward"}[
            rest
        ], False
    return None, False


def checkpoint_filter_fn(
    state_dict: dict[str, torch.Tensor], model: nn.Module, scope: str = "visual-knowledge"
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Translate an MSCAN state dict into LSMS keys and shapes (timm's ``checkpoint_filter_fn`` role)."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    target = model.state_dict()
    unit_index_by_kernel = {k: i for i, k in enumerate(model.config.kernel_sizes)}
    report = ConversionReport()
    converted: dict[str, torch.Tensor] = {}
    for key, value in _strip_prefixes(state_dict).items():
        new_key, in_vkb = None, False
        block = _BLOCK.match(key)
        patch = _PATCH_EMBED.match(key)
        if block:
            stage, index, rest = int(block.group(1)) - 1, int(block.group(2)), block.group(3)
            relative, in_vkb = _map_block_key(rest, unit_index_by_kernel, value)
            new_key = f"stages.{stage}.{index}.{relative}" if relative else None
        elif patch:
            stage, rest = int(patch.group(1)), patch.group(2)
            new_key = (
                "stem.layers." + rest.removeprefix("proj.")
                if stage == 1
                else f"downsamples.{stage - 2}.{rest.replace('proj.', 'conv.')}"
            )
        if new_key is None or new_key not in target or (scope == "visual-knowledge" and not in_vkb):
            report.skipped.append(key)
            continue
        expected = target[new_key].shape
        if new_key.startswith("stem.layers.0.weight") and value.ndim == 4 and value.shape[1] != expected[1]:
            value = (
                value.sum(dim=1, keepdim=True).repeat(1, expected[1], 1, 1) / expected[1]
            )  # RGB -> in_chans
        if new_key.endswith(("layer_scale_attention", "layer_scale_feed_forward")):
            value = value.reshape(expected)
        if value.shape != expected:
            report.skipped.append(f"{key} (shape {tuple(value.shape)} != {tuple(expected)})")
            continue
        converted[new_key] = value
        report.loaded.append(f"{key} -> {new_key}")
    in_scope = [k for k in target if (scope == "all" or ".attention.pre_conv." in k or ".conv_units." in k)]
    in_scope = [
        k for k in in_scope if not k.startswith(("text_encoder.", "decoder.")) and "language_branch" not in k
    ]
    report.missing = [k for k in in_scope if k not in converted and not k.endswith("num_batches_tracked")]
    return converted, report


def load_segnext_weights(
    model: nn.Module, path: str | Path, scope: str = "visual-knowledge"
) -> ConversionReport:
    """Load an MSCAN checkpoint (.pth via the safe ``weights_only`` unpickler, or .safetensors) into ``model``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: SegNeXt checkpoint not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state_dict = load_file(str(path))
        else:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any reader failure is a bad file for the user
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(error).__name__}: {error})") from None
    converted, report = checkpoint_filter_fn(state_dict, model, scope)
    if not converted:
        raise CheckpointError(f"{path}: no MSCAN weights matched this model ({report.summary()})")
    model.load_state_dict(converted, strict=False)
    return report
