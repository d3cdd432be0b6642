"""Helpers shared by the inference tests (a unique module name, imported as ``inference_helpers``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SENTENCE = "a bright round lesion"


def gray_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth uint8 (H, W) test picture: a bright disc on a gradient, plus noise."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    disc = ((rows - height * 0.4) ** 2 + (cols - width * 0.6) ** 2) < (min(height, width) * 0.25) ** 2
    image = 60 + 80 * cols / width + 90 * disc + rng.normal(0, 8, (height, width))
    return np.clip(image, 0, 255).astype(np.uint8)


def run_cli(argv: list[str]) -> int:
    """``lsms ARGV`` through the real entry point, with only this package's sub-commands registered."""
    import lsms.cli

    saved = lsms.cli.COMMAND_MODULES
    lsms.cli.COMMAND_MODULES = ["predict", "explain", "export", "serve"]
    try:
        return lsms.cli.main(argv)
    finally:
        lsms.cli.COMMAND_MODULES = saved


def predict_argv(checkpoint: Path, image: Path, out: Path, *extra: str, text: str = SENTENCE) -> list[str]:
    """``lsms predict`` arguments for one image and sentence, plus ``extra`` options."""
    return [
        "predict",
        "--checkpoint",
        str(checkpoint),
        "--image",
        str(image),
        "--text",
        text,
        "--out",
        str(out),
        *extra,
    ]
