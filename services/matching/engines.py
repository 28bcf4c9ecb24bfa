"""Face engines behind one interface: detect → align → embed → compare.

- `DlibEngine`: dlib's HOG detector, 5-point shape predictor and ResNet descriptor, with the CC0
  models bundled in the `face-recognition-models` wheel. Works offline: the default. The descriptor
  network runs in numpy (`resnet.py`: the same weights file, the same output, ~6× less CPU than the
  PyPI dlib build, which has no BLAS), checked against dlib itself on one chip at every load.
- `InsightFaceEngine`: an insightface model pack (SCRFD detector + ArcFace recogniser, e.g. buffalo_l)
  read from a configured directory and run with onnxruntime. The pre-processing is insightface's own
  (`model_zoo/scrfd.py`, `utils/face_align.py`, `model_zoo/arcface_onnx.py`), ported so that the
  service needs neither the insightface package (whose wheel requires the GUI build of OpenCV and
  downloads missing models) nor scikit-image; tests check the port against insightface itself.

Models load once per process (`engine_for`); an engine serialises its own use with a lock because
dlib's network object is not thread-safe and a comparison is CPU-bound anyway (scale with replicas).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from services.matching import resnet
from services.matching.config import MatchingSettings
from services.matching.photos import RGBImage
from services.matching.score import ScoreScale, dlib_scale, insightface_scale
from shared.logging import get_logger

log = get_logger(__name__)

Embedding = NDArray[np.float32]


class EngineUnavailable(RuntimeError):
    """The configured engine cannot be loaded (missing models, bad pack, missing licence)."""


@dataclass(frozen=True)
class DetectedFace:
    """A face box in the original image's pixels; `landmarks` are five points when the detector gives them."""

    x: float
    y: float
    width: float
    height: float
    score: float
    landmarks: NDArray[np.float32] | None = None


class FaceEngine(ABC):
    name: ClassVar[str]

    def __init__(self, model: str, scale: ScoreScale) -> None:
        self.model = model
        self.scale = scale
        self.lock = threading.Lock()

    @abstractmethod
    def detect(self, image: RGBImage) -> list[DetectedFace]:
        """Every face found, largest first."""

    @abstractmethod
    def align(self, image: RGBImage, face: DetectedFace) -> RGBImage:
        """The face cut out and normalised the way the recogniser was trained."""

    @abstractmethod
    def embed(self, chip: RGBImage) -> Embedding:
        """The identity vector of an aligned face."""

    @abstractmethod
    def compare(self, a: Embedding, b: Embedding) -> float:
        """The engine's raw similarity (its own unit and direction; `scale` maps it to 0-100)."""

    def face_at(self, image: RGBImage, eyes: Eyes) -> DetectedFace | None:
        """The face whose eyes imaging put at `eyes` (image-left first), found cheaply, or None.

        None when the engine has no cheap path or the face is not where it should be: the caller then
        detects on the whole image as for any photo.
        """
        return None


Eyes = tuple[tuple[float, float], tuple[float, float]]


def eyes_agree(found: Eyes, expected: Eyes, tolerance: float = 0.2) -> bool:
    """Both eyes within `tolerance` × the expected distance between the eyes of where imaging put them."""
    (elx, ely), (erx, ery) = expected
    distance = float(np.hypot(erx - elx, ery - ely))
    if distance < 8:
        return False
    return all(
        float(np.hypot(fx - ex, fy - ey)) <= tolerance * distance
        for (fx, fy), (ex, ey) in zip(found, expected, strict=True)
    )


def _by_size(faces: list[DetectedFace]) -> list[DetectedFace]:
    return sorted(faces, key=lambda f: f.width * f.height, reverse=True)


# --- dlib ----------------------------------------------------------------------------------------------

