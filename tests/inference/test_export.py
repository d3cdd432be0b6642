"""ONNX export: parity with PyTorch at two image sizes and batch 2, text-free graphs, the onnx backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from inference_helpers import run_cli
from PIL import Image

import lsms
from lsms.errors import ConfigError
from lsms.inference import export as export_module
from lsms.inference import load_predictor
from lsms.inference.export import cache_dir, cached_onnx, export_onnx, model_fingerprint
from lsms.runtime import set_channels_last

SENTENCES = ["a lesion in the lower left lung", "two small nodules, upper right"]


@pytest.fixture(scope="module")
def onnx_file(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    assert run_cli(["export", "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    return out


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("size", [(96, 128), (64, 80)])
def test_onnx_matches_pytorch(checkpoint: Path, onnx_file: Path, size: tuple[int, int]) -> None:
    model = lsms.from_pretrained(checkpoint)
    graph = onnx.load(str(onnx_file))
    assert graph.opset_import[0].version >= 17
    assert [i.name for i in graph.graph.input] == ["image", "input_ids", "attention_mask"]
    image = torch.rand(2, 1, *size, generator=torch.Generator().manual_seed(1))
    tokens = model.tokenize(SENTENCES)  # different lengths: padding and the -inf mask are exercised
    assert (tokens["attention_mask"] == 0).any()
    with torch.no_grad():
        expected = model(image, **tokens).numpy()
    feeds = {"image": image.numpy(), **{k: v.numpy() for k, v in tokens.items()}}
    logits = _session(onnx_file).run(["logits"], feeds)[0]
    assert logits.shape == (2, 1, *size)
    assert np.abs(logits - expected).max() <= 1e-4
    assert np.abs(expected[0] - expected[1]).max() > 1e-3  # the two rows really differ


def test_default_preset_exports_with_parity(tiny_bert_dir: Path, tmp_path: Path) -> None:
    # the default `lsms` (FSD aligned at F2), exported from channels-last weights as predict holds them
    model = set_channels_last(lsms.create_model("lsms", text_encoder=str(tiny_bert_dir))).eval()
    path = export_onnx(model, tmp_path / "lsms.onnx", example_size=(64, 64))
    image = torch.rand(2, 1, 96, 64, generator=torch.Generator().manual_seed(3))
    tokens = model.tokenize(SENTENCES)
    with torch.no_grad():
        expected = model(image, **tokens).numpy()
    feeds = {"image": image.numpy(), **{k: v.numpy() for k, v in tokens.items()}}
    assert np.abs(_session(path).run(["logits"], feeds)[0] - expected).max() <= 1e-4


def test_text_free_export_takes_the_image_only(text_free_checkpoint: Path, tmp_path: Path) -> None:
    model = lsms.from_pretrained(text_free_checkpoint)
    path = export_onnx(model, tmp_path / "free.onnx", example_size=(64, 64))
    session = _session(path)
    assert [i.name for i in session.get_inputs()] == ["image"]
    image = torch.rand(2, 1, 72, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(image).numpy()
    assert np.abs(session.run(["logits"], {"image": image.numpy()})[0] - expected).max() <= 1e-4
    with pytest.raises(ConfigError, match="opset"):
        export_onnx(model, tmp_path / "old.onnx", opset=13)


def test_predict_with_onnx_backend_matches_pytorch(
    checkpoint: Path, onnx_file: Path, png_image: Path, nifti_volume: Path, tmp_path: Path
) -> None:
    onnx_predictor = load_predictor(checkpoint, onnx=onnx_file, threads=1, batch_size=2)
    torch_predictor = load_predictor(checkpoint, batch_size=2, precision="fp32")  # ONNX is fp32
    np.testing.assert_allclose(
        onnx_predictor.predict_2d(png_image, SENTENCES[0]).probabilities,
        torch_predictor.predict_2d(png_image, SENTENCES[0]).probabilities,
        atol=1e-5,
    )
    volume_onnx = onnx_predictor.predict_volume(nifti_volume, SENTENCES[1], slices="0:3", progress=False)
    volume_torch = torch_predictor.predict_volume(nifti_volume, SENTENCES[1], slices="0:3", progress=False)
    np.testing.assert_allclose(volume_onnx.probabilities, volume_torch.probabilities, atol=1e-5)
    out = tmp_path / "out"
    assert (
        run_cli(
            [
                "predict",
                "--checkpoint",
                str(checkpoint),
                "--image",
                str(png_image),
                "--text",
                SENTENCES[0],
                "--out",
                str(out),
                "--backend",
                "onnx",
                "--onnx",
                str(onnx_file),
            ]
        )
        == 0
    )
    mask = np.asarray(Image.open(out / "scan_mask.png")) == 255
    np.testing.assert_array_equal(mask, torch_predictor.predict_2d(png_image, SENTENCES[0]).mask)


def test_export_refuses_existing_file(checkpoint: Path, onnx_file: Path, capsys) -> None:
    assert run_cli(["export", "--checkpoint", str(checkpoint), "--out", str(onnx_file)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_auto_backend_runs_onnx_runtime_on_the_cpu(checkpoint: Path, png_image: Path, monkeypatch) -> None:
    auto = load_predictor(checkpoint, backend="auto", threads=1)
    assert auto.backend.name == "onnx" and auto.precision == "fp32"
    reference = load_predictor(checkpoint, precision="fp32")  # the PyTorch float32 reference
    assert reference.backend.name == "pytorch"
    np.testing.assert_allclose(
        auto.predict_2d(png_image, SENTENCES[0]).probabilities,
        reference.predict_2d(png_image, SENTENCES[0]).probabilities,
        atol=1e-5,
    )
    # a precision asked for is PyTorch's; without the onnx extra auto falls back to PyTorch
    assert load_predictor(checkpoint, backend="auto", precision="bf16").backend.name == "pytorch"
    monkeypatch.setattr(export_module, "onnx_runtime_available", lambda: False)
    assert load_predictor(checkpoint, backend="auto").backend.name == "pytorch"
    with pytest.raises(ConfigError, match=r"pip install 'lsms\[onnx\]'"):
        load_predictor(checkpoint, backend="onnx")


def test_cached_onnx_exports_once_per_weights(checkpoint: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LSMS_CACHE_DIR", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    model = lsms.from_pretrained(checkpoint)
    path = cached_onnx(model)
    assert path.parent == tmp_path / "cache" / "onnx" and path.is_file()

    def refuse(*args, **kwargs):
        raise AssertionError("exported again although the graph is cached")

    monkeypatch.setattr(export_module, "export_onnx", refuse)
    # the same weights in channels-last order, loaded anew: the same graph
    assert cached_onnx(set_channels_last(lsms.from_pretrained(checkpoint))) == path
    with torch.no_grad():
        next(model.parameters()).add_(0.5)
    assert model_fingerprint(model) != path.stem  # changed weights: another graph
    with pytest.raises(AssertionError, match="exported again"):
        cached_onnx(model)


def test_auto_backend_falls_back_to_pytorch_when_export_fails(checkpoint: Path, monkeypatch, caplog) -> None:
    def fail(*args, **kwargs):
        raise PermissionError("read-only cache")

    monkeypatch.setattr(export_module, "cached_onnx", fail)
    assert load_predictor(checkpoint, backend="auto").backend.name == "pytorch"
    assert "ONNX export failed (PermissionError: read-only cache)" in caplog.text
    with pytest.raises(PermissionError):
        load_predictor(checkpoint, backend="onnx")


def test_bad_backend_arguments_are_refused(checkpoint: Path, onnx_file: Path) -> None:
    with pytest.raises(ConfigError, match="backend 'gpu'"):
        load_predictor(checkpoint, backend="gpu")
    with pytest.raises(ConfigError, match="backend 'pytorch'"):
        load_predictor(checkpoint, backend="pytorch", onnx=onnx_file)
    with pytest.raises(ConfigError, match="float32"):
        load_predictor(checkpoint, onnx=onnx_file, precision="bf16")
