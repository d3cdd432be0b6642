"""LSMS model: shapes, text handling, ablation switches, gradients, determinism, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.conftest import write_tiny_bert

import lsms
from lsms.errors import CheckpointError, ConfigError
from lsms.models import text_encoder as text_encoder_module
from lsms.models.complexity import count_parameters
from lsms.preprocess import Preprocess


@pytest.fixture(scope="module")
def nano(tiny_bert_dir: Path) -> lsms.models.lsms.LSMS:
    return lsms.create_model("lsms-nano", text_encoder=str(tiny_bert_dir)).eval()


@pytest.mark.parametrize("size", [(224, 224), (200, 224), (97, 131)])
def test_logits_have_input_size_for_batches_with_different_sentence_lengths(nano, size):
    sentences = ["left lung", "a round cyst in the VI segment of the liver with a clear boundary"]
    tokens = nano.tokenize(sentences)
    assert tokens["attention_mask"].sum(1).tolist()[0] < tokens["attention_mask"].sum(1).tolist()[1]
    with torch.no_grad():
        logits = nano(torch.rand(2, 1, *size), **tokens)
    assert logits.shape == (2, 1, *size)
    assert torch.isfinite(logits).all()


def test_padding_does_not_change_logits(tiny_bert_dir):
    model = lsms.create_model("lsms-nano", text_encoder=str(tiny_bert_dir), zero_init_branches=False).eval()
    tokenizer = model.text_encoder.tokenizer
    image = torch.rand(1, 1, 64, 64)
    outputs = []
    for length in (8, 32):
        tokens = tokenizer(
            ["left lung infection"], padding="max_length", max_length=length, return_tensors="pt"
        )
        with torch.no_grad():
            outputs.append(model(image, tokens["input_ids"], tokens["attention_mask"]))
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-5, rtol=0)


def test_different_sentences_give_different_outputs(tiny_bert_dir):
    # zero-initialised branch ends make text irrelevant at step 0, so test a randomly initialised network
    model = lsms.create_model("lsms-nano", text_encoder=str(tiny_bert_dir), zero_init_branches=False).eval()
    image = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        first = model(image, **model.tokenize(["the larger lesion in segment VI"]))
        second = model(image, **model.tokenize(["a small cyst in the left lobe"]))
    assert (first - second).abs().max() > 1e-4


def test_text_free_mode_builds_without_any_text_encoder(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a text-free model must not build a text encoder")

    monkeypatch.setattr(text_encoder_module.TextEncoder, "__init__", refuse)
    model = lsms.create_model("lsms-nano", use_text=False).eval()
    assert not model.uses_text and model.text_encoder is None
    assert not any("language_branch" in name for name, _ in model.named_parameters())
    with torch.no_grad():
        assert model(torch.rand(1, 1, 64, 96)).shape == (1, 1, 64, 96)


def test_text_model_without_text_fails_clearly(nano):
    with pytest.raises(ValueError, match="reads text"):
        nano(torch.rand(1, 1, 64, 64))


def test_too_small_input_fails_clearly(nano):
    with pytest.raises(ValueError, match="at least 64x64"):
        nano(torch.rand(1, 1, 32, 32), **nano.tokenize(["x"]))


ABLATIONS = {
    "paper": {},
    "single-convunit-d5": {"kernel_sizes": (5,)},
    "convunits-1-3": {"kernel_sizes": (7, 21)},
    "no-pixelmap": {"pixel_map": False},
    "no-fsd": {"use_fsd": False},
    "s4-head-mlp": {"decoder_stages": (4,)},
    "mlp-concat-mlp": {"decoder_design": "mlp-concat-mlp", "decoder_stages": (1, 2, 3, 4)},
    "concat-head-mlp-s1234": {"decoder_stages": (1, 2, 3, 4)},
    "mlp-concat-head-mlp": {"decoder_design": "mlp-concat-head-mlp", "decoder_stages": (1, 2, 3, 4)},
    "stages-3-4": {"decoder_stages": (3, 4)},
    "pre-norm": {"block_style": "pre-norm"},
    "post-norm-default-init": {"zero_init_branches": False},
    "text-free": {"use_text": False},
    "trainable-text-encoder": {"freeze_text_encoder": False},
    "sentence-gate": {"sentence_gate": True},
}


@pytest.mark.parametrize("variant", sorted(ABLATIONS))
def test_every_trainable_parameter_receives_a_gradient(tiny_bert_dir, variant):
    model = lsms.create_model("lsms-nano", text_encoder=str(tiny_bert_dir), **ABLATIONS[variant]).train()
    image = torch.rand(2, 1, 64, 64)
    text = model.tokenize(["left lung", "right lobe lesion"]) if model.uses_text else {}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    # Zero-initialised branch ends pass no gradient upstream at step 0: take one step first.
    for _ in range(2):
        optimizer.zero_grad()
        model(image, **text).sigmoid().mean().backward()
        optimizer.step()
    without = [
        n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())
    ]
    assert without == []
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert all(n.startswith("text_encoder.") for n in frozen)
    assert bool(frozen) == (model.uses_text and ABLATIONS[variant].get("freeze_text_encoder", True))


def test_eval_mode_is_deterministic(nano):
    image, tokens = torch.rand(2, 1, 64, 80), nano.tokenize(["left lung", "right lung"])
    with torch.no_grad():
        torch.testing.assert_close(nano(image, **tokens), nano(image, **tokens), atol=0, rtol=0)


def test_word_features_path_equals_token_path(nano):
    image, tokens = torch.rand(2, 1, 64, 64), nano.tokenize(["left lung", "a cyst in segment II"])
    with torch.no_grad():
        features, mask = nano.encode_text(**tokens)
        torch.testing.assert_close(nano(image, **tokens), nano(image, word_features=features, word_mask=mask))


def test_return_features_gives_four_stages(nano):
    with torch.no_grad():
        _, features = nano(torch.rand(1, 1, 128, 128), **nano.tokenize(["x"]), return_features=True)
    assert [f.shape[-1] for f in features] == [32, 16, 8, 4]


def test_save_load_round_trip_gives_identical_logits(nano, tmp_path):
    folder = nano.save_pretrained(tmp_path / "ckpt", preprocess={"image_size": [64, 64]})
    loaded = lsms.from_pretrained(folder)
    image, tokens = torch.rand(1, 1, 64, 64), nano.tokenize(["left lung"])
    with torch.no_grad():
        torch.testing.assert_close(nano(image, **tokens), loaded(image, **tokens), atol=0, rtol=0)
    assert loaded.preprocess == Preprocess(image_size=(64, 64))
    assert loaded.config.embed_dims == nano.config.embed_dims


def test_truncated_weights_fail_clearly(nano, tmp_path):
    folder = nano.save_pretrained(tmp_path / "ckpt")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        lsms.from_pretrained(folder)


def test_mismatched_weights_fail_clearly(nano, tmp_path):
    folder = nano.save_pretrained(tmp_path / "ckpt")
    config_path = folder / "config.json"
    metadata = json.loads(config_path.read_text())
    metadata["config"]["embed_dims"] = [16, 32, 64, 128]
    config_path.write_text(json.dumps(metadata))
    with pytest.raises(CheckpointError, match="do not match"):
        lsms.from_pretrained(folder)


def test_missing_checkpoint_folder_fails_clearly(tmp_path):
    with pytest.raises(CheckpointError, match="not an lsms checkpoint"):
        lsms.from_pretrained(tmp_path / "nowhere")


def test_format_1_checkpoints_of_the_default_preset_load_aligned_at_f1(tiny_bert_dir, tmp_path):
    # Before format 2 the FSD always ran at F1; the `lsms` preset's default is F2 now.
    small = {"embed_dims": (8, 16, 24, 32), "depths": (1, 1, 1, 1), "decoder_channels": 32}
    model = lsms.create_model("lsms", text_encoder=str(tiny_bert_dir), decoder_align_stage=1, **small)
    folder = model.save_pretrained(tmp_path / "old")
    metadata = json.loads((folder / "config.json").read_text())
    del metadata["config"]["decoder_align_stage"]
    metadata["format_version"] = 1
    (folder / "config.json").write_text(json.dumps(metadata))
    assert lsms.from_pretrained(folder).config.decoder_align_stage == 1
    metadata["format_version"] = 2  # a current checkpoint without the field takes the preset's default
    (folder / "config.json").write_text(json.dumps(metadata))
    assert lsms.from_pretrained(folder).config.decoder_align_stage == 2


def test_registry_lists_presets_and_rejects_unknown_names():
    assert {"lsms", "lsms-f1", "lsms-table1", "lsms-nano"} <= set(lsms.list_models())
    with pytest.raises(KeyError, match="unknown model"):
        lsms.create_model("lsms-huge")


def test_a_registered_model_can_be_unregistered():
    from lsms.models.registration import register_model, unregister_model

    register_model("throwaway")(lambda: torch.nn.Identity())
    assert "throwaway" in lsms.list_models()
    unregister_model("throwaway")
    assert "throwaway" not in lsms.list_models()
    with pytest.raises(KeyError, match="'throwaway' is not registered"):
        unregister_model("throwaway")


def test_config_is_json_serialisable(nano):
    restored = type(nano.config).from_dict(json.loads(json.dumps(nano.config.to_dict())))
    assert restored == nano.config


def test_default_preset_matches_the_papers_parameter_count(tmp_path):
    # The paper's 8.78M excludes BERT-base but includes the 768 -> C_vi word projections of every block.
    bert_base_width = write_tiny_bert(tmp_path / "bert768", hidden_size=768, intermediate_size=768)
    params = count_parameters(lsms.create_model("lsms", text_encoder=str(bert_base_width)))
    assert abs(params["visual"] / 8.78e6 - 1) < 0.10


def test_truncated_sentences_warn(tiny_bert_dir):
    model = lsms.create_model("lsms-nano", text_encoder=str(tiny_bert_dir), max_length=8)
    with pytest.warns(UserWarning, match="truncated"):
        tokens = model.tokenize(["a vascular tumor in the VI segment of the liver with a clear boundary"])
    assert tokens["input_ids"].shape[1] == 8


def test_newer_checkpoint_formats_are_refused_in_one_line(nano, tmp_path):
    folder = nano.save_pretrained(tmp_path / "ckpt")
    config_path = folder / "config.json"
    metadata = json.loads(config_path.read_text())
    assert metadata["preprocess"] == {"image_size": [224, 224], "window": None}  # the preset's default
    metadata["format_version"] = 99
    config_path.write_text(json.dumps(metadata))
    with pytest.raises(CheckpointError, match=r"config.json: checkpoint format_version 99 is newer"):
        lsms.from_pretrained(folder)


def test_checkpoints_saved_without_preprocess_predict_at_the_preset_size(nano, tmp_path):
    folder = nano.save_pretrained(tmp_path / "ckpt")
    config_path = folder / "config.json"
    metadata = json.loads(config_path.read_text())
    metadata["preprocess"] = {}
    config_path.write_text(json.dumps(metadata))
    assert lsms.from_pretrained(folder).preprocess == Preprocess((224, 224))
    metadata["preprocess"] = {"image_size": "big"}
    config_path.write_text(json.dumps(metadata))
    with pytest.raises(CheckpointError, match="config.json: field 'preprocess'"):
        lsms.from_pretrained(folder)


def test_sentence_gate_starts_as_identity_and_then_reads_the_sentence(tiny_bert_dir):
    torch.manual_seed(0)
    plain = lsms.create_model("lsms-nano", text_encoder=str(tiny_bert_dir), zero_init_branches=False).eval()
    gated = lsms.create_model(
        "lsms-nano", text_encoder=str(tiny_bert_dir), zero_init_branches=False, sentence_gate=True
    ).eval()
    missing, unexpected = gated.load_state_dict(plain.state_dict(), strict=False)
    assert unexpected == [] and missing and all(k.startswith("sentence_gates.") for k in missing)
    image = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    text = gated.tokenize(["the irregular lesion", "the irregular lesion"])
    with torch.no_grad():
        assert torch.equal(gated(image, **text), plain(image, **text))  # zero-initialised: the identity
        for gate in gated.sentence_gates:
            gate.project.weight.normal_(0, 0.5)
        same_image = image[:1].expand(2, -1, -1, -1)
        two_sentences = gated.tokenize(["the irregular lesion", "a smooth round cyst"])
        first, second = gated(same_image, **two_sentences)
    assert (first - second).abs().max() > 1e-3  # the pooled sentence changes every stage


def test_sentence_gate_needs_text():
    with pytest.raises(ConfigError, match="sentence_gate"):
        lsms.create_model("lsms-nano", use_text=False, sentence_gate=True)
