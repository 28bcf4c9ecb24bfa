"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.imaging.preprocess import FaceModels, ModelPool


@pytest.fixture(scope="module")
def models() -> Iterator[FaceModels]:
    """One set of imaging's face models (mediapipe graphs) per test module, closed afterwards."""
    pool = ModelPool(1)
    with pool.borrow() as m:
        yield m
    pool.close()
