"""Frozen-text cache: one encoder pass per distinct sentence, padded batches equal to fresh encoding."""

from __future__ import annotations

import pytest
import torch

import lsms.registry
from lsms.training.text_cache import TextFeatureCache

SENTENCES = [
    "one lesion in the upper left part",
    "lesion",
    "one lesion in the upper left part",
    "two lesions",
]


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return lsms.registry.create_model("lsms-nano").eval()


def test_features_match_the_encoder_and_are_cached(model: torch.nn.Module) -> None:
    cache = TextFeatureCache(model)
    features, mask = cache.features(SENTENCES)
    tokens = model.tokenize(SENTENCES)
    expected, expected_mask = model.encode_text(tokens["input_ids"], tokens["attention_mask"])
    assert features.shape == expected.shape and torch.equal(mask, expected_mask)  # padded to the longest
    valid = mask.bool()
    assert torch.allclose(features[valid], expected[valid], atol=1e-5)
    assert torch.all(features[~valid] == 0)
    assert (len(cache), cache.misses, cache.hits) == (3, 3, 1)
    again, _ = cache.features(SENTENCES[1:2])
    assert again.shape[1] == int(mask[1].sum()) and cache.hits == 2  # padded to this batch's longest only


def test_cached_features_give_the_same_logits(model: torch.nn.Module) -> None:
    image = torch.rand(len(SENTENCES), 1, 64, 64, generator=torch.Generator().manual_seed(1))
    tokens = model.tokenize(SENTENCES)
    features, mask = TextFeatureCache(model).features(SENTENCES)
    with torch.no_grad():
        fresh = model(image, tokens["input_ids"], tokens["attention_mask"])
        cached = model(image, word_features=features, word_mask=mask)
    assert torch.allclose(fresh, cached, atol=1e-4)


def test_trainable_or_missing_text_encoder_is_refused() -> None:
    text_free = lsms.registry.create_model("lsms-nano", use_text=False)
    with pytest.raises(ValueError, match="frozen"):
        TextFeatureCache(text_free)
