"""The wrong-lesion rate on tiny generated synthetic data: which lesions share a slice, and a model that
answers with a chosen lesion's mask."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from lsms.data.io import load_mask
from lsms.data.loading import load_samples
from lsms.data.samples import ReferringSample
from lsms.data.synth import generate_dataset
from lsms.evaluation import evaluate
from lsms.evaluation.referring import LESIONS_CSV, load_lesion_map
from lsms.predictor import Predictor

SIZE = 64


class MaskLookupModel(nn.Module):
    """Answers each sentence with a fixed mask (logit +10 inside, -10 outside), whatever the image."""

    uses_text = True

    def __init__(self, answers: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.sentences = list(answers)
        self.masks = torch.stack([torch.from_numpy(answers[s]) for s in self.sentences])
        self.dummy = nn.Parameter(torch.zeros(()))  # gives evaluate() a device

    def tokenize(self, sentences: list[str]) -> dict[str, torch.Tensor]:
        ids = torch.tensor([[self.sentences.index(s)] for s in sentences])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def forward(self, image, input_ids, attention_mask):
        return torch.where(self.masks[input_ids[:, 0]], 10.0, -10.0)[:, None].float()


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    return generate_dataset(
        root, cases=3, size=SIZE, seed=3, volume_size=192, min_lesion_px=20, write_volumes=False
    )


def _samples(manifest: Path) -> list[ReferringSample]:
    """The generated rows, each sentence replaced by its id: the lookup model's answers need unique keys."""
    return [replace(sample, text=sample.id) for sample in load_samples(manifest)]


def _slice_of(sample: ReferringSample) -> str:
    return sample.id.rsplit("_l", 1)[0]  # <case>_z<k>


def _evaluate(samples: list[ReferringSample], answers: dict[str, np.ndarray], manifest: Path):
    predictor = Predictor(MaskLookupModel(answers), image_size=(SIZE, SIZE))
    return evaluate(predictor, samples, progress=False, lesions=load_lesion_map(manifest, samples))


def test_lesion_map_lists_the_other_lesions_of_each_slice_even_for_a_subset(synth):
    samples = _samples(synth)
    lesion_map = load_lesion_map(synth, samples[:2])
    for sample in samples:
        same_slice = {s.mask for s in samples if _slice_of(s) == _slice_of(sample) and s is not sample}
        assert {path for path, _ in lesion_map.others[sample.id]} == same_slice
    assert any(len(others) >= 2 for others in lesion_map.others.values())


def test_right_lesion_is_never_wrong_and_another_lesion_always_is(synth):
    samples = _samples(synth)
    right = {s.text: load_mask(s.mask) for s in samples}
    result = _evaluate(samples, right, synth)
    assert result.means["dice"] == 1.0 and result.means["wrong_lesion"] == 0.0
    # Answer every sentence with the mask of the next lesion of its slice (itself when it is alone).
    answers, expected = {}, []
    for sample in samples:
        neighbours = [s for s in samples if _slice_of(s) == _slice_of(sample)]
        other = neighbours[(neighbours.index(sample) + 1) % len(neighbours)]
        answers[sample.text] = load_mask(other.mask)
        expected.append(other is not sample)
    result = _evaluate(samples, answers, synth)
    assert [row["wrong_lesion"] for row in result.per_sample] == expected
    assert result.means["wrong_lesion"] == pytest.approx(np.mean(expected))
    assert 0 < np.mean(expected) < 1  # the data have slices with one lesion and slices with several
    assert "| wrong lesion (%) |" in result.markdown_table()


def test_no_lesion_table_means_no_wrong_lesion_rate(synth, tmp_path):
    samples = _samples(synth)
    answers = {s.text: load_mask(s.mask) for s in samples}
    (synth.parent / LESIONS_CSV).rename(tmp_path / LESIONS_CSV)
    try:
        assert load_lesion_map(synth, samples) is None
        result = _evaluate(samples, answers, synth)
    finally:
        (tmp_path / LESIONS_CSV).rename(synth.parent / LESIONS_CSV)
    assert "wrong_lesion" not in result.means and "wrong_lesion" not in result.per_sample[0]
    assert "wrong lesion" not in result.markdown_table()


def test_a_lesion_table_that_misses_samples_gives_no_map(synth, tmp_path):
    stranger = ReferringSample(id="elsewhere", image=synth, mask=synth, text="x")
    assert load_lesion_map(synth, [*_samples(synth), stranger]) is None
