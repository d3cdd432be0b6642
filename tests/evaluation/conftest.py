"""Fixtures for evaluation tests (the fake model and PNG samples live in eval_fixtures.py)."""

import pytest
from eval_fixtures import FakeReferringModel, write_samples

from lsms.data.samples import ReferringSample


@pytest.fixture
def samples(tmp_path) -> list[ReferringSample]:
    return write_samples(tmp_path / "data")


@pytest.fixture
def fake_model() -> FakeReferringModel:
    return FakeReferringModel()
