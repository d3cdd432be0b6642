"""``lsms predict``: masks for a 2D image, a CT volume or every row of a referring manifest."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from lsms.cli import options
from lsms.errors import ConfigError

if TYPE_CHECKING:
    from lsms.predictor import Predictor


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="segment what a sentence refers to in an image, a CT volume or a manifest",
        description=(
            "2D images (PNG/JPG/TIFF/DICOM file) give NAME_mask.png (0/255, the input's size), NAME_overlay.png "
            "(prediction green, the sentence below) and, with --save-probabilities, NAME_probabilities.png "
            "(16-bit, p*65535) or .npy. Volumes (NIfTI file, DICOM series folder, multi-frame DICOM) give "
            "NAME_mask.nii.gz with the input's geometry. --manifest names outputs by row id (overlays show "
            "the ground truth red). Inputs are never overwritten; existing outputs need --overwrite."
        ),
    )
    options.add_checkpoint(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=Path, help="a 2D image file, a NIfTI volume or a DICOM series folder")
    source.add_argument(
        "--manifest", type=Path, help="a referring manifest (CSV/JSONL) or LViT dataset folder"
    )
    parser.add_argument("--text", help="the referring sentence (required with --image for text models)")
    parser.add_argument("--split", help="with --manifest: only rows of this split (train, val, test)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    options.add_prediction_options(parser)
    parser.add_argument("--slices", help="volumes only: START:END slice range (END excluded); others are 0")
    parser.add_argument(
        "--save-probabilities",
        nargs="?",
        const="png",
        choices=["png", "npy"],
        help="2D only: also write the probability map as 16-bit PNG (default) or float32 .npy",
    )
    parser.add_argument(
        "--batch-size", type=int, default=8, help="slices / rows per forward pass (default: 8)"
    )
    options.add_backend(parser)
    options.add_overwrite(parser)
    options.add_no_progress(parser)
    parser.set_defaults(func=run)


def make_predictor(args: argparse.Namespace) -> Predictor:
    """The predictor of the shared options plus --batch-size."""
    return options.load_predictor(args, batch_size=args.batch_size)


def _paths_2d(out: Path, stem: str, save_probabilities: str | None) -> dict[str, Path]:
    paths = {"mask": out / f"{stem}_mask.png", "overlay": out / f"{stem}_overlay.png"}
    if save_probabilities:
        paths["probabilities"] = out / f"{stem}_probabilities.{save_probabilities}"
    return paths


def _write_2d(prediction, paths: dict[str, Path], text: str, truth=None) -> None:
    from lsms.inference.outputs import mask_to_png_array, save_png, save_probabilities
    from lsms.viz.overlay import captioned_overlay

    save_png(mask_to_png_array(prediction.mask), paths["mask"])
    save_png(captioned_overlay(prediction.image, prediction.mask, text, mask=truth), paths["overlay"])
    if "probabilities" in paths:
        save_probabilities(prediction.probabilities, paths["probabilities"])


def _run_manifest(args: argparse.Namespace, predictor: Predictor) -> list[Path]:
    from tqdm.auto import tqdm

    from lsms.data.io import load_mask
    from lsms.data.loading import load_samples
    from lsms.inference.outputs import check_outputs, safe_name

    samples = load_samples(args.manifest, split=args.split)
    planned = {s.id: _paths_2d(args.out, safe_name(s.id), args.save_probabilities) for s in samples}
    inputs = [args.manifest] + [p for s in samples for p in (s.image, s.mask)]
    check_outputs([p for paths in planned.values() for p in paths.values()], inputs, args.overwrite)
    written: list[Path] = []
    results = predictor.predict_manifest(args.manifest, split=args.split)
    for sample, prediction in tqdm(results, total=len(samples), unit="row", disable=args.no_progress):
        paths = planned[sample.id]
        truth = load_mask(sample.mask, slice_index=sample.slice)
        _write_2d(prediction, paths, sample.text, truth if truth.shape == prediction.mask.shape else None)
        written.extend(paths.values())
    return written


def _run_image(args: argparse.Namespace, predictor: Predictor) -> list[Path]:
    from lsms.data.io import save_volume_like
    from lsms.inference.outputs import check_outputs, output_stem
    from lsms.predictor import is_volume_input

    text = args.text or ""
    if predictor.uses_text and not text.strip():
        raise ConfigError("--text: give the referring sentence, e.g. --text 'a lesion in the left lung'")
    stem = output_stem(args.image)
    if is_volume_input(args.image):
        if args.save_probabilities:
            raise ConfigError("--save-probabilities: only for 2D images (volumes give a mask NIfTI)")
        path = args.out / f"{stem}_mask.nii.gz"
        check_outputs([path], [args.image], args.overwrite)
        result = predictor.predict_volume(args.image, text, slices=args.slices, progress=not args.no_progress)
        return [save_volume_like(result.mask, result.volume, path)]
    if args.slices:
        raise ConfigError("--slices: only for volumes (NIfTI file or DICOM series folder)")
    paths = _paths_2d(args.out, stem, args.save_probabilities)
    check_outputs(list(paths.values()), [args.image], args.overwrite)
    _write_2d(predictor.predict_2d(args.image, text), paths, text)
    return list(paths.values())


def run(args: argparse.Namespace) -> int:
    if args.manifest is not None and (args.text or args.slices):
        raise ConfigError("--text and --slices apply to --image; manifest rows carry their own sentences")
    predictor = make_predictor(args)
    written = _run_manifest(args, predictor) if args.manifest is not None else _run_image(args, predictor)
    for path in written:
        print(path)
    return 0
