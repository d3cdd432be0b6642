from __future__ import annotations

import numpy as np
import pytest

from lsms.data.transforms import (
    AugmentConfig,
    augment,
    random_affine,
    resize_image,
    resize_mask,
    swap_left_right,
)


def test_mask_resize_is_nearest_and_does_not_dilate() -> None:
    mask = np.zeros((8, 8), bool)
    mask[2:4, 2:4] = True
    up = resize_mask(mask, (16, 16))
    assert up.dtype == bool and up.sum() == 16 and up[4:8, 4:8].all()
    down = resize_mask(up, 8)
    np.testing.assert_array_equal(down, mask)
    assert resize_mask(np.ones((7, 9), bool), (4, 5)).all()


def test_image_resize_bilinear_stays_in_range() -> None:
    image = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    out = resize_image(image, (16, 12))
    assert out.shape == (16, 12) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert np.all(np.diff(out[:, 0]) >= 0)  # monotone ramp stays monotone (interpolated, not sorted)
    assert np.array_equal(resize_image(image, 8), image)


def test_swap_left_right_keeps_case_and_whole_words() -> None:
    assert (
        swap_left_right("Left lung and RIGHT lung, leftover right.")
        == "Right lung and LEFT lung, leftover left."
    )


def test_flip_swaps_sides_and_is_seeded() -> None:
    image = np.zeros((4, 6), np.float32)
    image[:, 0] = 1.0
    mask = np.zeros((4, 6), bool)
    mask[:, 0] = True
    config = AugmentConfig(hflip=1.0, brightness=0.0, contrast=0.0, gamma=0.0)
    flipped, flipped_mask, text = augment(
        image, mask, "lesion in the left lung", config, np.random.default_rng(0)
    )
    assert flipped[:, -1].all() and flipped_mask[:, -1].all() and not flipped_mask[:, 0].any()
    assert text == "lesion in the right lung"
    jitter = AugmentConfig()
    a = augment(image + 0.3, mask, "x", jitter, np.random.default_rng(5))[0]
    b = augment(image + 0.3, mask, "x", jitter, np.random.default_rng(5))[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, np.clip(image + 0.3, 0, 1))  # jitter changed intensities
    unchanged = augment(image, mask, "left", jitter, np.random.default_rng(5))
    assert unchanged[2] == "left" and np.array_equal(unchanged[1], mask)  # flip is off by default


def test_affine_moves_image_and_mask_together_and_keeps_the_mask_binary() -> None:
    image = np.zeros((64, 64), np.float32)
    mask = np.zeros((64, 64), bool)
    image[24:40, 8:24], mask[24:40, 8:24] = 1.0, True
    same_image, same_mask = random_affine(image, mask, angle=0.0, zoom=1.0, shift=(0.0, 0.0))
    np.testing.assert_allclose(same_image, image, atol=1e-5)
    assert np.array_equal(same_mask, mask)
    moved_image, moved_mask = random_affine(image, mask, angle=0.0, zoom=1.0, shift=(0.25, 0.0))
    assert moved_mask.dtype == bool and np.array_equal(moved_mask, np.roll(mask, 16, axis=1))  # right by W/4
    np.testing.assert_allclose(moved_image, np.roll(image, 16, axis=1), atol=1e-5)
    turned_image, turned_mask = random_affine(image, mask, angle=90.0, zoom=1.0, shift=(0.0, 0.0))
    assert turned_mask.sum() == mask.sum() and not np.array_equal(turned_mask, mask)
    assert np.array_equal(turned_mask, turned_image > 0.5)


def test_augment_config_checks_its_ranges() -> None:
    assert not AugmentConfig().has_affine and AugmentConfig(rotate=5).has_affine
    with pytest.raises(ValueError, match="rotate: expected a value in \\[0, 180\\]"):
        AugmentConfig(rotate=-1)


def test_dataset_takes_the_config_mapping(tmp_path) -> None:
    from tests.training.conftest import write_tiny_dataset

    from lsms.data.dataset import ReferringDataset
    from lsms.data.loading import load_samples

    samples = load_samples(write_tiny_dataset(tmp_path, n_train=2, n_val=0), split="train")
    flipped = ReferringDataset(samples, image_size=64, augment={"hflip": 1.0, "rotate": 5})[0]
    plain = ReferringDataset(samples, image_size=64)[0]
    assert flipped["text"] == swap_left_right(plain["text"]) != plain["text"]
    assert set(flipped["mask"].unique().tolist()) <= {0.0, 1.0}
