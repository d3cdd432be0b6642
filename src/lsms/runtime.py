"""How a model runs: device, precision and memory layout, one place for training, evaluation and prediction.

- ``precision``: ``fp32`` is the reference; ``bf16`` / ``fp16`` run the forward pass under
  ``torch.autocast`` (convolutions and matrix products in the low-precision type; the NMF of the decoder
  and the losses stay in float32); ``auto`` picks bfloat16 on a CUDA GPU that supports it (else
  float16) and on a CPU with native bfloat16 instructions (AVX512-BF16 or AMX), float32 elsewhere.
- ``channels_last``: weights and activations in NHWC order. oneDNN runs depthwise and 1x1 convolutions
  several times faster that way on CPUs; the arithmetic is the same (see benchmarks/profile_ops.py).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from lsms.errors import ConfigError

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

# torch is imported inside the functions: the training config imports this module, and reading a
# config (or `lsms --help`) should not pay for importing torch.
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` (CUDA device ``local_rank`` when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    import torch

    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device: expected auto, cpu, cuda or cuda:N, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available on this machine")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True on x86 CPUs with AVX512-BF16 or AMX-BF16 (read from /proc/cpuinfo; False where it is absent).

    Elsewhere bfloat16 is emulated and slower than float32, so ``auto`` keeps float32 there.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; None means plain float32."""
    import torch

    if precision not in PRECISIONS:
        raise ConfigError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("precision fp16: CPU autocast supports bf16 only; use bf16 or fp32 on the CPU")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``, or a no-op for float32."""
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def precision_name(dtype: torch.dtype | None) -> str:
    """``fp32`` / ``bf16`` / ``fp16``: what a run actually used, for logs and summaries."""
    import torch

    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def set_channels_last(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Move ``model``'s 4-D weights to channels-last (NHWC) or back to the default layout, in place.

    Activations follow the weights' layout, so nothing else changes; saved weights do not depend on it.
    """
    import torch

    model.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)
    return model


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (fixed NMF bases, BatchNorm running statistics) and no autograd, then restore."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)
