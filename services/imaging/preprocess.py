"""Shared pre-processing, computed once per photo: face detection, face mesh with iris, segmentation.

Every quality measure and the standardisation read the same :class:`Analysis` (the OFIQ pattern), so
each model runs once. The models are mediapipe 0.10.21's bundled graphs (no download at run time):
full-range face detection counts the faces in the whole frame; the 478-point face mesh with iris
refinement runs on a crop around the largest face (its own short-range detector needs the face to
fill the frame); selfie segmentation runs on a window aligned with the eyes around the person.

mediapipe graphs are not thread-safe: a :class:`ModelPool` holds one :class:`FaceModels` per worker
thread, each loaded once per process.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from services.imaging.load import Photo

# Landmark indices of mediapipe's face mesh (478 points with iris refinement). "Image-left" is the
# subject's right side.
IRIS_LEFT, IRIS_RIGHT = 468, 473
FACE_EDGE_LEFT, FACE_EDGE_RIGHT = 234, 454
FOREHEAD, CHIN, NOSE_TIP = 10, 152, 1
# Upper/lower eyelid pairs and the corners of each eye.
EYE_LEFT_LIDS = ((160, 144), (159, 145), (158, 153))
EYE_LEFT_CORNERS = (33, 133)
EYE_RIGHT_LIDS = ((385, 380), (386, 374), (387, 373))
EYE_RIGHT_CORNERS = (362, 263)
MOUTH_INNER = (13, 14)
MOUTH_CORNERS = (61, 291)
BROW_LEFT = (70, 63, 105, 66, 107)
BROW_RIGHT = (336, 296, 334, 293, 300)
CHEEK_LEFT, CHEEK_RIGHT = 205, 425
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)  # fmt: skip

# Detection sees the photo shrunk by an integer factor to at most this long side (it resizes to
# 192 px inside anyway; an integer factor keeps OpenCV's area resize on its fast path).
_DETECT_LONG_SIDE = 640
# The face mesh runs on a square crop this many face-box sizes wide, at most this many pixels (its
# landmark model takes 192 px, the iris model 64 px eye crops from it).
_MESH_CROP_FACTOR = 2.2
_MESH_CROP_PX = 320
# The segmentation window, in face widths around the eye midpoint (x: ±, y: above, below), and its size.
# It covers every canvas the placement may choose (face width ≥ 188 px puts the canvas within ±1.28,
# 1.55 above and 2.3 below) and no more, so the model's 256×256 input spends its pixels on the person.
SEG_HALF_WIDTH, SEG_ABOVE, SEG_BELOW = 1.35, 1.65, 2.4
SEG_SIZE = (256, 384)  # (width, height): the window's aspect ratio 2.7 : 4.05


@dataclass(frozen=True)
class DetectedFace:
    """A face box in photo pixels and the detector's confidence."""

    x: float
    y: float
    w: float
    h: float
    score: float


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence the C++ (absl/TFLite) banner lines mediapipe writes to fd 2 while graphs start."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class FaceModels:
    """One set of mediapipe graphs; use from one thread at a time."""

    def __init__(self, *, min_confidence: float = 0.5) -> None:
        with _quiet_native_stderr():
            from mediapipe.python.solutions import face_detection, face_mesh, selfie_segmentation

            self._detector: Any = face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=min_confidence
            )
            self._mesh: Any = face_mesh.FaceMesh(
                static_image_mode=True,
                max_num_faces=1,
                refine_landmarks=True,
                min_detection_confidence=min_confidence,
            )
            self._segmenter: Any = selfie_segmentation.SelfieSegmentation(model_selection=0)
            # The first inference of each graph initialises its delegate (and prints); do it here.
            blank = np.full((256, 256, 3), 128, np.uint8)
            self._detector.process(blank)
            self._mesh.process(blank)
            self._segmenter.process(blank)

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Faces in the frame (full-range model: faces up to ~5 m away), in ``rgb`` pixels."""
        height, width = rgb.shape[:2]
        result = self._detector.process(rgb)
        faces = []
        for detection in result.detections or []:
            box = detection.location_data.relative_bounding_box
            faces.append(
                DetectedFace(
                    box.xmin * width,
                    box.ymin * height,
                    box.width * width,
                    box.height * height,
                    float(detection.score[0]),
                )
            )
        return faces

    def mesh(self, rgb: np.ndarray) -> np.ndarray | None:
        """478 landmarks (x, y in pixels; z in the same unit, towards the camera negative) or None."""
        height, width = rgb.shape[:2]
        result = self._mesh.process(rgb)
        if not result.multi_face_landmarks:
            return None
        points = result.multi_face_landmarks[0].landmark
        return np.array([(p.x * width, p.y * height, p.z * width) for p in points], dtype=np.float64)

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        """Person probability per pixel (float32, 0-1), the same size as ``rgb``."""
        mask: np.ndarray = self._segmenter.process(rgb).segmentation_mask
        return np.ascontiguousarray(mask, dtype=np.float32)

    def close(self) -> None:
        for graph in (self._detector, self._mesh, self._segmenter):
            graph.close()


class ModelPool:
    """``size`` model sets, loaded once per process; a thread borrows one for a photo."""

    def __init__(self, size: int, *, min_confidence: float = 0.5) -> None:
        self._free: queue.SimpleQueue[FaceModels] = queue.SimpleQueue()
        self._all = [FaceModels(min_confidence=min_confidence) for _ in range(max(1, size))]
        for models in self._all:
            self._free.put(models)

    @property
    def size(self) -> int:
        return len(self._all)

    @contextlib.contextmanager
    def borrow(self) -> Iterator[FaceModels]:
        models = self._free.get()
        try:
            yield models
        finally:
            self._free.put(models)

    def close(self) -> None:
        for models in self._all:
            models.close()


_default_pool: ModelPool | None = None
_default_lock = threading.Lock()


def default_pool() -> ModelPool:
    """A one-set pool for the CLI and the benchmark, created on first use."""
    global _default_pool
    with _default_lock:
        if _default_pool is None:
            _default_pool = ModelPool(1)
        return _default_pool


# --- geometry helpers -------------------------------------------------------------------------------


# BT.601 weights times every 8-bit level, in float32 as ``0.299 * f`` computes them for a float32 ``f``.
_LUMA_TABLES = tuple(
    (weight * np.arange(256, dtype=np.float32)).reshape(1, 256) for weight in (0.299, 0.587, 0.114)
)


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma, float32 0-255: ``0.299 R + 0.587 G + 0.114 B`` evaluated in float32, left to right.

    For 8-bit RGB each product is looked up in a table of the same float32 products and the sums are
    the same float32 additions, so the result is exactly the float formula's, without converting the
    image to float first.
    """
    if rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3:
        r, g, b = cv2.split(rgb)
        tables = _LUMA_TABLES
        summed: np.ndarray = cv2.add(
            cv2.add(cv2.LUT(r, tables[0]), cv2.LUT(g, tables[1])), cv2.LUT(b, tables[2])
        )
        return summed
    f = rgb.astype(np.float32)
    formula: np.ndarray = 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]
    return formula