DLIB_MODEL = "dlib_face_recognition_resnet_model_v1"
# HOG detections below this SVM margin are mostly texture (the astronaut's glove scores 0.04-0.1,
# real ID-photo faces 0.5-2.5): ignored, so they neither count as a second face nor stop the cascade.
DLIB_MIN_DETECTION_SCORE = 0.2
# The most the numpy port's descriptor may differ from dlib's (Euclidean) on the load-time self-check
# chip. A comparison moves by at most the sum of both descriptors' errors, and the steepest part of the
# dlib scale is 200 points per unit of distance: 2 × 2e-5 is 0.008 points, under the 0.01 the scores
# are rounded to. The port differs by about 1e-6 (float32 rounding in another summation order).
DESCRIPTOR_TOLERANCE = 2e-5
DescriptorBackend = Literal["numpy", "dlib"]


def face_recognition_models_dir() -> Path:
    """The models folder of the `face-recognition-models` wheel, found without importing it.

    Its __init__ imports pkg_resources, which recent setuptools no longer ship.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise EngineUnavailable("face-recognition-models is not installed (pip install '.[matching]')")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class DlibEngine(FaceEngine):
    name = "dlib"

    def __init__(
        self,
        *,
        detect_max_side: int = 640,
        pass_distance: float = 0.6,
        descriptor: DescriptorBackend = "numpy",
    ) -> None:
        try:
            import dlib  # type: ignore[import-untyped]
        except ImportError as exc:
            raise EngineUnavailable("dlib is not installed (pip install '.[matching]')") from exc
        models = face_recognition_models_dir()
        weights = models / "dlib_face_recognition_resnet_model_v1.dat"
        if not weights.is_file():
            raise EngineUnavailable(f"{weights} is missing")
        data = weights.read_bytes()
        # The weights hash names the model: stored descriptors are recomputed when it changes. The numpy
        # port computes the same descriptor from the same file, so the name does not say which ran it.
        super().__init__(f"{DLIB_MODEL}@{hashlib.sha256(data).hexdigest()[:12]}", dlib_scale(pass_distance))
        self._dlib: Any = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self._recogniser = dlib.face_recognition_model_v1(str(weights))
        self._detect_max_side = detect_max_side
        # Which code computes descriptors: "numpy" only once the self-check has passed.
        self.descriptor_backend: DescriptorBackend = "dlib"
        self._network = self._checked_network(data) if descriptor == "numpy" else None

    def _checked_network(self, data: bytes) -> resnet.Network | None:
        """The numpy port of the descriptor network, or None (dlib computes descriptors) if the weights
        file is not the network it implements or its descriptor on the self-check chip differs from
        dlib's by more than DESCRIPTOR_TOLERANCE. Either is logged as an error: the service stays correct
        (dlib is the reference) but needs ~6× the CPU per descriptor.
        """
        try:
            network = resnet.parse(data)
        except resnet.ModelFormatError as exc:
            log.error(
                "dlib descriptor: numpy port cannot read the weights; dlib computes them", error=str(exc)
            )
            return None
        chip = resnet.self_check_chip()
        expected = self.dlib_descriptor(chip)
        try:
            if not resnet.single_threaded_blas():
                log.warning("dlib descriptor: numpy's OpenBLAS not found; BLAS thread count left as is")
            found = resnet.forward(network, chip)
        except Exception as exc:  # the port is a speed-up: whatever fails in it, dlib (the reference) stays
            log.error(
                "dlib descriptor: numpy port failed its self-check; dlib computes them", error=repr(exc)
            )
            return None
        distance = float(np.linalg.norm(expected.astype(np.float64) - found.astype(np.float64)))
        if not distance <= DESCRIPTOR_TOLERANCE:  # also catches NaN
            log.error(
                "dlib descriptor: numpy port disagrees with dlib on the self-check chip; dlib computes them",
                distance=distance,
                tolerance=DESCRIPTOR_TOLERANCE,
            )
            return None
        self.descriptor_backend = "numpy"
        return network

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        """HOG on a scaled-down copy first; upsampling only when that finds nothing.

        The plain call sequence (upsample once, full image) scans four times the pixels of a 2 MP
        photo; an ID photo's face is far larger than the detector window, so the small copy finds it.
        The cascade still finds faces down to about 40 px in images up to 2 × the working size.
        """
        height, width = image.shape[:2]
        base = min(1.0, self._detect_max_side / max(height, width))
        passes = [(base, 0), (base, 1)]
        if base < 1.0:
            passes.append((min(1.0, 2 * base), 1))
        scaled: dict[float, RGBImage] = {}
        for factor, upsample in passes:
            if factor not in scaled:
                scaled[factor] = (
                    image
                    if factor == 1.0
                    else np.asarray(
                        cv2.resize(
                            image,
                            (max(1, round(width * factor)), max(1, round(height * factor))),
                            interpolation=cv2.INTER_AREA,
                        ),
                        dtype=np.uint8,
                    )
                )
            rects, scores, _ = self._detector.run(scaled[factor], upsample, 0.0)
            faces = [
                DetectedFace(
                    x=r.left() / factor,
                    y=r.top() / factor,
                    width=r.width() / factor,
                    height=r.height() / factor,
                    score=float(s),
                )
                for r, s in zip(rects, scores, strict=True)
                if s >= DLIB_MIN_DETECTION_SCORE
            ]
            if faces:
                return _by_size(faces)
        return []

    def face_at(self, image: RGBImage, eyes: Eyes) -> DetectedFace | None:
        """HOG on a small crop around the carried eyes, scaled so the face is ~100 px (a few ms instead of
        a scan of the whole photo); the face counts only when it is the crop's one face, its box sits
        around the eyes, and the 5-point landmarks put both eyes within 20 % of the eye distance of where
        imaging put them. Landmarks and chip then come from the full-resolution image as always.
        """
        (lx, ly), (rx, ry) = eyes
        distance = float(np.hypot(rx - lx, ry - ly))
        height, width = image.shape[:2]
        if not 8 <= distance <= max(height, width):
            return None
        mid_x, mid_y = (lx + rx) / 2, (ly + ry) / 2
        left, right = max(0, round(mid_x - 1.8 * distance)), min(width, round(mid_x + 1.8 * distance))
        top, bottom = max(0, round(mid_y - 1.6 * distance)), min(height, round(mid_y + 2.2 * distance))
        if right - left < 16 or bottom - top < 16:
            return None
        factor = min(1.0, 40.0 / distance)  # eyes ~40 px apart: the face fills the HOG window with room
        crop = image[top:bottom, left:right]
        small = (
            crop
            if factor == 1.0
            else np.asarray(
                cv2.resize(
                    crop,
                    (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor))),
                    interpolation=cv2.INTER_AREA,
                ),
                dtype=np.uint8,
            )
        )
        rects, scores, _ = self._detector.run(np.ascontiguousarray(small), 0, 0.0)
        faces = [
            DetectedFace(
                x=left + r.left() / factor,
                y=top + r.top() / factor,
                width=r.width() / factor,
                height=r.height() / factor,
                score=float(s),
            )
            for r, s in zip(rects, scores, strict=True)
            if s >= DLIB_MIN_DETECTION_SCORE
        ]
        if len(faces) != 1:
            return None
        face = faces[0]
        if not (face.x < mid_x < face.x + face.width and face.y < mid_y < face.y + face.height):
            return None
        shape = self._landmarks(image, self._rectangle(image, face))
        points = [(shape.part(i).x, shape.part(i).y) for i in range(4)]
        # dlib's 5-point model: 0-1 the corners of the image-left eye... in either order; pair by x.
        pairs = sorted(
            [((points[0][0] + points[1][0]) / 2, (points[0][1] + points[1][1]) / 2),
             ((points[2][0] + points[3][0]) / 2, (points[2][1] + points[3][1]) / 2)]
        )  # fmt: skip
        if not eyes_agree((pairs[0], pairs[1]), eyes):
            return None
        return face

    def _rectangle(self, image: RGBImage, face: DetectedFace) -> Any:
        height, width = image.shape[:2]
        # Trimmed to the image the way face_recognition does (`_trim_css_to_bounds`).
        left = max(0, round(face.x))
        top = max(0, round(face.y))
        right = min(width - 1, round(face.x + face.width) - 1)
        bottom = min(height - 1, round(face.y + face.height) - 1)
        return self._dlib.rectangle(left, top, right, bottom)

    def align(self, image: RGBImage, face: DetectedFace) -> RGBImage:
        # Landmarks and the chip come from the full-resolution image, whatever scale found the face.
        shape = self._landmarks(image, self._rectangle(image, face))
        chip: RGBImage = self._dlib.get_face_chip(image, shape, size=150, padding=0.25)
        return chip

    def embed(self, chip: RGBImage) -> Embedding:
        if self._network is not None and chip.shape == resnet.CHIP_SHAPE and chip.dtype == np.uint8:
            return resnet.forward(self._network, chip)
        return self.dlib_descriptor(chip)

    def dlib_descriptor(self, chip: RGBImage) -> Embedding:
        """dlib's own computation of the descriptor (the reference the port is checked against)."""
        return np.asarray(self._recogniser.compute_face_descriptor(chip), dtype=np.float32)

    def compare(self, a: Embedding, b: Embedding) -> float:
        """Euclidean distance (lower is more alike), the measure dlib's 0.6 threshold is stated in."""
        return float(np.linalg.norm(a.astype(np.float64) - b.astype(np.float64)))


