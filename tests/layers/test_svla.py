"""SVLA building blocks: the transposed 1 x d strip convolution of the CPU fast path."""

from __future__ import annotations

import pytest
import torch

from lsms.layers.svla import NARROW_ROW_CHANNELS, ConvUnit


@pytest.mark.parametrize("kernel_size", [7, 11, 21])
def test_transposed_row_convolution_equals_the_direct_one(kernel_size: int) -> None:
    unit = ConvUnit(6, kernel_size)
    x = torch.randn(2, 6, 13, 17).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    unit.transpose_row = False
    direct = unit(x)
    (direct.square().sum()).backward()
    direct_grads = [x.grad.clone(), unit.conv_row.weight.grad.clone(), unit.conv_row.bias.grad.clone()]
    x.grad = None
    unit.zero_grad()
    unit.transpose_row = True
    transposed = unit(x)
    (transposed.square().sum()).backward()
    torch.testing.assert_close(transposed, direct, atol=1e-5, rtol=1e-5)
    for got, expected in zip(
        [x.grad, unit.conv_row.weight.grad, unit.conv_row.bias.grad], direct_grads, strict=True
    ):
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_nchw_input_and_inference_take_the_direct_path(monkeypatch) -> None:
    unit = ConvUnit(NARROW_ROW_CHANNELS + 8, 7)
    calls = []
    monkeypatch.setattr(torch.Tensor, "transpose", lambda *args: calls.append(args) or None)
    with torch.no_grad():
        x = torch.randn(1, NARROW_ROW_CHANNELS + 8, 9, 11)
        assert torch.equal(unit(x), unit.conv_col(unit.conv_row(x)))
        unit(x.contiguous(memory_format=torch.channels_last))
    assert calls == []  # no transposing copies without gradients or in NCHW order


def test_narrow_bf16_inference_does_not_stall_in_kernel_generation() -> None:
    # A bfloat16 channels-last 1 x 21 depthwise convolution of 16 channels on a 32-wide map took
    # minutes in oneDNN's kernel generator; the narrow path transposes it (this test would hang).
    unit = ConvUnit(16, 21)
    x = torch.randn(2, 16, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = unit(x)
    assert out.shape == x.shape
