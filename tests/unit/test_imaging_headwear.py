"""Headwear is judged by shape and texture, not colour: a bounded labelled set (tests/support/imaging_sets.py).

Bare heads (the package faces, their hair recoloured black, grey and dyed blue) pass; caps, beanies,
brimmed hats and berets drawn in hair-like colours, Grace Hopper's cap and her cap repainted grey or
black are refused or flagged for the review (head_proportions: a hat too tall to place the head). The
full set and its precision/recall are in bench/RESULTS.md (python -m bench.imaging.sets).
"""

from __future__ import annotations

import numpy as np
import pytest

from services.imaging.config import PhotoStandard
from services.imaging.pipeline import check_photo
from services.imaging.preprocess import FaceModels
from tests.support import imaging_sets
from tests.support.faces import jpeg

STANDARD = PhotoStandard()


@pytest.fixture(scope="module")
def labelled(models: FaceModels) -> list[tuple[str, np.ndarray, bool]]:
    return imaging_sets.headwear_set(models, small=True)


def test_the_set_is_balanced_and_bounded(labelled: list[tuple[str, np.ndarray, bool]]) -> None:
    hats = [name for name, _, hat in labelled if hat]
    bare = [name for name, _, hat in labelled if not hat]
    assert 10 <= len(hats) <= 20 and 10 <= len(bare) <= 14
    assert {"hopper-cap", "hopper-cap-grey", "hopper-cap-black"} <= set(hats)
    assert any(name.startswith("hair-blue-dyed") for name in bare)


def test_hair_passes_and_hats_do_not(
    models: FaceModels, labelled: list[tuple[str, np.ndarray, bool]]
) -> None:
    wrong = []
    for name, rgb, hat in labelled:
        report = check_photo(jpeg(rgb), models, standard=STANDARD)
        codes = set(report.reasons) | set(report.flags)
        caught = bool(codes & {"headwear", "head_proportions"})
        if caught != hat:
            wrong.append((name, report.reasons, report.flags))
        if not hat:  # whatever their colour, bare heads are never refused for a hat
            assert "headwear" not in report.reasons and "headwear" not in report.flags, name
    assert wrong == []