# --- insightface (onnxruntime) -------------------------------------------------------------------------

# insightface `utils/face_align.py`: where ArcFace expects the eyes, nose tip and mouth corners (112 px).
ARCFACE_DST = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
LICENSE_FILE = "MODEL.LICENSE"


def similarity_transform(src: NDArray[Any], dst: NDArray[Any]) -> NDArray[np.float64]:
    """Least-squares similarity transform src → dst (Umeyama 1991), as skimage's SimilarityTransform."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    num, dim = src.shape
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_demean, dst_demean = src - src_mean, dst - dst_mean
    a = dst_demean.T @ src_demean / num
    d = np.ones((dim,), dtype=np.float64)
    if np.linalg.det(a) < 0:
        d[dim - 1] = -1
    t = np.eye(dim + 1, dtype=np.float64)
    u, s, v = np.linalg.svd(a)
    rank = np.linalg.matrix_rank(a)
    if rank == 0:
        raise ValueError("degenerate landmarks")
    if rank == dim - 1 and np.linalg.det(u) * np.linalg.det(v) <= 0:
        saved = d[dim - 1]
        d[dim - 1] = -1
        t[:dim, :dim] = u @ np.diag(d) @ v
        d[dim - 1] = saved
    elif rank == dim - 1:
        t[:dim, :dim] = u @ v
    else:
        t[:dim, :dim] = u @ np.diag(d) @ v
    scale = 1.0 / src_demean.var(axis=0).sum() * (s @ d)
    t[:dim, dim] = dst_mean - scale * (t[:dim, :dim] @ src_mean.T)
    t[:dim, :dim] *= scale
    return t


def arcface_matrix(landmarks: NDArray[Any], size: int = 112) -> NDArray[np.float64]:
    """insightface's `estimate_norm`: the affine matrix that puts five landmarks on ARCFACE_DST."""
    if size % 112 == 0:
        ratio, diff_x = size / 112.0, 0.0
    elif size % 128 == 0:
        ratio, diff_x = size / 128.0, 8.0 * size / 128.0
    else:
        raise EngineUnavailable(f"recogniser input {size} px is neither a multiple of 112 nor of 128")
    dst = ARCFACE_DST * ratio
    dst[:, 0] += diff_x
    return similarity_transform(landmarks, dst)[0:2, :]


