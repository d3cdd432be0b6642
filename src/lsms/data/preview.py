"""``lsms data preview``: a grid of images with their masks (red) and sentences."""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lsms.atomic import atomic_write
from lsms.data.dataset import load_pair
from lsms.data.io import CTWindow, parse_window
from lsms.data.samples import ReferringSample
from lsms.errors import DataError
from lsms.viz.overlay import overlay_mask


def choose(samples: Sequence[ReferringSample], n: int, seed: int = 0) -> list[ReferringSample]:
    """``n`` samples drawn without replacement by ``seed``, in their dataset order."""
    if n < 1:
        raise DataError(f"preview: n={n}; expected at least 1")
    picked = np.random.default_rng(seed).choice(len(samples), size=min(n, len(samples)), replace=False)
    return [samples[i] for i in sorted(picked.tolist())]


def preview_grid(
    samples: Sequence[ReferringSample],
    out: str | os.PathLike,
    n: int = 16,
    seed: int = 0,
    window: str | CTWindow | tuple[float, float] | None = None,
    wrap: int = 38,
) -> Path:
    """Save a PNG grid of ``n`` random samples: image with mask overlay, id and wrapped sentence."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not samples:
        raise DataError("preview: no samples to show")
    chosen = choose(samples, n, seed)
    window = parse_window(window)
    columns = math.ceil(math.sqrt(len(chosen)))
    rows = math.ceil(len(chosen) / columns)
    figure = Figure(figsize=(3.0 * columns, 3.9 * rows), dpi=100)
    FigureCanvasAgg(figure)
    for position, sample in enumerate(chosen):
        image, mask = load_pair(sample, window)
        axes = figure.add_subplot(rows, columns, position + 1)
        axes.imshow(overlay_mask(image, mask), interpolation="nearest")
        axes.set_axis_off()
        caption = "\n".join(textwrap.wrap(sample.text or "(no text)", wrap)[:6])
        axes.set_title(f"{sample.id}\n{caption}", fontsize=7, loc="left")
    figure.tight_layout()
    out = Path(out)
    return atomic_write(out, lambda tmp: figure.savefig(tmp, format=out.suffix.lstrip(".").lower() or "png"))
