"""Inference speed on the CPU: a CT volume slice by slice, and ONNX Runtime vs PyTorch per slice.

The model is the default preset ``lsms`` (MiniLM text encoder) with UNTRAINED random weights: speed
does not depend on the weights. The volume is synthetic HU noise of SIZE x SIZE x SLICES, windowed
(lung) and resized to the model's input size as ``lsms predict`` does. Measured, in one run:

1. ``Predictor.predict_volume`` on the whole volume, with each backend: PyTorch's fast path
   (``precision auto``: bfloat16 on CPUs with native bf16, channels-last; ``lsms predict --backend
   pytorch``), PyTorch in float32 (channels-last), and ONNX Runtime (float32, what ``lsms predict`` runs by
   default on the CPU): wall time, process CPU time, slices per
   second, and the largest probability difference to the float32 PyTorch reference;
2. latency per slice at batch 1 (one prepared slice + the sentence's tokens through the backend),
   median of ``--repeats`` after one warm-up, with the same thread count.

Prints a markdown table and writes JSON:

    nice python benchmarks/predict_speed.py --slices 100 --out benchmarks/results/predict_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from common import cpu_model  # benchmarks/ is on sys.path when the script runs

from lsms.atomic import atomic_write_text

SENTENCE = "Bilateral pulmonary infection, two infected areas, lower left lung and lower right lung."


def synthetic_volume(slices: int, size: int):
    """A (Z, H, W) float32 HU volume of smooth noise with 1 x 0.7 x 0.7 mm spacing."""
    from lsms.data.io import Volume

    rng = np.random.default_rng(0)
    array = (rng.normal(-300, 400, (slices, size, size))).astype(np.float32)
    affine = np.diag([1.0, 0.7, 0.7, 1.0])
    return Volume(
        array=array, affine=affine, spacing=(1.0, 0.7, 0.7), kind="nifti", path=Path("synthetic.nii.gz")
    )


def time_volume(predictor, volume):
    """Timings of one ``predict_volume`` and its probabilities (Z, H, W)."""
    wall, cpu = time.perf_counter(), time.process_time()
    prediction = predictor.predict_volume(volume, SENTENCE, progress=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    slices = volume.array.shape[0]
    return {"wall_s": wall, "cpu_s": cpu, "slices_per_s": slices / wall}, prediction.probabilities


def time_per_slice(predictor, repeats: int) -> dict:
    image = predictor.preprocess.batch([np.random.default_rng(1).random((512, 512), dtype=np.float32)])
    tokens = predictor.tokens([SENTENCE])
    predictor.backend(image, tokens)  # warm-up
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.backend(image, tokens)
        timings.append(time.perf_counter() - start)
    return {"median_ms": 1000 * statistics.median(timings), "min_ms": 1000 * min(timings), "repeats": repeats}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slices", type=int, default=100, help="slices of the volume (default: 100)")
    parser.add_argument("--size", type=int, default=512, help="slice side in pixels (default: 512)")
    parser.add_argument("--image-size", type=int, default=224, help="model input side (default: 224)")
    parser.add_argument("--batch-size", type=int, default=8, help="slices per forward pass (default: 8)")
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="intra-op threads, both backends"
    )
    parser.add_argument("--repeats", type=int, default=10, help="per-slice latency repeats (default: 10)")
    parser.add_argument("--preset", default="lsms")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/predict_speed.json"))
    args = parser.parse_args()

    import onnxruntime

    import lsms
    from lsms.inference.export import export_onnx
    from lsms.predictor import Predictor
    from lsms.runtime import autocast_dtype

    load_before = os.getloadavg()  # the machine may be shared: contention slows both backends
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = lsms.create_model(args.preset).eval()
    options = {"image_size": args.image_size, "window": "lung", "batch_size": args.batch_size}
    volume = synthetic_volume(args.slices, args.size)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        onnx_path = export_onnx(
            model, Path(folder) / "model.onnx", example_size=(args.image_size, args.image_size)
        )
        backends = {
            "pytorch (auto precision)": Predictor(model, **options),
            "pytorch fp32": Predictor(model, precision="fp32", **options),
            "onnxruntime (fp32)": Predictor(model, onnx=onnx_path, threads=args.threads, **options),
        }
        probabilities = {}
        for name, predictor in backends.items():
            timings, probabilities[name] = time_volume(predictor, volume)
            results[name] = {"volume": timings, "per_slice": time_per_slice(predictor, args.repeats)}
        reference = probabilities["pytorch fp32"]
        for name in backends:
            difference = np.abs(probabilities[name] - reference)
            results[name]["parity"] = {
                "max_abs_probability_difference": float(difference.max()),
                "mask_agreement": float(np.mean((probabilities[name] > 0.5) == (reference > 0.5))),
            }

    record = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "cpu": cpu_model(),
            "nproc": os.cpu_count(),
            "threads": args.threads,
            "load_average_1min": {"start": load_before[0], "end": os.getloadavg()[0]},
        },
        "versions": {
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "lsms": lsms.__version__,
        },
        "setup": {
            "preset": args.preset,
            "weights": "untrained (random)",
            "precision_auto_resolves_to": "bf16" if autocast_dtype("auto", torch.device("cpu")) else "fp32",
            "volume": [args.slices, args.size, args.size],
            "model_input": [args.image_size, args.image_size],
            "batch_size": args.batch_size,
            "window": "lung",
            "sentence": SENTENCE,
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")

    print(
        f"{args.preset} (untrained), volume {args.slices}x{args.size}x{args.size} -> {args.image_size}x"
        f"{args.image_size}, batch {args.batch_size}, {args.threads} thread(s), {record['machine']['cpu']}\n"
    )
    print(
        "| backend | volume wall (s) | volume CPU (s) | slices/s | latency per slice, batch 1 (ms, median) "
        "| max prob. diff to fp32 | mask agreement |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, result in results.items():
        v, s, p = result["volume"], result["per_slice"], result["parity"]
        print(
            f"| {name} | {v['wall_s']:.1f} | {v['cpu_s']:.1f} | {v['slices_per_s']:.2f} | {s['median_ms']:.0f} "
            f"| {p['max_abs_probability_difference']:.4f} | {100 * p['mask_agreement']:.2f}% |"
        )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
