"""Preprocess: the config.json form (old and new) and the [0, 1] rule shared by files and arrays."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lsms.data.io import CTWindow, load_image
from lsms.errors import ConfigError, DataError
from lsms.preprocess import Preprocess, parse_image_size


@pytest.mark.parametrize(
    ("saved", "expected"),
    [
        ({"image_size": [64, 64]}, Preprocess((64, 64))),
        ({"image_size": [64, 96], "window": None}, Preprocess((64, 96))),
        ({"image_size": [480, 480], "window": "liver"}, Preprocess((480, 480), CTWindow(60, 400))),
        ({"image_size": [32, 32], "window": "40,400"}, Preprocess((32, 32), CTWindow(40, 400))),
        ({"image_size": [32, 32], "window": [40, 400]}, Preprocess((32, 32), CTWindow(40, 400))),
    ],
)
def test_saved_forms_load_and_round_trip(saved: dict, expected: Preprocess) -> None:
    loaded = Preprocess.from_dict(saved)
    assert loaded == expected
    assert Preprocess.from_dict(loaded.to_dict()) == loaded


def test_to_dict_is_the_historical_form() -> None:
    assert Preprocess((64, 64)).to_dict() == {"image_size": [64, 64], "window": None}
    assert Preprocess((8, 9), CTWindow(60, 400)).to_dict() == {"image_size": [8, 9], "window": [60, 400]}


def test_missing_size_takes_the_default_or_fails() -> None:
    assert Preprocess.from_dict({}, default_size=(224, 224)) == Preprocess((224, 224))
    assert Preprocess.from_dict({"window": "lung"}, default_size=(5, 5)).window == CTWindow(-600, 1500)
    with pytest.raises(ConfigError, match="no image_size"):
        Preprocess.from_dict(None)


def test_override_keeps_what_is_not_given() -> None:
    base = Preprocess((64, 64), CTWindow(60, 400))
    assert base.override() == base
    assert base.override(image_size=32) == Preprocess((32, 32), CTWindow(60, 400))
    assert base.override(window="lung").window == CTWindow(-600, 1500)


@pytest.mark.parametrize("bad", [0, [1, 2, 3], [-4], [], "ab", None])
def test_bad_sizes_name_their_key(bad: object) -> None:
    with pytest.raises(ConfigError, match="--image-size"):
        parse_image_size(bad, "--image-size")


def test_arrays_and_files_are_scaled_alike(tmp_path) -> None:
    pixels = np.arange(0, 256 * 4, 4, dtype=np.uint16).reshape(16, 16)
    path = tmp_path / "x.png"
    Image.fromarray(pixels).save(path)
    preprocess = Preprocess((16, 16))
    np.testing.assert_array_equal(preprocess.read(pixels), load_image(path))
    np.testing.assert_array_equal(preprocess.read(path), load_image(path))
    with pytest.raises(DataError, match=r"image array: float pixels in \[-1, 2\]"):
        preprocess.read(np.array([[-1.0, 2.0]], dtype=np.float32))


def test_batch_resizes_to_the_input_size() -> None:
    batch = Preprocess((8, 12)).batch([np.zeros((16, 16), np.float32), np.ones((4, 4), np.float32)])
    assert batch.shape == (2, 1, 8, 12) and float(batch[1].min()) == 1.0
