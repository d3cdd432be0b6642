"""The contract every registered model keeps (after timm's tests/test_models.py): it builds, maps odd
input sizes to logits of the same size, backpropagates, saves and loads to identical logits, and exports
to ONNX within tolerance. Parametrised over ``lsms.list_models()``, so a new preset is tested as soon as
it is registered; each model runs at the smallest input side it accepts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import lsms
from lsms.errors import ConfigError
from lsms.runtime import autocast

MODELS = lsms.list_models()
SENTENCES = ["left lung", "two small nodules in the lower right lobe"]
ONNX_TOLERANCE = 1e-4  # the stated parity of the exported graph (docs/inference.md)
# bfloat16 autocast against float32, relative to the logits' scale (at least 1): at initialisation the
# presets differ by 0.0004 (lvit) to 0.03 (attention-unet-small) of it.
BF16_RELATIVE_TOLERANCE = 0.05


def build(name: str, tiny_bert_dir: Path) -> torch.nn.Module:
    """The preset as registered, with the tiny random BERT in place of the default text encoder."""
    try:
        return lsms.create_model(name, text_encoder=str(tiny_bert_dir))
    except ConfigError:  # a text-free preset has no text encoder to replace
        return lsms.create_model(name)


def odd_size(model: torch.nn.Module) -> tuple[int, int]:
    """Odd (H, W), different from each other, just above the model's smallest input side."""
    side = max(int(getattr(model, "min_input_side", 1)), 32)
    return side + 1, side + 7


def inputs(model: torch.nn.Module, size: tuple[int, int]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    image = torch.rand(2, 1, *size, generator=torch.Generator().manual_seed(0))
    return image, (model.tokenize(SENTENCES) if model.uses_text else {})


@pytest.mark.parametrize("name", MODELS)
def test_forward_keeps_odd_input_sizes(name: str, tiny_bert_dir: Path) -> None:
    model = build(name, tiny_bert_dir).eval()
    assert model.architecture == name
    size = odd_size(model)
    image, text = inputs(model, size)
    with torch.no_grad():
        logits = model(image, **text)
    assert logits.shape == (2, 1, *size) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", MODELS)
def test_backward_reaches_every_trainable_parameter(name: str, tiny_bert_dir: Path) -> None:
    model = build(name, tiny_bert_dir).train()
    image, text = inputs(model, odd_size(model))
    model(image, **text).square().mean().backward()
    trainable = {key: value for key, value in model.named_parameters() if value.requires_grad}
    # zero-initialised branches may get an all-zero gradient at the first step, but never none
    missing = [
        key for key, value in trainable.items() if value.grad is None or not value.grad.isfinite().all()
    ]
    assert trainable and not missing, f"{name}: no finite gradient for {missing}"
    assert sum(float(value.grad.abs().sum()) for value in trainable.values()) > 0


@pytest.mark.parametrize("name", MODELS)
def test_save_and_load_give_identical_logits(name: str, tiny_bert_dir: Path, tmp_path: Path) -> None:
    model = build(name, tiny_bert_dir).eval()
    image, text = inputs(model, odd_size(model))
    model.save_pretrained(tmp_path / name)
    loaded = lsms.from_pretrained(tmp_path / name)
    assert loaded.architecture == name
    with torch.no_grad():
        torch.testing.assert_close(loaded(image, **text), model(image, **text), atol=0, rtol=0)


@pytest.mark.parametrize("name", MODELS)
def test_bf16_autocast_tracks_float32_and_backpropagates(name: str, tiny_bert_dir: Path) -> None:
    model = build(name, tiny_bert_dir).eval()
    image, text = inputs(model, odd_size(model))
    cpu = torch.device("cpu")
    with torch.no_grad():
        reference = model(image, **text)
        with autocast(cpu, torch.bfloat16):
            low = model(image, **text).float()
    assert (low - reference).abs().max() <= BF16_RELATIVE_TOLERANCE * max(1.0, float(reference.abs().max()))
    model.train()
    with autocast(cpu, torch.bfloat16):
        logits = model(image, **text)
    logits.float().square().mean().backward()
    assert all(p.grad is None or p.grad.isfinite().all() for p in model.parameters())


# The full-size presets take 3-7 s each to export on one core: `make test-fast` leaves them out.
@pytest.mark.parametrize(
    "name",
    [
        name if name.endswith(("-small", "-nano")) else pytest.param(name, marks=pytest.mark.slow)
        for name in MODELS
    ],
)
def test_onnx_export_matches_pytorch(name: str, tiny_bert_dir: Path, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    from lsms.inference.export import export_onnx

    model = build(name, tiny_bert_dir).eval()
    side = odd_size(model)[0] - 1
    path = export_onnx(model, tmp_path / f"{name}.onnx", example_size=(side, side))
    size = odd_size(model)  # the graph takes sizes other than the traced one
    image, text = inputs(model, size)
    with torch.no_grad():
        expected = model(image, **text).numpy()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {"image": image.numpy(), **{key: value.numpy() for key, value in text.items()}}
    (logits,) = session.run(["logits"], feeds)
    assert logits.shape == (2, 1, *size)
    assert np.abs(logits - expected).max() <= ONNX_TOLERANCE
