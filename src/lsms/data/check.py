"""``lsms data check``: validate a manifest or an LViT folder and summarise it.

Problems found: missing or unreadable files, image/mask size mismatch, empty or non-binary masks,
duplicate rows and ids, empty text, NaN or infinite pixel values, cases that appear in more than one
split, and (LViT) images, masks or text rows that match nothing. Each problem is one line naming the
row or file. Images far smaller than the model input (a side under a quarter of it: upscaled more than
4x, e.g. 1x1 or 40x40 for 224x224) are warnings: they do not change the exit status.
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lsms.data.io import CTWindow, load_image, load_mask, parse_window
from lsms.data.loading import parse_samples
from lsms.data.samples import Problem, ReferringSample
from lsms.errors import DataError

DEFAULT_MODEL_INPUT = 224  # the paper's input side for QaTa-COV19 and MosMedData+
SMALL_IMAGE_FACTOR = 4  # an image side below model input / 4 is flagged


@dataclass
class CheckReport:
    """Result of ``check_dataset``: ``problems`` (empty when the data are fine), per-sample lesion
    area fractions and text lengths (words), image sizes, and the time taken in seconds. ``warnings``
    (images far smaller than the model input) do not make the data invalid."""

    path: Path
    samples: list[ReferringSample]
    problems: list[Problem]
    warnings: list[Problem] = field(default_factory=list)
    lesion_fraction: dict[str, float] = field(default_factory=dict)
    text_words: list[int] = field(default_factory=list)
    image_sizes: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


def _inspect(
    sample: ReferringSample, window: CTWindow | None
) -> tuple[tuple[int, int] | None, float | None, list[str]]:
    """(image size, lesion fraction, problems) of one sample; reads each file once."""
    messages: list[str] = []
    image_shape = mask_shape = None
    mask = None
    for kind, path in (("image", sample.image), ("mask", sample.mask)):
        if not path.exists():
            messages.append(f"{kind} {path} not found")
            continue
        try:
            if kind == "image":
                image_shape = load_image(path, window=window, slice_index=sample.slice).shape
            else:
                mask = load_mask(path, slice_index=sample.slice)
                mask_shape = mask.shape
        except DataError as error:
            messages.append(str(error))
    if image_shape is not None and mask_shape is not None and image_shape != mask_shape:
        messages.append(
            f"mask is {mask_shape[0]}x{mask_shape[1]} but image is {image_shape[0]}x{image_shape[1]}"
        )
    fraction = None
    if mask is not None:
        fraction = float(mask.mean())
        if fraction == 0.0:
            messages.append(f"empty mask {sample.mask.name}")
    return image_shape, fraction, messages


def _dataset_problems(samples: list[ReferringSample]) -> list[Problem]:
    """Problems between rows: duplicate rows or ids, cases split across splits."""
    problems: list[Problem] = []
    seen_rows: dict[tuple, str] = {}
    seen_ids: set[str] = set()
    splits_of_case: dict[str, set[str]] = defaultdict(set)
    for sample in samples:
        where = f"sample {sample.id}"
        key = (sample.image, sample.mask, sample.slice, sample.text)
        if key in seen_rows:
            problems.append(
                Problem(where, f"duplicate of sample {seen_rows[key]} (same image, mask, slice, text)")
            )
        seen_rows.setdefault(key, sample.id)
        if sample.id in seen_ids:
            problems.append(Problem(where, "duplicate id"))
        seen_ids.add(sample.id)
        if sample.split is not None:
            splits_of_case[sample.case_id or sample.image.name].add(sample.split)
    for case, splits in sorted(splits_of_case.items()):
        if len(splits) > 1:
            problems.append(
                Problem(
                    f"case {case}",
                    f"appears in splits {', '.join(sorted(splits))}; a case must stay in one split",
                )
            )
    return problems


def check_dataset(
    path: str | os.PathLike,
    split: str | None = None,
    window: str | CTWindow | tuple[float, float] | None = None,
    workers: int | None = None,
    model_input: tuple[int, int] = (DEFAULT_MODEL_INPUT, DEFAULT_MODEL_INPUT),
) -> CheckReport:
    """Read every row and file of a manifest or LViT folder and report what is wrong (never raises
    for row or file problems; structural errors such as a missing column still raise DataError).
    Images with a side under ``model_input / SMALL_IMAGE_FACTOR`` are reported as warnings."""
    start = time.perf_counter()
    window = parse_window(window)
    samples, problems = parse_samples(path, split)
    problems = list(problems) + _dataset_problems(samples)
    report = CheckReport(path=Path(path), samples=samples, problems=problems)
    workers = workers or min(8, (os.cpu_count() or 1) + 2)
    # Decoding (PIL, zlib, pydicom) releases the GIL often enough for threads to pay off.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(lambda s: _inspect(s, window), samples, chunksize=32)
        for sample, (shape, fraction, messages) in zip(samples, results, strict=True):
            problems.extend(Problem(f"sample {sample.id}", m, sample=sample) for m in messages)
            if shape is not None:
                report.image_sizes[shape] += 1
                if any(
                    side * SMALL_IMAGE_FACTOR < target
                    for side, target in zip(shape, model_input, strict=True)
                ):
                    report.warnings.append(
                        Problem(
                            f"sample {sample.id}",
                            f"image {sample.image.name} is {shape[0]}x{shape[1]}, far smaller than the "
                            f"model input {model_input[0]}x{model_input[1]} (upscaled more than "
                            f"{SMALL_IMAGE_FACTOR}x); expected sides of at least "
                            f"{-(-model_input[0] // SMALL_IMAGE_FACTOR)}x{-(-model_input[1] // SMALL_IMAGE_FACTOR)}",
                            fatal=False,
                        )
                    )
            if fraction is not None:
                report.lesion_fraction[sample.id] = fraction
    report.text_words = [len(s.text.split()) for s in samples]
    report.seconds = time.perf_counter() - start
    return report


def _distribution(values: list[float], fmt: str) -> str:
    if not values:
        return "n/a"
    array = np.asarray(values, dtype=np.float64)
    points = np.percentile(array, [0, 5, 50, 95, 100])
    labels = ("min", "p5", "median", "p95", "max")
    return ", ".join(f"{label} {format(value, fmt)}" for label, value in zip(labels, points, strict=True))


def format_report(report: CheckReport) -> str:
    """Problems (one line each) then a summary: counts, image sizes, lesion size and text length."""
    samples = report.samples
    lines = [str(p) for p in report.problems] + [f"warning: {w}" for w in report.warnings]
    splits = Counter(s.split or "-" for s in samples)
    sizes = ", ".join(f"{h}x{w} ({n})" for (h, w), n in report.image_sizes.most_common(5))
    more = f" and {len(report.image_sizes) - 5} more" if len(report.image_sizes) > 5 else ""
    lines += [
        f"summary of {report.path}:",
        f"  rows {len(samples)}; images {len({(s.image, s.slice) for s in samples})}; "
        f"cases {len({s.case_id or s.image.name for s in samples})}; "
        + "splits "
        + ", ".join(f"{k} {v}" for k, v in sorted(splits.items())),
        f"  image sizes: {sizes or 'n/a'}{more}",
        f"  lesion area (% of image): {_distribution([100 * v for v in report.lesion_fraction.values()], '.2f')}",
        f"  text length (words): {_distribution(report.text_words, '.0f')}",
        f"  {len(report.problems)} problem(s), {len(report.warnings)} warning(s); "
        f"checked in {report.seconds:.1f} s",
    ]
    return "\n".join(lines)
