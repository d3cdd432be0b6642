"""lsms.runtime: device and precision resolution, bf16 vs fp32 parity, channels-last parity, determinism."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lsms
from lsms import runtime
from lsms.errors import ConfigError
from lsms.runtime import autocast, autocast_dtype, resolve_device, set_channels_last

CPU = torch.device("cpu")
LSMS_PRESETS = [name for name in lsms.list_models() if name.startswith("lsms")]
# Stated tolerance of bfloat16 autocast against float32 (docs/performance.md): logits of the presets
# at initialisation differ by at most this much.
BF16_LOGIT_TOLERANCE = 0.05


def test_precision_resolution_on_the_cpu(monkeypatch) -> None:
    assert autocast_dtype("fp32", CPU) is None
    assert autocast_dtype("bf16", CPU) is torch.bfloat16
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert autocast_dtype("auto", CPU) is torch.bfloat16
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert autocast_dtype("auto", CPU) is None  # emulated bfloat16 is slower than float32
    with pytest.raises(ConfigError, match="fp16: CPU autocast supports bf16 only"):
        autocast_dtype("fp16", CPU)
    with pytest.raises(ConfigError, match="precision: expected one of auto, bf16, fp16, fp32, got 'fp8'"):
        autocast_dtype("fp8", CPU)


def test_device_resolution() -> None:
    assert resolve_device("cpu") == CPU
    if not torch.cuda.is_available():
        assert resolve_device("auto") == CPU
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="expected auto, cpu, cuda or cuda:N, got 'gpu0'"):
        resolve_device("gpu0")


def _logits(model: torch.nn.Module, dtype: torch.dtype | None) -> torch.Tensor:
    torch.manual_seed(1)
    image = torch.rand(2, 1, 96, 96)
    tokens = model.tokenize(["a round lesion in the left lobe", "two infected areas, lower right lung"])
    with torch.inference_mode(), autocast(CPU, dtype):
        return model(image, **tokens).float()


@pytest.mark.parametrize("preset", LSMS_PRESETS)
def test_bf16_and_channels_last_agree_with_the_fp32_reference(preset: str, tiny_bert_dir: Path) -> None:
    model = lsms.create_model(preset, text_encoder=str(tiny_bert_dir)).eval()
    reference = _logits(model, None)
    set_channels_last(model)
    torch.testing.assert_close(_logits(model, None), reference, atol=1e-4, rtol=1e-4)
    bf16 = _logits(model, torch.bfloat16)
    assert (bf16 - reference).abs().max() <= BF16_LOGIT_TOLERANCE
    assert torch.equal(_logits(model, torch.bfloat16), bf16)  # bf16 inference is deterministic too
