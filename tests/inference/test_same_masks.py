"""One prediction path: ``lsms eval``, ``lsms predict`` and ``segment`` give byte-identical masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from inference_helpers import SENTENCE, predict_argv

import lsms
from lsms.cli import main
from lsms.data.manifest import write_manifest
from lsms.data.samples import ReferringSample
from lsms.inference.outputs import mask_to_png_array, save_png


def test_eval_predict_and_segment_give_the_same_mask_bytes(
    checkpoint: Path, png_image: Path, tmp_path: Path
) -> None:
    model = lsms.from_pretrained(checkpoint)
    probabilities = model.segment(png_image, SENTENCE, return_probabilities=True, precision="fp32")[1]
    threshold = f"{float(np.median(probabilities)):.6f}"  # a mask with both classes from an untrained model
    mask = model.segment(png_image, SENTENCE, threshold=float(threshold), precision="fp32")
    assert 0 < mask.sum() < mask.size
    segmented = save_png(mask_to_png_array(mask), tmp_path / "segment_mask.png")

    options = ["--threshold", threshold, "--precision", "fp32", "--device", "cpu"]
    assert main([*predict_argv(checkpoint, png_image, tmp_path / "predict"), *options]) == 0
    predicted = tmp_path / "predict" / "scan_mask.png"

    truth = tmp_path / "truth.png"
    save_png(mask_to_png_array(mask), truth)
    sample = ReferringSample(id="scan", image=png_image, mask=truth, text=SENTENCE, split="val")
    manifest = write_manifest([sample], tmp_path / "manifest.csv")
    out = tmp_path / "eval"
    eval_argv = ["eval", "--checkpoint", str(checkpoint), "--data", str(manifest), "--out", str(out)]
    assert main([*eval_argv, "--save-masks", "--no-progress", *options]) == 0
    evaluated = out / "masks" / "scan_mask.png"

    assert segmented.read_bytes() == predicted.read_bytes() == evaluated.read_bytes()
    assert json.loads((out / "summary.json").read_text())["means"]["dice"] == 1.0  # scored that same mask
