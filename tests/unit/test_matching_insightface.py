"""The insightface engine's loading and pre-processing, on a tiny pack the test builds itself.

The tiny models prove the wiring, not accuracy: the pack is found and routed like insightface's
FaceAnalysis does, and boxes, landmarks, aligned crops and embeddings equal those of insightface
itself (installed for the tests, without its dependencies) on the same pack and image.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from services.matching.compare import FaceRules, compare_photos
from services.matching.config import MatchingSettings
from services.matching.engines import EngineUnavailable, InsightFaceEngine, arcface_matrix, engine_for
from tests.support import onnx_pack
from tests.support.matching_faces import jpeg, png


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return onnx_pack.build_pack(tmp_path_factory.mktemp("packs") / "tiny_l")


@pytest.fixture(scope="module")
def single_face_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return onnx_pack.build_pack(tmp_path_factory.mktemp("packs") / "tiny_s", quiet_strides=(8, 16))


def test_the_engine_matches_insightface_itself(pack: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # insightface's own deprecation warnings (scikit-image)
        from insightface.app import FaceAnalysis

        reference = FaceAnalysis(name=str(pack), providers=["CPUExecutionProvider"])
        reference.prepare(ctx_id=-1, det_size=(640, 640))
        image = onnx_pack.bright_faces_image()
        # insightface works on OpenCV's BGR images; the engine on RGB.
        expected = sorted(reference.get(np.ascontiguousarray(image[..., ::-1])), key=lambda f: tuple(f.bbox))
    engine = InsightFaceEngine(pack, det_size=640)
    found = sorted(engine.detect(image), key=lambda f: (f.x, f.y, f.x + f.width, f.y + f.height))
    assert len(found) == len(expected) > 1
    for ours, theirs in zip(found, expected, strict=True):
        box = np.array([ours.x, ours.y, ours.x + ours.width, ours.y + ours.height])
        np.testing.assert_allclose(box, theirs.bbox, atol=1e-3)
        assert ours.score == pytest.approx(float(theirs.det_score), abs=1e-6)
        assert ours.landmarks is not None
        np.testing.assert_allclose(ours.landmarks, theirs.kps, atol=1e-3)
        embedding = engine.embed(engine.align(image, ours))
        np.testing.assert_allclose(embedding, theirs.embedding, rtol=1e-4, atol=1e-3)


def test_alignment_is_insightfaces_norm_crop() -> None:
    from skimage.transform import SimilarityTransform

    rng = np.random.default_rng(5)
    for _ in range(20):
        landmarks = onnx_pack.KPS_PATTERN.reshape(5, 2) * rng.uniform(20, 80) + rng.uniform(0, 400, 2)
        landmarks += rng.normal(0, 2, landmarks.shape)
        for size in (112, 128):
            ratio = size / 112.0 if size % 112 == 0 else size / 128.0
            dst = (
                np.array(
                    [
                        [38.2946, 51.6963],
                        [73.5318, 51.5014],
                        [56.0252, 71.7366],
                        [41.5493, 92.3655],
                        [70.7299, 92.2041],
                    ]
                )
                * ratio
            )
            if size % 112:
                dst[:, 0] += 8.0 * ratio
            expected = SimilarityTransform.from_estimate(landmarks, dst).params[:2]
            np.testing.assert_allclose(arcface_matrix(landmarks, size), expected, rtol=1e-5, atol=1e-4)


def test_pack_routing_ignores_other_models_and_names_the_weights(tmp_path: Path) -> None:
    mixed = onnx_pack.build_pack(tmp_path / "buffalo_like")
    # Sorted before the detector and recogniser, as in buffalo_l: landmark and gender/age models.
    onnx_pack.build_other(mixed / "1k3d68.onnx", 192)
    onnx_pack.build_other(mixed / "genderage.onnx", 96)
    engine = InsightFaceEngine(mixed)
    assert engine.model.startswith("buffalo_like/w_tiny@") and len(engine.model.split("@")[1]) == 12
    assert engine.name == "insightface" and not engine.license_present


def test_a_pack_that_cannot_work_is_refused_at_load(tmp_path: Path, pack: Path) -> None:
    with pytest.raises(EngineUnavailable, match=r"no \.onnx"):
        InsightFaceEngine(tmp_path)
    only_detector = tmp_path / "det_only"
    only_detector.mkdir()
    onnx_pack.build_detector(only_detector / "det.onnx")
    with pytest.raises(EngineUnavailable, match="lacks"):
        InsightFaceEngine(only_detector)
    with pytest.raises(EngineUnavailable, match=r"MODEL\.LICENSE"):
        InsightFaceEngine(pack, require_license=True)
    licensed = onnx_pack.build_pack(tmp_path / "licensed", license_file=True)
    assert InsightFaceEngine(licensed, require_license=True).license_present


def test_configuration_chooses_the_engine(single_face_pack: Path) -> None:
    assert MatchingSettings().engine_name == "dlib"  # no pack configured: offline default
    settings = MatchingSettings(matching_insightface_model_dir=single_face_pack)
    assert settings.engine_name == "insightface"
    engine = engine_for(settings)
    assert isinstance(engine, InsightFaceEngine)
    assert engine_for(MatchingSettings(matching_insightface_model_dir=single_face_pack)) is engine
    with pytest.raises(ValueError, match="MATCHING_INSIGHTFACE_MODEL_DIR"):
        MatchingSettings(matching_engine="insightface")


def test_a_comparison_runs_end_to_end_with_the_pack(single_face_pack: Path) -> None:
    engine = InsightFaceEngine(single_face_pack)
    photo = onnx_pack.one_patch_image(1)
    result = compare_photos(engine, jpeg(photo, 95), png(photo), pass_mark=80, rules=FaceRules())
    assert result.reason is None, result
    assert result.photo.faces_found == result.admission_photo.faces_found == 1
    assert result.score is not None and 0 <= result.score <= 100
    assert result.raw is not None and result.score == engine.scale.score(result.raw)
    assert {"detect", "align", "embed"} <= set(result.timings_ms)
    dark = np.full((640, 640, 3), 20, dtype=np.uint8)
    assert (
        compare_photos(engine, png(dark), png(photo), pass_mark=80, rules=FaceRules()).reason
        == "photo_no_face"
    )
