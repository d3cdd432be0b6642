"""Text variants: derangement properties, seeding, and the sentence each variant gives."""

from pathlib import Path

import pytest

from lsms.data.samples import ReferringSample, partial_text
from lsms.errors import ConfigError
from lsms.evaluation.text_variants import apply_text_variant, derangement


def _samples(n):
    return [
        ReferringSample(
            id=f"s{i}",
            image=Path(f"/x/{i}.png"),
            mask=Path(f"/x/m{i}.png"),
            text=f"lesion {i}, size {i} mm, round shape, left lobe.",
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("n", [2, 3, 5, 50])
def test_derangement_has_no_fixed_points_and_is_a_permutation(n):
    for seed in range(20):
        order = derangement(n, seed)
        assert sorted(order) == list(range(n))
        assert all(source != i for i, source in enumerate(order))


def test_derangement_is_seeded():
    assert derangement(30, 7) == derangement(30, 7)
    assert derangement(30, 7) != derangement(30, 8)
    assert derangement(2, 0) == [1, 0]


def test_derangement_needs_two_samples():
    with pytest.raises(ConfigError, match="at least 2"):
        derangement(1, 0)


def test_variants():
    samples = _samples(6)
    assert apply_text_variant(samples, "full") == [s.text for s in samples]
    assert apply_text_variant(samples, "none") == [""] * 6
    shuffled = apply_text_variant(samples, "shuffled", seed=3)
    assert sorted(shuffled) == sorted(s.text for s in samples)
    assert all(text != s.text for text, s in zip(shuffled, samples, strict=True))
    assert shuffled == apply_text_variant(samples, "shuffled", seed=3)
    half = apply_text_variant(samples, "half")
    quarter = apply_text_variant(samples, "quarter")
    assert half == [partial_text(s, "half") for s in samples]  # the data layer's clause dropping
    assert all(len(q) <= len(h) < len(s.text) for q, h, s in zip(quarter, half, samples, strict=True))


def test_manifest_partial_text_is_used_and_unknown_variant_fails():
    sample = ReferringSample(
        id="a",
        image=Path("/a.png"),
        mask=Path("/m.png"),
        text="a, b, c, d.",
        text_half="given half",
        text_quarter="given quarter",
    )
    assert apply_text_variant([sample], "half") == ["given half"]
    assert apply_text_variant([sample], "quarter") == ["given quarter"]
    with pytest.raises(ConfigError, match="text variant"):
        apply_text_variant([sample], "eighth")