def _session(path: Path, providers: list[str], threads: int) -> Any:
    import onnxruntime as ort  # type: ignore[import-untyped]

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    available = set(ort.get_available_providers())
    chosen = [p for p in providers if p in available] or ["CPUExecutionProvider"]
    return ort.InferenceSession(str(path), sess_options=options, providers=chosen)


class Scrfd:
    """insightface's SCRFD detector decoding (`model_zoo/scrfd.py`), one fixed input size."""

    nms_threshold = 0.4

    def __init__(self, session: Any, *, det_size: int, threshold: float) -> None:
        self.session = session
        inputs, outputs = session.get_inputs(), session.get_outputs()
        self.input_name = inputs[0].name
        self.output_names = [o.name for o in outputs]
        self.batched = len(outputs[0].shape) == 3
        layouts = {6: (3, 2, False), 9: (3, 2, True), 10: (5, 1, False), 15: (5, 1, True)}
        if len(outputs) not in layouts:
            raise EngineUnavailable(f"detector has {len(outputs)} outputs; not an SCRFD model")
        self.fmc, self.num_anchors, use_kps = layouts[len(outputs)]
        if not use_kps:
            raise EngineUnavailable("detector gives no landmarks; ArcFace alignment needs them")
        self.strides = [8, 16, 32] if self.fmc == 3 else [8, 16, 32, 64, 128]
        shape = inputs[0].shape
        fixed = isinstance(shape[2], int) and isinstance(shape[3], int)
        self.input_size = (int(shape[3]), int(shape[2])) if fixed else (det_size, det_size)
        self.threshold = threshold
        self._centers: dict[tuple[int, int, int], NDArray[np.float32]] = {}

    def detect(self, image: RGBImage) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Boxes `[x1, y1, x2, y2, score]` and five landmarks each, in the image's pixels."""
        in_w, in_h = self.input_size
        im_ratio = image.shape[0] / image.shape[1]
        if im_ratio > in_h / in_w:
            new_h = in_h
            new_w = int(new_h / im_ratio)
        else:
            new_w = in_w
            new_h = int(new_w * im_ratio)
        det_scale = new_h / image.shape[0]
        canvas = np.zeros((in_h, in_w, 3), dtype=np.uint8)
        canvas[:new_h, :new_w, :] = cv2.resize(image, (new_w, new_h))
        # insightface feeds BGR with swapRB: the network sees RGB, which is what we have.
        blob = ((canvas.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[np.newaxis]
        outs = self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(blob)})
        scores_list, boxes_list, kps_list = [], [], []

        def take(out: NDArray[np.float32]) -> NDArray[np.float32]:
            # Batched exports carry a leading batch axis of 1.
            return out[0] if self.batched else out

        for idx, stride in enumerate(self.strides):
            scores = take(outs[idx])
            box_preds = take(outs[idx + self.fmc]) * stride
            kps_preds = take(outs[idx + self.fmc * 2]) * stride
            centers = self._anchor_centers(in_h // stride, in_w // stride, stride)
            keep = np.where(scores >= self.threshold)[0]
            boxes = np.stack(
                [
                    centers[:, 0] - box_preds[:, 0],
                    centers[:, 1] - box_preds[:, 1],
                    centers[:, 0] + box_preds[:, 2],
                    centers[:, 1] + box_preds[:, 3],
                ],
                axis=-1,
            )
            kps = np.stack(
                [centers[:, i % 2] + kps_preds[:, i] for i in range(kps_preds.shape[1])], axis=-1
            ).reshape((-1, kps_preds.shape[1] // 2, 2))
            scores_list.append(scores[keep])
            boxes_list.append(boxes[keep])
            kps_list.append(kps[keep])
        scores_all = np.vstack(scores_list).ravel()
        if scores_all.size == 0:
            return np.empty((0, 5), dtype=np.float32), np.empty((0, 5, 2), dtype=np.float32)
        order = np.argsort(-scores_all, kind="stable")
        boxes_all = np.vstack(boxes_list) / det_scale
        kps_all = np.vstack(kps_list) / det_scale
        dets = np.hstack((boxes_all, scores_all[:, np.newaxis])).astype(np.float32)[order]
        kps_all = kps_all[order]
        keep_idx = self._nms(dets)
        return dets[keep_idx], kps_all[keep_idx].astype(np.float32)

    def _anchor_centers(self, height: int, width: int, stride: int) -> NDArray[np.float32]:
        key = (height, width, stride)
        if key not in self._centers:
            rows, cols = np.mgrid[:height, :width]
            centers = np.stack([cols, rows], axis=-1).astype(np.float32)
            centers = (centers * stride).reshape((-1, 2))
            if self.num_anchors > 1:
                centers = np.stack([centers] * self.num_anchors, axis=1).reshape((-1, 2))
            self._centers[key] = centers
        return self._centers[key]

    def _nms(self, dets: NDArray[np.float32]) -> list[int]:
        x1, y1, x2, y2, scores = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3], dets[:, 4]
        areas = (x2 - x1 + 1) * (y2 - y1 + 1)
        order = np.argsort(-scores, kind="stable")
        keep: list[int] = []
        while order.size > 0:
            i = int(order[0])
            keep.append(i)
            w = np.maximum(0.0, np.minimum(x2[i], x2[order[1:]]) - np.maximum(x1[i], x1[order[1:]]) + 1)
            h = np.maximum(0.0, np.minimum(y2[i], y2[order[1:]]) - np.maximum(y1[i], y1[order[1:]]) + 1)
            inter = w * h
            overlap = inter / (areas[i] + areas[order[1:]] - inter)
            order = order[np.where(overlap <= self.nms_threshold)[0] + 1]
        return keep


class ArcFace:
    """insightface's ArcFace recogniser (`model_zoo/arcface_onnx.py`)."""

    def __init__(self, session: Any, *, input_mean: float, input_std: float) -> None:
        self.session = session
        inputs = session.get_inputs()
        self.input_name = inputs[0].name
        self.output_name = session.get_outputs()[0].name
        self.size = int(inputs[0].shape[2])
        self.input_mean = input_mean
        self.input_std = input_std

    def align(self, image: RGBImage, landmarks: NDArray[np.float32]) -> RGBImage:
        matrix = arcface_matrix(landmarks, self.size)
        return np.asarray(
            cv2.warpAffine(image, matrix, (self.size, self.size), borderValue=0.0), dtype=np.uint8
        )

    def embed(self, chip: RGBImage) -> Embedding:
        blob = ((chip.astype(np.float32) - self.input_mean) / self.input_std).transpose(2, 0, 1)[np.newaxis]
        out = self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(blob)})[0]
        return np.asarray(out, dtype=np.float32).ravel()