@functools.lru_cache(maxsize=8)
def plain(shape: tuple[int, ...], colour: tuple[int, int, int]) -> np.ndarray:
    """A read-only uint8 image of one colour (the new background), made once per shape and colour."""
    canvas = np.empty(shape, np.uint8)
    canvas[...] = colour
    canvas.flags.writeable = False
    return canvas


def rotation_about(center: tuple[float, float], angle_deg: float, scale: float = 1.0) -> np.ndarray:
    """2×3 affine that rotates by ``angle_deg`` (counter-clockwise on screen) about ``center``."""
    return cv2.getRotationMatrix2D((float(center[0]), float(center[1])), angle_deg, scale)


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map N×2 (or N×3, z ignored) points through a 2×3 affine."""
    xy = np.asarray(points, dtype=np.float64)[:, :2]
    mapped: np.ndarray = xy @ matrix[:, :2].T + matrix[:, 2]
    return mapped


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(matrix)


@dataclass(frozen=True)
class HeadPose:
    """Degrees. Yaw: + turned to the image right; pitch: + chin down; roll: + eye line rising right."""

    yaw: float
    pitch: float
    roll: float


def head_pose(landmarks: np.ndarray) -> HeadPose:
    """Yaw and pitch from the normal of a plane fitted to the 3D mesh; roll from the iris line.

    A plane through all 478 points is steadier than any three-point construction: on frontal
    package photos it reads within ±6° of zero for yaw and pitch, where the classic forehead-chin
    vector reads 7-10° of pitch because the forehead slopes back.
    """
    centred = landmarks - landmarks.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    normal = vt[2] * (1.0 if vt[2][2] < 0 else -1.0)  # towards the camera (mediapipe z < 0)
    yaw = math.degrees(math.atan2(normal[0], -normal[2]))
    pitch = math.degrees(math.atan2(normal[1], -normal[2]))
    left, right = landmarks[IRIS_LEFT], landmarks[IRIS_RIGHT]
    roll = math.degrees(math.atan2(-(right[1] - left[1]), right[0] - left[0]))
    return HeadPose(yaw=yaw, pitch=pitch, roll=roll)


@dataclass
class Analysis:
    """What the models saw in one photo, in the coordinates of ``photo.rgb``.

    ``aligned`` maps photo pixels into the eye-aligned frame: eye midpoint at the origin, eye line
    horizontal, units of photo pixels. ``window`` maps photo pixels to the segmentation window whose
    person mask is ``mask``; ``head_top`` is the top of the head (hair included) in the aligned frame
    (negative: above the eyes).
    """

    photo: Photo
    faces: list[DetectedFace]
    landmarks: np.ndarray | None = None
    pose: HeadPose | None = None
    aligned: np.ndarray | None = None
    face_width: float = 0.0
    face_centre_x: float = 0.0
    window: np.ndarray | None = None
    mask: np.ndarray | None = None
    head_top: float = 0.0
    head_top_at_window_edge: bool = False

    @property
    def face_count(self) -> int:
        return len(self.faces)

    def aligned_landmarks(self) -> np.ndarray:
        assert self.landmarks is not None and self.aligned is not None
        return apply_affine(self.aligned, self.landmarks)


def _count_faces(faces: list[DetectedFace], second_face_min_ratio: float) -> list[DetectedFace]:
    """The faces that count as people in the photo, largest first."""
    if not faces:
        return []
    faces = sorted(faces, key=lambda f: f.w, reverse=True)
    return [f for f in faces if f.w >= faces[0].w * second_face_min_ratio]


def _mesh_on_crop(models: FaceModels, rgb: np.ndarray, face: DetectedFace) -> np.ndarray | None:
    """Run the face mesh on a square crop around ``face``; landmarks back in ``rgb`` pixels."""
    side = max(face.w, face.h) * _MESH_CROP_FACTOR
    cx, cy = face.x + face.w / 2, face.y + face.h / 2
    out = int(min(_MESH_CROP_PX, max(192.0, side)))
    k = out / side
    crop_matrix = np.array([[k, 0, out / 2 - k * cx], [0, k, out / 2 - k * cy]], dtype=np.float64)
    crop = cv2.warpAffine(
        rgb, crop_matrix, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    points = models.mesh(crop)
    if points is None:
        return None
    back = invert_affine(crop_matrix)
    points[:, :2] = apply_affine(back, points)
    points[:, 2] /= k
    return points


def _head_top(mask: np.ndarray, window: np.ndarray, aligned: np.ndarray, landmarks: np.ndarray,
              face_width: float, face_centre_x: float) -> tuple[float, bool]:  # fmt: skip
    """Top of the head in the aligned frame, from the person mask in the central band of the face.

    Per column, walk up from the forehead until the mask drops below one half; the head top is a low
    percentile of those rows (the crown, not one stray hair). Also says whether it hit the window top.
    """
    to_window = window @ np.vstack([invert_affine(aligned), [0, 0, 1]])  # aligned → window
    forehead = apply_affine(aligned, landmarks[[FOREHEAD]])[0]
    xs = np.linspace(face_centre_x - 0.22 * face_width, face_centre_x + 0.22 * face_width, 15)
    tops = []
    hit_edge = False
    height, width = mask.shape
    for x in xs:
        start = apply_affine(to_window, np.array([[x, forehead[1]]]))[0]
        col = round(float(start[0]))
        if not 0 <= col < width:
            continue
        row = int(min(max(round(start[1]), 0), height - 1))
        column = mask[: row + 1, col]
        below = np.nonzero(column < 0.5)[0]
        top_row = float(below[-1] + 1) if below.size else 0.0
        hit_edge = hit_edge or top_row <= 0.0
        tops.append(top_row)
    if not tops:
        return float(forehead[1]) - 0.35 * face_width, False
    top_window_row = float(np.percentile(tops, 15))
    # Back to the aligned frame: the column's x does not matter for a row (the window is not rotated
    # relative to the aligned frame, only scaled and shifted).
    from_window = invert_affine(to_window[:2])
    top = apply_affine(from_window, np.array([[width / 2, top_window_row]]))[0][1]
    return float(top), hit_edge


def detection_copy(rgb: np.ndarray, long_side: int = _DETECT_LONG_SIDE) -> np.ndarray:
    """The photo scaled down by a whole factor so its long side is at most `long_side` (the detector's
    input; the photo itself when it is small enough)."""
    height, width = rgb.shape[:2]
    factor = math.ceil(max(height, width) / long_side)
    if factor <= 1:
        return rgb
    return cv2.resize(rgb, (width // factor, height // factor), interpolation=cv2.INTER_AREA)


def analyse(
    photo: Photo, models: FaceModels, *, min_confidence: float, second_face_min_ratio: float
) -> Analysis:
    """Run the three models once; stops early (landmarks None) when there is not exactly one face."""
    rgb = photo.rgb
    width = rgb.shape[1]
    small = detection_copy(rgb)
    k = small.shape[1] / width
    detected = [
        DetectedFace(f.x / k, f.y / k, f.w / k, f.h / k, f.score)
        for f in models.detect(small)
        if f.score >= min_confidence
    ]
    faces = _count_faces(detected, second_face_min_ratio)
    analysis = Analysis(photo=photo, faces=faces)
    if len(faces) != 1:
        return analysis
    landmarks = _mesh_on_crop(models, rgb, faces[0])
    if landmarks is None:
        analysis.faces = []
        return analysis
    pose = head_pose(landmarks)
    eye_mid = (landmarks[IRIS_LEFT, :2] + landmarks[IRIS_RIGHT, :2]) / 2
    # Rotate by the roll so the eye line is horizontal, then put the eye midpoint at the origin.
    aligned = rotation_about((eye_mid[0], eye_mid[1]), -pose.roll)
    aligned[:, 2] -= eye_mid
    edges = apply_affine(aligned, landmarks[[FACE_EDGE_LEFT, FACE_EDGE_RIGHT]])
    face_width = float(abs(edges[1][0] - edges[0][0]))
    face_centre_x = float((edges[0][0] + edges[1][0]) / 2)
    # The segmentation window: a fixed box in face widths around the eyes, scaled to SEG_SIZE.
    seg_w, seg_h = SEG_SIZE
    k_win = seg_w / (2 * SEG_HALF_WIDTH * face_width)
    to_window = np.array(
        [
            [k_win, 0, k_win * (SEG_HALF_WIDTH * face_width - face_centre_x)],
            [0, k_win, k_win * SEG_ABOVE * face_width],
        ]
    )
    window = to_window @ np.vstack([aligned, [0, 0, 1]])
    window_rgb = cv2.warpAffine(
        rgb, window, (seg_w, seg_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    mask = models.segment(window_rgb)
    head_top, at_edge = _head_top(mask, window, aligned, landmarks, face_width, face_centre_x)
    analysis.landmarks = landmarks
    analysis.pose = pose
    analysis.aligned = aligned
    analysis.face_width = face_width
    analysis.face_centre_x = face_centre_x
    analysis.window = window
    analysis.mask = mask
    analysis.head_top = head_top
    analysis.head_top_at_window_edge = at_edge
    return analysis
