"""ONNX export of a model (text encoder included) with dynamic batch, image size and sentence length.

Graph inputs: ``image`` float32 (B, in_chans, H, W) in [0, 1]; for text models also ``input_ids`` and
``attention_mask`` int64 (B, T) from ``model.tokenize``. Output: ``logits`` float32 (B, 1, H, W).
The legacy TorchScript exporter (``dynamo=False``) traces the eval-mode model: the NMF decoder uses
its fixed bases and a fixed number of steps (unrolled), and every resize reads its size from the
input, so one graph serves any batch and image size the model accepts (LSMS: sides >= 64).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import time
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from lsms.atomic import atomic_write
from lsms.errors import ConfigError

MIN_OPSET = 17
EXAMPLE_SENTENCE = "a lesion in the lower left lung"
CACHE_ENV = "LSMS_CACHE_DIR"

logger = logging.getLogger(__name__)


class _ExportWrapper(nn.Module):
    """Positional (image, input_ids, attention_mask) -> logits, the signature the exporter traces."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        image: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.model(image, input_ids, attention_mask)


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    opset: int = MIN_OPSET,
    example_size: tuple[int, int] | None = None,
) -> Path:
    """Write ``model`` as an ONNX file at ``path`` and return it; the file is checked with ``onnx.checker``.

    example_size: (H, W) of the traced example (default: the model's ``preprocess.image_size``, the
    checkpoint's or its preset's); the exported graph accepts other sizes and batch sizes.
    """
    import onnx

    if opset < MIN_OPSET:
        raise ConfigError(f"opset {opset}: expected {MIN_OPSET} or newer")
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise ConfigError(f"{path}: expected an output path ending in .onnx")
    size = example_size or model.preprocess.image_size
    in_chans = int(getattr(getattr(model, "config", None), "in_chans", 1))
    image = torch.rand(2, in_chans, int(size[0]), int(size[1]), generator=torch.Generator().manual_seed(0))
    dynamic_axes = {
        "image": {0: "batch", 2: "height", 3: "width"},
        "logits": {0: "batch", 2: "height", 3: "width"},
    }
    names = ["image"]
    args: tuple[torch.Tensor, ...] = (image,)
    if getattr(model, "uses_text", False):
        tokens = model.tokenize([EXAMPLE_SENTENCE, "nodule"])
        args = (image, tokens["input_ids"], tokens["attention_mask"])
        names += ["input_ids", "attention_mask"]
        dynamic_axes.update({name: {0: "batch", 1: "tokens"} for name in names[1:]})
    wrapper = _ExportWrapper(model)
    was_training = model.training
    model.eval()

    def write(tmp: Path) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            # Shape checks in Python become constants in the trace; they only guard eager calls.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            # InstanceNorm2d without running statistics normalises by the input's own statistics in eval
            # too, which is what "train=True" exports; the text encoder's index ops use non-negative
            # indices. Both are checked by the parity tests (tests/inference/test_export.py).
            warnings.filterwarnings("ignore", message=".*operator 'instance_norm' is set to train=True.*")
            warnings.filterwarnings("ignore", message=".*aten::index operator of advanced indexing.*")
            torch.onnx.export(
                wrapper,
                args,
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=names,
                output_names=["logits"],
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
            )
        onnx.checker.check_model(str(tmp))

    try:
        atomic_write(path, write)
    finally:
        model.train(was_training)
    return path


def onnx_runtime_available() -> bool:
    """Whether the optional ``onnx`` extra (onnx + onnxruntime) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def cache_dir() -> Path:
    """Where exported graphs are kept: ``$LSMS_CACHE_DIR``, else ``$XDG_CACHE_HOME/lsms``, else ``~/.cache/lsms``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lsms"


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 (hex, 16 characters) of what the exported graph depends on: every parameter and buffer
    (values, in standard layout, so channels-last weights hash alike), the model class, its config and
    preprocessing, and the lsms / torch versions and opset that write the graph."""
    from lsms import __version__

    digest = hashlib.sha256()
    preprocess = getattr(model, "preprocess", None)
    header = (
        type(model).__qualname__,
        repr(getattr(model, "config", None)),
        repr(preprocess.to_dict() if preprocess is not None else None),
        __version__,
        torch.__version__,
        MIN_OPSET,
    )
    digest.update(repr(header).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(repr((tuple(tensor.shape), str(tensor.dtype))).encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def cached_onnx(model: nn.Module) -> Path:
    """The ONNX graph of ``model`` in :func:`cache_dir`, exported on first use and reused after (keyed by
    :func:`model_fingerprint`, so changed weights or a new lsms version export anew)."""
    path = cache_dir() / "onnx" / f"{model_fingerprint(model)}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        logger.info("exporting the model to ONNX once for CPU inference (cached as %s)", path)
        start = time.perf_counter()
        export_onnx(model, path)
        logger.info("exported in %.1f s", time.perf_counter() - start)
    return path
