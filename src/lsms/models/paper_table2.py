"""Table 2 of the LSMS paper: the reference numbers that ``lsms info`` and benchmarks/compare.py print
beside ours.

The paper does not say how it counts FLOPs. LSMS's 8.91G matches one multiply-add counted as 1; LViT's
54.1G matches one multiply-add counted as 2 (docs/baselines.md), so the baseline rows are probably 2 x MACs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperRow:
    """One row: parameters (M), FLOPs (G) and (Dice, mIoU) in % on each dataset."""

    method: str
    text: str  # "no", "100%", "50%", "25%"
    params_m: float
    gflops: float
    refhl: tuple[float, float]
    qata: tuple[float, float]
    mosmed: tuple[float, float]


_ROWS = (
    PaperRow("U-Net", "no", 14.8, 50.3, (48.67, 37.89), (79.02, 69.46), (64.60, 50.73)),
    PaperRow("UNet++", "no", 74.5, 94.6, (51.84, 40.27), (79.62, 70.25), (71.75, 58.39)),
    PaperRow("AttUNet", "no", 34.9, 101.9, (50.67, 40.11), (79.31, 70.04), (66.34, 52.82)),
    PaperRow("nnUNet", "no", 19.1, 412.7, (51.63, 41.89), (80.42, 70.81), (72.59, 60.36)),
    PaperRow("TransUNet", "no", 105, 56.7, (52.33, 44.76), (78.63, 69.13), (71.24, 58.44)),
    PaperRow("Swin-Unet", "no", 82.3, 67.3, (51.34, 44.26), (78.07, 68.34), (63.29, 50.19)),
    PaperRow("UCTransNet", "no", 65.6, 63.2, (54.87, 44.38), (79.15, 69.60), (65.90, 52.69)),
    PaperRow("LViT (no text)", "no", 28.0, 54.0, (54.84, 44.65), (81.12, 71.37), (72.58, 60.40)),
    PaperRow("LSMS (no text)", "no", 8.78, 8.91, (58.75, 49.39), (82.14, 72.07), (73.14, 61.76)),
    PaperRow("ConVIRT", "100%", 35.2, 44.6, (61.37, 53.56), (79.72, 70.58), (72.06, 59.73)),
    PaperRow("TGANet", "100%", 19.8, 41.9, (63.28, 55.49), (79.87, 70.75), (71.81, 59.28)),
    PaperRow("GLoRIA", "100%", 45.6, 60.8, (63.69, 55.82), (79.94, 70.68), (72.42, 60.18)),
    PaperRow("ViLT", "100%", 87.4, 55.9, (64.58, 56.65), (79.63, 70.12), (72.36, 60.15)),
    PaperRow("CLIP", "100%", 87.0, 105.3, (68.76, 60.33), (79.81, 70.66), (71.97, 59.64)),
    PaperRow("LAVT", "100%", 118.6, 83.8, (69.03, 60.98), (79.28, 69.89), (73.29, 60.41)),
    PaperRow("SLViT", "100%", 133.6, 52.2, (71.94, 62.83), (80.68, 71.57), (73.08, 60.11)),
    PaperRow("LViT", "100%", 29.7, 54.1, (71.48, 62.02), (83.66, 75.11), (74.57, 61.33)),
    PaperRow("LSMS (1/4)", "25%", 8.78, 8.91, (77.57, 68.95), (83.39, 75.09), (76.47, 65.05)),
    PaperRow("LSMS (1/2)", "50%", 8.78, 8.91, (77.63, 69.14), (83.44, 75.13), (76.98, 65.71)),
    PaperRow("LSMS", "100%", 8.78, 8.91, (78.14, 70.22), (84.05, 75.70), (77.88, 66.83)),
)
PAPER_TABLE2: dict[str, PaperRow] = {row.method: row for row in _ROWS}

# Registry presets -> the row of the architecture they implement (the -small presets are scaled down).
_PRESET_ROWS = {
    "lsms": "LSMS",
    "lsms-f1": "LSMS",
    "lsms-table1": "LSMS",
    "lsms-nano": "LSMS",
    "unet": "U-Net",
    "unet-small": "U-Net",
    "unetpp": "UNet++",
    "unetpp-small": "UNet++",
    "attention-unet": "AttUNet",
    "attention-unet-small": "AttUNet",
    "lvit": "LViT",
    "lvit-small": "LViT",
}


def paper_row(model_name: str, uses_text: bool = True) -> PaperRow | None:
    """The Table 2 row of a registry preset (its text-free row when ``uses_text`` is False), or None."""
    method = _PRESET_ROWS.get(model_name)
    if method is None:
        return None
    return PAPER_TABLE2.get(method if uses_text else f"{method} (no text)", PAPER_TABLE2[method])


__all__ = ["PAPER_TABLE2", "PaperRow", "paper_row"]
