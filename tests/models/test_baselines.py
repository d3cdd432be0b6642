"""Baselines (unet, unetpp, attention-unet, lvit, late-fusion-unet): the shared model interface."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import lsms.models.baselines  # noqa: F401  (registers the baselines even before lsms.models imports them)
from lsms.errors import ConfigError, DataError
from lsms.models import text_encoder as text_encoder_module
from lsms.models.pretrained import save_pretrained
from lsms.registry import create_model, from_pretrained, list_models

TEXT_FREE = ["unet-small", "unetpp-small", "attention-unet-small"]
TEXT_MODELS = ["lvit-small", "late-fusion-unet-small"]
SENTENCES = ["left lung", "bilateral pulmonary infection, two infected areas, middle left and right lung"]


# Narrower than the -small presets, so each forward pass takes milliseconds on a shared CPU.
TINY = {"lvit-small": {"width": 8, "num_heads": 2}}
TINY_CHANNELS = {"channels": (8, 16, 32, 64, 128)}


def build(name: str, tiny_bert_dir: Path, **overrides) -> torch.nn.Module:
    """A tiny preset; text models get the tiny random BERT (hidden size 32)."""
    if name in TEXT_MODELS:
        overrides.setdefault("text_encoder", str(tiny_bert_dir))
    return create_model(name, **{**TINY.get(name, TINY_CHANNELS), **overrides})


def text_inputs(model: torch.nn.Module, sentences: list[str]) -> dict[str, torch.Tensor]:
    return model.tokenize(sentences) if model.uses_text else {}


def test_all_presets_are_registered():
    expected = {"unet", "unetpp", "attention-unet", "lvit", "late-fusion-unet", *TEXT_FREE, *TEXT_MODELS}
    assert expected <= set(list_models())


@pytest.mark.parametrize("name", TEXT_FREE + TEXT_MODELS)
@pytest.mark.parametrize("size", [(64, 96), (97, 131)])
def test_logits_have_input_size_for_batches_with_different_sentence_lengths(name, size, tiny_bert_dir):
    model = build(name, tiny_bert_dir).eval()
    inputs = text_inputs(model, SENTENCES)
    if model.uses_text:
        lengths = inputs["attention_mask"].sum(1).tolist()
        assert lengths[0] < lengths[1]
    with torch.no_grad():
        logits = model(torch.rand(2, 1, *size), **inputs)
    assert logits.shape == (2, 1, *size)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_text_changes_the_output(name, tiny_bert_dir):
    model = build(name, tiny_bert_dir).eval()
    image = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        first = model(image, **model.tokenize(["the larger lesion in the left lung"]))
        second = model(image, **model.tokenize(["a small opacity in the lower right lung"]))
    assert (first - second).abs().max() > 1e-4


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_padding_does_not_change_logits(name, tiny_bert_dir):
    model = build(name, tiny_bert_dir).eval()
    tokenizer = model.text_encoder.tokenizer
    image = torch.rand(1, 1, 64, 64)
    outputs = []
    for length in (8, 32):
        tokens = tokenizer(
            ["left lung infection"], padding="max_length", max_length=length, return_tensors="pt"
        )
        assert tokens["attention_mask"][0, -1] == 0  # really padded
        with torch.no_grad():
            outputs.append(model(image, tokens["input_ids"], tokens["attention_mask"]))
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_cached_word_features_padded_with_zeros_match_token_ids(name, tiny_bert_dir):
    # the frozen-text cache passes each sentence's features zero-padded to the batch's longest sentence
    model = build(name, tiny_bert_dir).eval()
    image = torch.rand(2, 1, 64, 64)
    tokens = model.tokenize(SENTENCES)
    with torch.no_grad():
        features, mask = model.encode_text(tokens["input_ids"], tokens["attention_mask"])
        padded = torch.cat([features, torch.zeros(2, 5, features.shape[-1])], dim=1)
        padded_mask = torch.cat([mask, torch.zeros(2, 5, dtype=mask.dtype)], dim=1)
        padded[~padded_mask.bool()] = 0.0
        from_ids = model(image, **tokens)
        from_features = model(image, word_features=padded, word_mask=padded_mask)
    torch.testing.assert_close(from_ids, from_features, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", TEXT_FREE + TEXT_MODELS)
def test_every_trainable_parameter_gets_a_gradient(name, tiny_bert_dir):
    model = build(name, tiny_bert_dir).train()
    logits = model(torch.rand(2, 1, 64, 64), **text_inputs(model, SENTENCES))
    logits.square().mean().backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable
    without = [n for n, p in trainable.items() if p.grad is None or not torch.isfinite(p.grad).all()]
    zero = [n for n, p in trainable.items() if p.grad is not None and p.grad.abs().sum() == 0]
    assert not without and not zero, f"no gradient: {without}; zero gradient: {zero}"
    if model.uses_text:  # frozen by default: the text encoder is not trained
        assert not any(p.requires_grad for p in model.text_encoder.parameters())


def test_unfrozen_text_encoder_is_trained(tiny_bert_dir):
    model = build("late-fusion-unet-small", tiny_bert_dir, freeze_text_encoder=False).train()
    assert not model.text_encoder.frozen
    model(torch.rand(2, 1, 64, 64), **model.tokenize(SENTENCES)).mean().backward()
    embeddings = model.text_encoder.model.embeddings.word_embeddings.weight
    assert embeddings.requires_grad and embeddings.grad is not None and embeddings.grad.abs().sum() > 0


@pytest.mark.parametrize("name", TEXT_FREE)
def test_text_free_models_build_without_a_text_encoder_and_ignore_text(name, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a text-free model must not build a text encoder")

    monkeypatch.setattr(text_encoder_module.TextEncoder, "__init__", refuse)
    model = create_model(name, **TINY_CHANNELS).eval()
    assert model.uses_text is False and model.text_encoder is None
    with pytest.raises(ConfigError, match="text-free"):
        model.tokenize(["left lung"])
    image = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        plain = model(image)
        with_text = model(image, torch.ones(1, 4, dtype=torch.long), torch.ones(1, 4, dtype=torch.long))
    torch.testing.assert_close(plain, with_text, atol=0, rtol=0)


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_text_model_without_text_is_a_clear_error(name, tiny_bert_dir):
    model = build(name, tiny_bert_dir).eval()
    with pytest.raises(ConfigError, match="reads text"):
        model(torch.rand(1, 1, 64, 64))
    with pytest.raises(ConfigError, match="word_features must be"):
        model(torch.rand(1, 1, 64, 64), word_features=torch.zeros(1, 3, 7), word_mask=torch.ones(1, 3))


def test_wrong_image_channels_is_a_data_error(tiny_bert_dir):
    model = build("unet-small", tiny_bert_dir)
    with pytest.raises(DataError, match=r"expected images \(B, 1, H, W\)"):
        model(torch.rand(1, 3, 64, 64))


@pytest.mark.parametrize("name", TEXT_FREE + TEXT_MODELS)
def test_config_round_trip_rebuilds_the_same_architecture(name, tiny_bert_dir):
    model = build(name, tiny_bert_dir, in_chans=3)
    values = json.loads(json.dumps(model.config.to_dict()))  # what config.json stores
    rebuilt = create_model(name, **values)
    assert rebuilt.config == model.config
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes


def test_bad_config_values_are_config_errors(tiny_bert_dir):
    with pytest.raises(ConfigError, match="unknown UNetConfig field"):
        create_model("unet-small", widht=3)
    with pytest.raises(ConfigError, match="UNetPlusPlusConfig.channels"):
        create_model("unetpp-small", channels=[8, 16, 32])
    with pytest.raises(ConfigError, match="UNetConfig.channels"):
        create_model("unet-small", channels=[8, -16])
    with pytest.raises(ConfigError, match="LViTConfig.width"):
        build("lvit-small", tiny_bert_dir, width=10, num_heads=4)


@pytest.mark.parametrize("name", ["unet-small", *TEXT_MODELS])
def test_save_and_load_pretrained_gives_the_same_logits(name, tiny_bert_dir, tmp_path):
    model = build(name, tiny_bert_dir).eval()
    image = torch.rand(2, 1, 64, 80)
    inputs = text_inputs(model, SENTENCES)
    save_pretrained(model, tmp_path / "ckpt")
    loaded = from_pretrained(tmp_path / "ckpt")
    with torch.no_grad():
        torch.testing.assert_close(loaded(image, **inputs), model(image, **inputs), atol=0, rtol=0)


@pytest.mark.parametrize("name", TEXT_FREE + TEXT_MODELS)
def test_flop_counter_runs_at_224(name, tiny_bert_dir):
    model = build(name, tiny_bert_dir).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 1, 224, 224), **text_inputs(model, ["left lung"]))
    assert counter.get_total_flops() > 0


def test_default_presets_have_the_documented_sizes():
    # docs/baselines.md and the presets' docstrings quote these numbers (millions, text encoder excluded)
    expected = {
        "unet": 10.55,
        "unetpp": 36.45,
        "attention-unet": 31.74,
        "late-fusion-unet": 11.34,
        "lvit": 28.29,
    }
    for name, millions in expected.items():
        model = create_model(name)
        text = sum(p.numel() for p in model.text_encoder.parameters()) if model.uses_text else 0
        visual = sum(p.numel() for p in model.parameters()) - text
        assert visual / 1e6 == pytest.approx(millions, abs=0.005), name


def _squares(count: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bright squares on noise: (count, 1, size, size) images and their masks."""
    generator = torch.Generator().manual_seed(0)
    images = 0.2 * torch.rand(count, 1, size, size, generator=generator)
    masks = torch.zeros_like(images)
    for i in range(count):
        y, x = torch.randint(0, size - 12, (2,), generator=generator).tolist()
        masks[i, :, y : y + 12, x : x + 12] = 1
    return images + 0.6 * masks, masks


@pytest.mark.parametrize("name", ["unet-small", "late-fusion-unet-small"])
def test_default_unets_fit_a_small_batch(name, tiny_bert_dir):
    # With num_res_units >= 1 MONAI's UNet ends in a 1-channel residual unit and these presets did not
    # learn at all on the synthetic benchmark (docs/baselines.md); the default must fit 8 squares.
    from lsms.losses import DiceBCELoss

    model = build(name, tiny_bert_dir)
    images, masks = _squares(8, 32)
    inputs = text_inputs(model, ["square"] * 8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    criterion = DiceBCELoss()
    losses = []
    for _ in range(60):
        loss = criterion(model(images, **inputs), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses[::10]