def _is_recogniser(session: Any) -> bool:
    """insightface's routing (`model_zoo.py`): 192 px is a landmark model, 96 px gender/age, two
    inputs at 128 px the swapper; any other square input of 112 px and up, a multiple of 16, is ArcFace.
    """
    inputs = session.get_inputs()
    shape = inputs[0].shape
    if len(shape) != 4 or not isinstance(shape[2], int) or shape[2] != shape[3]:
        return False
    size = shape[2]
    if size in (192, 96) or (len(inputs) == 2 and size == 128):
        return False
    return len(session.get_outputs()) == 1 and size >= 112 and size % 16 == 0


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()[:12]


class InsightFaceEngine(FaceEngine):
    name = "insightface"

    def __init__(
        self,
        model_dir: Path,
        *,
        providers: list[str] | None = None,
        det_size: int = 640,
        det_threshold: float = 0.5,
        input_mean: float = 127.5,
        input_std: float = 127.5,
        threads: int = 0,
        pass_similarity: float = 0.40,
        require_license: bool = False,
    ) -> None:
        if importlib.util.find_spec("onnxruntime") is None:
            raise EngineUnavailable("onnxruntime is not installed (pip install '.[matching]')")
        model_dir = Path(model_dir)
        files = sorted(model_dir.glob("*.onnx"))
        if not files:
            raise EngineUnavailable(f"no .onnx model in {model_dir}")
        self.license_present = (model_dir / LICENSE_FILE).is_file()
        if require_license and not self.license_present:
            raise EngineUnavailable(
                f"{model_dir} has no {LICENSE_FILE}: insightface packs are for non-commercial use "
                "unless licensed (MATCHING_INSIGHTFACE_REQUIRE_LICENSE)"
            )
        detector: Scrfd | None = None
        recogniser: ArcFace | None = None
        recogniser_file: Path | None = None
        for path in files:
            session = _session(path, providers or ["CPUExecutionProvider"], threads)
            if detector is None and len(session.get_outputs()) >= 5:
                detector = Scrfd(session, det_size=det_size, threshold=det_threshold)
            elif recogniser is None and _is_recogniser(session):
                recogniser = ArcFace(session, input_mean=input_mean, input_std=input_std)
                recogniser_file = path
            # Other models of a pack (landmarks, gender/age) are not needed for verification.
        if detector is None or recogniser is None or recogniser_file is None:
            raise EngineUnavailable(f"{model_dir} lacks an SCRFD detector or an ArcFace recogniser")
        model = f"{model_dir.name}/{recogniser_file.stem}@{_digest(recogniser_file)}"
        super().__init__(model, insightface_scale(pass_similarity))
        self._detector = detector
        self._recogniser = recogniser
        if not self.license_present:
            log.warning(
                "insightface model pack without MODEL.LICENSE: non-commercial terms apply", model=model
            )

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        dets, kps = self._detector.detect(image)
        return _by_size(
            [
                DetectedFace(
                    x=float(d[0]),
                    y=float(d[1]),
                    width=float(d[2] - d[0]),
                    height=float(d[3] - d[1]),
                    score=float(d[4]),
                    landmarks=k,
                )
                for d, k in zip(dets, kps, strict=True)
            ]
        )

    def align(self, image: RGBImage, face: DetectedFace) -> RGBImage:
        assert face.landmarks is not None, "SCRFD always gives landmarks"
        return self._recogniser.align(image, face.landmarks)

    def embed(self, chip: RGBImage) -> Embedding:
        return self._recogniser.embed(chip)

    def compare(self, a: Embedding, b: Embedding) -> float:
        """Cosine similarity, as insightface's `compute_sim`."""
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        return float(np.dot(a64, b64) / (np.linalg.norm(a64) * np.linalg.norm(b64)))


