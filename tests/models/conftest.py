"""Fixtures of the model tests."""

from __future__ import annotations

import pytest

from neurofit.models.catalog import ARCHITECTURES


@pytest.fixture(params=ARCHITECTURES)
def architecture(request: pytest.FixtureRequest) -> str:
    return request.param
