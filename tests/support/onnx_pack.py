"""A tiny insightface-shaped model pack the tests build themselves (no model is downloaded).

The detector has SCRFD's interface (one NCHW input of any size; nine outputs: scores, box distances and
five-landmark offsets at strides 8, 16 and 32, two anchors per cell) and answers "face" where the image
is bright; the recogniser has ArcFace's (a 112 × 112 input, one embedding). Their numbers mean nothing:
they prove the loading, routing, resizing, normalisation, decoding, alignment and embedding wiring.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

STRIDES = (8, 16, 32)
# Landmark offsets from an anchor centre, in strides: eyes, nose tip, mouth corners.
KPS_PATTERN = np.array([-0.6, -0.4, 0.6, -0.4, 0.0, 0.1, -0.5, 0.6, 0.5, 0.6], dtype=np.float32)
EMBEDDING_SIZE = 16


def _const(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name=name))


def build_detector(path: Path, *, quiet_strides: tuple[int, ...] = ()) -> Path:
    """`quiet_strides` never fire (one patch then gives one face, for end-to-end comparisons)."""
    nodes: list[onnx.NodeProto] = [
        _const("flat_shape", np.array([-1, 1], dtype=np.int64)),
        _const("score_gain", np.array([6.0], dtype=np.float32)),
        _const("score_bias", np.array([-1.0], dtype=np.float32)),
        _const("quiet_bias", np.array([-100.0], dtype=np.float32)),
        _const("box_gain", np.array([0.2], dtype=np.float32)),
        _const("box_base", np.full((1, 4), 1.6, dtype=np.float32)),
        _const("kps_gain", np.array([0.1], dtype=np.float32)),
        _const("kps_base", KPS_PATTERN[np.newaxis]),
    ]
    scores, boxes, kps = [], [], []
    for s in STRIDES:
        nodes += [
            helper.make_node("AveragePool", ["input.1"], [f"pool{s}"], kernel_shape=[s, s], strides=[s, s]),
            helper.make_node("ReduceMean", [f"pool{s}"], [f"mean{s}"], axes=[1], keepdims=1),
            helper.make_node("Transpose", [f"mean{s}"], [f"hwc{s}"], perm=[0, 2, 3, 1]),
            helper.make_node("Reshape", [f"hwc{s}", "flat_shape"], [f"cell{s}"]),
            # Two anchors per cell, anchor index fastest (as SCRFD's anchor centres are laid out).
            helper.make_node("Concat", [f"cell{s}", f"cell{s}"], [f"pair{s}"], axis=1),
            helper.make_node("Reshape", [f"pair{s}", "flat_shape"], [f"anchor{s}"]),
            helper.make_node("Mul", [f"anchor{s}", "score_gain"], [f"logit{s}a"]),
            helper.make_node(
                "Add", [f"logit{s}a", "quiet_bias" if s in quiet_strides else "score_bias"], [f"logit{s}"]
            ),
            helper.make_node("Sigmoid", [f"logit{s}"], [f"score_{s}"]),
            helper.make_node("Mul", [f"anchor{s}", "box_gain"], [f"box{s}a"]),
            helper.make_node("Add", [f"box{s}a", "box_base"], [f"bbox_{s}"]),
            helper.make_node("Mul", [f"anchor{s}", "kps_gain"], [f"kps{s}a"]),
            helper.make_node("Add", [f"kps{s}a", "kps_base"], [f"kps_{s}"]),
        ]
        scores.append(helper.make_tensor_value_info(f"score_{s}", TensorProto.FLOAT, [f"n{s}", 1]))
        boxes.append(helper.make_tensor_value_info(f"bbox_{s}", TensorProto.FLOAT, [f"n{s}", 4]))
        kps.append(helper.make_tensor_value_info(f"kps_{s}", TensorProto.FLOAT, [f"n{s}", 10]))
    graph = helper.make_graph(
        nodes,
        "tiny_scrfd",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "height", "width"])],
        scores + boxes + kps,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def build_recogniser(path: Path, seed: int = 7) -> Path:
    weights = np.random.default_rng(seed).standard_normal((48, EMBEDDING_SIZE)).astype(np.float32)
    nodes = [
        _const("fc_weights", weights),
        helper.make_node("AveragePool", ["input.1"], ["pool"], kernel_shape=[28, 28], strides=[28, 28]),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "fc_weights"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, EMBEDDING_SIZE])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def build_other(path: Path, size: int) -> Path:
    """A square-input model of another task (192 px: landmarks, 96 px: gender/age) to be ignored."""
    nodes = [
        helper.make_node("AveragePool", ["data"], ["pool"], kernel_shape=[size, size], strides=[size, size]),
        helper.make_node("Flatten", ["pool"], ["fc1"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        f"tiny_other_{size}",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def build_pack(directory: Path, *, license_file: bool = False, quiet_strides: tuple[int, ...] = ()) -> Path:
    """A pack laid out like buffalo_l: det_*.onnx and w*.onnx in one folder (names do not matter)."""
    directory.mkdir(parents=True, exist_ok=True)
    build_detector(directory / "det_tiny.onnx", quiet_strides=quiet_strides)
    build_recogniser(directory / "w_tiny.onnx")
    if license_file:
        (directory / "MODEL.LICENSE").write_text("{}")
    return directory


def bright_faces_image(width: int = 800, height: int = 600) -> np.ndarray:
    """Dark background with two bright squares of different sizes: the tiny detector's "faces"."""
    image = np.full((height, width, 3), 20, dtype=np.uint8)
    image[150:330, 120:300] = (250, 240, 230)
    image[300:380, 560:640] = (240, 250, 235)
    # Some texture so that alignment and embeddings depend on the exact crop.
    rng = np.random.default_rng(3)
    image = np.clip(image.astype(np.int16) + rng.integers(-15, 16, image.shape), 0, 255).astype(np.uint8)
    return image


def one_patch_image(seed: int) -> np.ndarray:
    """640 × 640 (the detector's own input size), dark, one bright textured 32 px cell: one "face"."""
    rng = np.random.default_rng(seed)
    image = np.full((640, 640, 3), 20, dtype=np.uint8)
    image[320:352, 320:352] = rng.integers(200, 256, (32, 32, 3), dtype=np.uint8)
    return image