# --- one engine per process ----------------------------------------------------------------------------


_LOADING = threading.Lock()


def engine_for(settings: MatchingSettings) -> FaceEngine:
    """The configured engine, loaded on first use and shared by everything in the process."""
    with _LOADING:  # two threads asking at once must not load the models twice
        return _load(settings)


def _load(settings: MatchingSettings) -> FaceEngine:
    if settings.engine_name == "insightface":
        assert settings.matching_insightface_model_dir is not None
        return _insightface(
            str(settings.matching_insightface_model_dir),
            tuple(settings.providers),
            settings.matching_insightface_det_size,
            settings.matching_insightface_det_threshold,
            settings.matching_insightface_input_mean,
            settings.matching_insightface_input_std,
            settings.matching_onnx_threads,
            settings.matching_insightface_pass_similarity,
            settings.matching_insightface_require_license,
        )
    return _dlib(
        settings.matching_dlib_detect_max_side,
        settings.matching_dlib_pass_distance,
        settings.matching_dlib_descriptor,
    )


@functools.cache
def _dlib(detect_max_side: int, pass_distance: float, descriptor: DescriptorBackend) -> FaceEngine:
    return DlibEngine(detect_max_side=detect_max_side, pass_distance=pass_distance, descriptor=descriptor)


@functools.cache
def _insightface(
    model_dir: str,
    providers: tuple[str, ...],
    det_size: int,
    det_threshold: float,
    input_mean: float,
    input_std: float,
    threads: int,
    pass_similarity: float,
    require_license: bool,
) -> FaceEngine:
    return InsightFaceEngine(
        Path(model_dir),
        providers=list(providers),
        det_size=det_size,
        det_threshold=det_threshold,
        input_mean=input_mean,
        input_std=input_std,
        threads=threads,
        pass_similarity=pass_similarity,
        require_license=require_license,
    )
