from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from data_helpers import write_png
from torch.utils.data import DataLoader

from lsms.data.dataset import ReferringDataset, collate_referring
from lsms.data.lesions import load_slice_facts
from lsms.data.loading import load_samples
from lsms.data.manifest import write_manifest
from lsms.data.synth.expressions import refers_to
from lsms.data.transforms import AugmentConfig
from lsms.errors import DataError


def test_items_and_collate(qata_like: Path) -> None:
    dataset = ReferringDataset(load_samples(qata_like, "train"), image_size=(16, 24))
    item = dataset[1]
    assert item["image"].shape == (1, 16, 24) and item["image"].dtype == torch.float32
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert set(torch.unique(item["mask"]).tolist()) == {0.0, 1.0}
    assert item["id"] == "covid_2" and item["index"] == 1 and item["text"].endswith("lower left lung.")
    batch = next(iter(DataLoader(dataset, batch_size=3, collate_fn=collate_referring)))
    assert batch["image"].shape == (3, 1, 16, 24) and batch["mask"].shape == (3, 1, 16, 24)
    assert batch["id"] == ["covid_1", "covid_2", "covid_3"] and batch["index"].tolist() == [0, 1, 2]
    assert isinstance(batch["text"], list) and len(batch["text"]) == 3


def test_text_variant_and_seeded_augmentation(qata_like: Path) -> None:
    samples = load_samples(qata_like, "train")
    half = ReferringDataset(samples, image_size=32, text_variant="half")
    assert half[0]["text"] == "Bilateral pulmonary infection, two infected areas."
    flip = AugmentConfig(hflip=1.0)
    a = ReferringDataset(samples, image_size=32, augment=flip, seed=3)
    b = ReferringDataset(samples, image_size=32, augment=flip, seed=3)
    assert torch.equal(a[0]["image"], b[0]["image"]) and "right lung" in a[0]["text"]
    assert a[0]["text"].endswith("midlle right lung and lower left lung.")
    plain = ReferringDataset(samples, image_size=32)[0]
    assert torch.equal(a[0]["mask"], plain["mask"].flip(-1))
    a.set_epoch(1)
    assert not torch.equal(a[0]["image"], b[0]["image"])
    with pytest.raises(DataError, match="text variant"):
        ReferringDataset(samples, text_variant="some")


def test_size_mismatch_is_a_data_error(tmp_path: Path) -> None:
    image = write_png(tmp_path / "i.png", np.zeros((32, 32), np.uint8))
    mask = write_png(tmp_path / "m.png", np.full((16, 16), 255, np.uint8))
    path = write_manifest([{"image": image, "mask": mask, "text": "x", "id": "r1"}], tmp_path / "m.csv")
    with pytest.raises(DataError, match=r"sample r1: mask m.png is 16x16 but image i.png is 32x32"):
        ReferringDataset(load_samples(path), image_size=16)[0]


def test_volume_rows_use_their_slice(tmp_path: Path) -> None:
    import nibabel as nib

    volume = np.zeros((8, 8, 4), np.int16)  # an RAS file: (i, j, k)
    volume[..., 2] = 500
    labels = np.zeros((8, 8, 4), np.uint8)
    labels[1:3, 1:3, 2] = 1
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(volume, affine), tmp_path / "ct.nii.gz")
    nib.save(nib.Nifti1Image(labels, affine), tmp_path / "seg.nii.gz")
    rows = [
        {"image": "ct.nii.gz", "mask": "seg.nii.gz", "text": "lesion", "slice": z, "case_id": "c"}
        for z in (1, 2)
    ]
    dataset = ReferringDataset(
        load_samples(write_manifest(rows, tmp_path / "m.jsonl")), image_size=8, window="0,1000"
    )
    assert dataset[0]["mask"].sum() == 0 and dataset[0]["image"].max() == 0.5
    assert dataset[1]["mask"].sum() == 4 and dataset[1]["image"].min() == 1.0


def _texts_per_epoch(dataset: ReferringDataset, epochs: int) -> list[list[str]]:
    """The items' sentences at each epoch; reading an epoch twice gives the same draw."""
    drawn = []
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        texts = [dataset[i]["text"] for i in range(len(dataset))]
        assert texts == [dataset[i]["text"] for i in range(len(dataset))]
        drawn.append(texts)
    return drawn


def test_mixed_text_variant_draws_all_expressions_reproducibly(qata_like: Path) -> None:
    samples = load_samples(qata_like, split="train")
    expressions = {
        variant: [ReferringDataset(samples, 32, text_variant=variant)[i]["text"] for i in range(len(samples))]
        for variant in ("full", "half", "quarter")
    }
    drawn = _texts_per_epoch(ReferringDataset(samples, 32, text_variant="mixed", seed=3), 6)
    for texts in drawn:
        for i, text in enumerate(texts):
            assert text in {expressions[v][i] for v in expressions}
    flat = [(i, text) for texts in drawn for i, text in enumerate(texts)]
    for variant in ("full", "quarter"):  # over 6 epochs each kind of expression is drawn
        assert any(
            text == expressions[variant][i] != expressions["full" if variant != "full" else "half"][i]
            for i, text in flat
        )


def test_sampled_text_variant_draws_unique_fresh_expressions_reproducibly(tiny_synth: Path) -> None:
    samples = load_samples(tiny_synth, split="train")
    facts = load_slice_facts(tiny_synth)
    drawn = _texts_per_epoch(
        ReferringDataset(samples, 32, text_variant="sampled", seed=3, slice_facts=facts), 6
    )
    for texts in drawn:
        for sample, text in zip(samples, texts, strict=True):  # each refers to its lesion only
            lesions, index = facts[sample.id]
            assert refers_to(list(lesions), index, text), text
    again = ReferringDataset(samples, 32, text_variant="sampled", seed=3, slice_facts=facts)
    again.set_epoch(5)
    assert [again[i]["text"] for i in range(len(samples))] == drawn[5]  # a new dataset (a resume) repeats
    per_item = [{texts[i] for texts in drawn} for i in range(len(samples))]
    assert sum(len(texts) for texts in per_item) > 2 * len(samples)  # sentences vary across epochs
    fixed = {t for s in samples for t in (s.text, s.text_half, s.text_quarter)}
    assert any(text not in fixed for texts in per_item for text in texts)  # beyond the manifest's three


def test_sampled_text_variant_needs_lesion_facts(tiny_synth: Path) -> None:
    samples = load_samples(tiny_synth, split="train")
    with pytest.raises(DataError, match="needs a lesions.csv"):
        ReferringDataset(samples, 32, text_variant="sampled")
