"""dlib's face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`) run in numpy.

The PyPI dlib build has no BLAS: its `compute_face_descriptor` spends ~140 ms of CPU on one 150 px chip.
The same network, read from the same weights file, runs here as im2col + one float32 matrix product per
convolution (OpenBLAS through numpy, one thread), a fraction of that time. Same weights, same output to
float rounding: stored descriptors stay valid (tests/unit/test_matching_resnet.py checks it against dlib,
and `DlibEngine` checks one chip against dlib at every load).

The file is dlib's own serialisation of the network type `anet_type` of dlib's
`tools/python/src/face_recognition.cpp` (written from the format, no dlib code). Layers are stored
outermost first: the loss layer, then each layer's version number down to the input layer, the input
layer's settings, then each layer's parameters from the bottom up. Tag and skip layers (which route the
residual connections) carry no parameters and no ids, so the topology comes from `ARCHITECTURE` below,
and the parser checks every version, layer name and shape it reads against it: another model file fails
with `ModelFormatError` instead of giving wrong descriptors.

Wire format (dlib/serialize.h): an integer is a control byte (bit 7: negative; low nibble: byte count)
then that many little-endian bytes; a string is its length then its bytes; a bool is the character
'0' or '1'; a float/double is an integer mantissa and an integer exponent (value = m · 2^e); a tensor
(version 2) is num_samples, k, nr, nc then raw little-endian float32s; an alias tensor (version 1) is
only its four dimensions.
"""

from __future__ import annotations

import ctypes
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import NDArray

Floats = NDArray[np.float32]
CHIP_SIZE = 150
CHIP_SHAPE = (CHIP_SIZE, CHIP_SIZE, 3)


class ModelFormatError(ValueError):
    """The weights file is not the network this module implements."""


# --- the network: dlib's anet_type, outermost layer first ------------------------------------------------


@dataclass(frozen=True)
class Layer:
    kind: str  # con, affine, relu, max_pool, avg_pool, add_prev, tag, skip, fc
    filters: int = 0  # con: output channels; fc: outputs
    size: int = 0  # con / pooling window (square); 0 = the whole input (avg_pool_everything)
    stride: int = 1
    tag: int = 0  # add_prev / tag / skip: the tag's number


def _block(n: int, stride: int) -> list[Layer]:
    """`block<N,affine,stride>`: affine(con 3x3/1(relu(affine(con 3x3/stride(...)))))."""
    return [
        Layer("affine"),
        Layer("con", filters=n, size=3, stride=1),
        Layer("relu"),
        Layer("affine"),
        Layer("con", filters=n, size=3, stride=stride),
    ]


def _ares(n: int) -> list[Layer]:
    """relu(add_prev1(block(tag1(...))))."""
    return [Layer("relu"), Layer("add_prev", tag=1), *_block(n, 1), Layer("tag", tag=1)]


def _ares_down(n: int) -> list[Layer]:
    """relu(add_prev2(avg_pool 2x2/2(skip1(tag2(block/2(tag1(...)))))))."""
    return [
        Layer("relu"),
        Layer("add_prev", tag=2),
        Layer("avg_pool", size=2, stride=2),
        Layer("skip", tag=1),
        Layer("tag", tag=2),
        *_block(n, 2),
        Layer("tag", tag=1),
    ]


ARCHITECTURE: tuple[Layer, ...] = (
    Layer("fc", filters=128),
    Layer("avg_pool", size=0, stride=1),
    *_ares_down(256),  # alevel0
    *_ares(256), *_ares(256), *_ares_down(256),  # alevel1
    *_ares(128), *_ares(128), *_ares_down(128),  # alevel2
    *_ares(64), *_ares(64), *_ares(64), *_ares_down(64),  # alevel3
    *_ares(32), *_ares(32), *_ares(32),  # alevel4
    Layer("max_pool", size=3, stride=2),
    Layer("relu"),
    Layer("affine"),
    Layer("con", filters=32, size=7, stride=2),
)  # fmt: skip
COMPUTATIONAL = {"con", "affine", "relu", "max_pool", "avg_pool", "add_prev", "fc"}  # add_layer<...>


# --- reading dlib's serialisation ------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def fail(self, message: str) -> ModelFormatError:
        return ModelFormatError(f"{message} (byte {self.pos})")

    def _take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise self.fail("file ends early")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def integer(self) -> int:
        control = self._take(1)[0]
        if control & 0x70 or not 1 <= control & 0x0F <= 8:
            raise self.fail(f"bad integer control byte {control:#x}")
        value = int.from_bytes(self._take(control & 0x0F), "little")
        return -value if control & 0x80 else value

    def expect_int(self, expected: int, what: str) -> None:
        value = self.integer()
        if value != expected:
            raise self.fail(f"{what}: expected {expected}, found {value}")

    def text(self) -> str:
        length = self.integer()
        if not 0 <= length <= 256:
            raise self.fail(f"implausible string length {length}")
        try:
            return self._take(length).decode("ascii")
        except UnicodeDecodeError as exc:
            raise self.fail("non-ASCII layer name") from exc

    def expect_string(self, expected: str) -> None:
        value = self.text()
        if value != expected:
            raise self.fail(f"expected layer '{expected}', found '{value}'")

    def number(self) -> float:
        mantissa, exponent = self.integer(), self.integer()
        if abs(exponent) >= 32000:  # dlib's markers for inf / -inf / nan
            raise self.fail("non-finite number")
        try:
            value = float(mantissa * 2.0**exponent)
        except OverflowError:
            value = math.inf
        if not math.isfinite(value):  # no double dlib writes is out of range: another file
            raise self.fail(f"number out of range ({mantissa} * 2^{exponent})")
        return value

    def flag(self) -> bool:
        value = self._take(1)
        if value not in (b"0", b"1"):
            raise self.fail(f"bad bool {value!r}")
        return value == b"1"

    def tensor(self) -> tuple[tuple[int, int, int, int], Floats]:
        self.expect_int(2, "tensor version")
        shape = (self.integer(), self.integer(), self.integer(), self.integer())
        if min(shape) < 0:
            raise self.fail(f"negative tensor shape {shape}")
        count = shape[0] * shape[1] * shape[2] * shape[3]
        raw = self._take(4 * count)
        return shape, np.frombuffer(raw, dtype="<f4").astype(np.float32)

    def alias(self) -> tuple[int, int, int, int]:
        self.expect_int(1, "alias tensor version")
        return (self.integer(), self.integer(), self.integer(), self.integer())


@dataclass
class _Conv:
    weights: Floats  # (size * size * in_channels, filters): im2col rows (dy, dx, channel) times filters
    bias: Floats
    size: int
    stride: int
    padding: int


@dataclass(frozen=True)
class _Step:
    """One operation of the forward pass, bottom up; a conv carries its folded affine and relu."""

    kind: str  # conv, max_pool, avg_pool, avg_all, add_prev, tag, skip, relu
    conv: _Conv | None = None
    relu: bool = False
    size: int = 0
    stride: int = 1
    tag: int = 0


@dataclass(frozen=True)
class Network:
    mean_rgb: tuple[float, float, float]
    steps: tuple[_Step, ...]
    fc: Floats  # (inputs, 128)


def _read_con(r: _Reader, layer: Layer, channels: int) -> _Conv:
    r.expect_string("con_4")
    shape, params = r.tensor()
    filters, rows, cols = r.integer(), r.integer(), r.integer()
    stride_y, stride_x, pad_y, pad_x = r.integer(), r.integer(), r.integer(), r.integer()
    expected_padding = 0 if layer.stride != 1 else layer.size // 2  # dlib's default for con<>
    if (filters, rows, cols, stride_y, stride_x, pad_y, pad_x) != (
        layer.filters, layer.size, layer.size, layer.stride, layer.stride, expected_padding, expected_padding
    ):  # fmt: skip
        raise r.fail(
            f"con: expected {layer.filters} filters {layer.size}x{layer.size}/{layer.stride} padding "
            f"{expected_padding}, found {filters} {rows}x{cols}/{stride_y},{stride_x} padding {pad_y},{pad_x}"
        )
    weight_shape, bias_shape = r.alias(), r.alias()
    if weight_shape != (filters, channels, rows, cols) or bias_shape != (1, filters, 1, 1):
        raise r.fail(f"con: filter shapes {weight_shape} {bias_shape} for {channels} input channels")
    if params.size != filters * channels * rows * cols + filters or shape[1:] != (1, 1, 1):
        raise r.fail(f"con: {params.size} parameters for filters {weight_shape}")
    for _ in range(4):  # learning-rate and weight-decay multipliers: training only
        r.number()
    weights = params[: filters * channels * rows * cols].reshape(filters, channels, rows, cols)
    return _Conv(
        weights=np.ascontiguousarray(weights.transpose(2, 3, 1, 0).reshape(-1, filters)),
        bias=params[filters * channels * rows * cols :].copy(),
        size=rows,
        stride=stride_y,
        padding=pad_y,
    )


def _read_affine(r: _Reader, channels: int) -> tuple[Floats, Floats]:
    r.expect_string("affine_")
    _, params = r.tensor()
    gamma, beta = r.alias(), r.alias()
    if gamma != (1, channels, 1, 1) or beta != gamma or params.size != 2 * channels:
        raise r.fail(f"affine: shapes {gamma} {beta} ({params.size} parameters) for {channels} channels")
    r.expect_int(0, "affine mode (CONV_MODE)")
    return params[:channels].copy(), params[channels:].copy()


def _read_pool(r: _Reader, name: str, layer: Layer) -> None:
    r.expect_string(name)
    found = [r.integer() for _ in range(6)]  # nr, nc, stride_y, stride_x, padding_y, padding_x
    expected = [layer.size, layer.size, layer.stride, layer.stride, 0, 0]
    if found != expected:
        raise r.fail(f"{name}: expected {expected}, found {found}")


def _read_fc(r: _Reader, layer: Layer, inputs: int) -> Floats:
    r.expect_string("fc_2")
    outputs, found_inputs = r.integer(), r.integer()
    _, params = r.tensor()
    weights, biases = r.alias(), r.alias()
    if (outputs, found_inputs) != (layer.filters, inputs) or weights != (inputs, outputs, 1, 1):
        raise r.fail(
            f"fc: {found_inputs} -> {outputs} with weights {weights}; expected {inputs} -> {layer.filters}"
        )
    r.expect_int(1, "fc bias mode (FC_NO_BIAS)")
    if params.size != inputs * outputs or biases != (0, 0, 0, 0):
        raise r.fail(f"fc: {params.size} parameters, biases {biases}")
    for _ in range(4):
        r.number()
    return np.ascontiguousarray(params.reshape(inputs, outputs))


def _layer_tail(r: _Reader, input_layer: bool, version: int) -> None:
    """add_layer's own state after the layer's details: three bools and training-time tensors."""
    for _ in range(3):
        r.flag()
    for _ in range(3):  # x_grad, cached_output, params_grad (grad_final for the input layer)
        r.tensor()
    if input_layer and version >= 3:
        r.integer()  # sample expansion factor


def parse(data: bytes) -> Network:
    """The network in `data` (the bytes of the .dat file); `ModelFormatError` if it is anything else."""
    r = _Reader(data)
    r.expect_int(1, "add_loss_layer version")
    r.expect_string("loss_metric_2")
    r.number(), r.number()  # margin, distance threshold: training only
    versions: list[int] = []
    for index, layer in enumerate(ARCHITECTURE):
        version = r.integer()
        bottom = index == len(ARCHITECTURE) - 1
        allowed = ((2, 3) if bottom else (2,)) if layer.kind in COMPUTATIONAL else (1,)
        if version not in allowed:
            raise r.fail(f"layer {index} ({layer.kind}): version {version}, expected one of {allowed}")
        versions.append(version)
    r.expect_string("input_rgb_image_sized")
    mean = (r.number(), r.number(), r.number())
    r.expect_int(CHIP_SIZE, "input rows")
    r.expect_int(CHIP_SIZE, "input columns")

    # Parameters, bottom up, tracking the tensor shape (channels, side) through tags and skips.
    channels, side = 3, CHIP_SIZE
    tags: dict[int, tuple[int, int]] = {}
    steps: list[_Step] = []
    pending: _Conv | None = None
    fc: Floats | None = None
    for index in range(len(ARCHITECTURE) - 1, -1, -1):
        layer = ARCHITECTURE[index]
        bottom = index == len(ARCHITECTURE) - 1
        if layer.kind == "tag":
            if pending is not None:
                steps.append(_Step("conv", conv=pending))
                pending = None
            tags[layer.tag] = (channels, side)
            steps.append(_Step("tag", tag=layer.tag))
            continue
        if layer.kind == "skip":
            channels, side = tags[layer.tag]
            steps.append(_Step("skip", tag=layer.tag))
            continue
        if layer.kind == "con":
            if pending is not None:
                steps.append(_Step("conv", conv=pending))
            pending = _read_con(r, layer, channels)
            channels = layer.filters
            side = (side + 2 * pending.padding - layer.size) // layer.stride + 1
        elif layer.kind == "affine":
            gamma, beta = _read_affine(r, channels)
            if pending is None:
                raise r.fail("affine without a convolution below it")
            pending.weights *= gamma  # fold: gamma·(w·x + b) + beta
            pending.bias = pending.bias * gamma + beta
        elif layer.kind == "relu":
            r.expect_string("relu_")
            if pending is not None:
                steps.append(_Step("conv", conv=pending, relu=True))
                pending = None
            else:
                steps.append(_Step("relu"))
        else:
            if pending is not None:
                steps.append(_Step("conv", conv=pending))
                pending = None
            if layer.kind == "max_pool":
                _read_pool(r, "max_pool_2", layer)
                side = (side - layer.size) // layer.stride + 1
                steps.append(_Step("max_pool", size=layer.size, stride=layer.stride))
            elif layer.kind == "avg_pool" and layer.size == 0:
                _read_pool(r, "avg_pool_2", layer)
                side = 1
                steps.append(_Step("avg_all"))
            elif layer.kind == "avg_pool":
                _read_pool(r, "avg_pool_2", layer)
                side = (side - layer.size) // layer.stride + 1
                steps.append(_Step("avg_pool", size=layer.size, stride=layer.stride))
            elif layer.kind == "add_prev":
                r.expect_string("add_prev_")
                other_channels, other_side = tags[layer.tag]
                channels, side = max(channels, other_channels), max(side, other_side)
                steps.append(_Step("add_prev", tag=layer.tag))
            elif layer.kind == "fc":
                fc = _read_fc(r, layer, channels * side * side)
            else:  # pragma: no cover - ARCHITECTURE has no other kinds
                raise AssertionError(layer.kind)
        _layer_tail(r, bottom, versions[index])
    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} bytes left after the network")
    assert fc is not None and pending is None
    return Network(mean_rgb=mean, steps=tuple(steps), fc=fc)


def load(path: Path) -> Network:
    return parse(Path(path).read_bytes())


# --- the forward pass (HWC float32) ----------------------------------------------------------------------


def _conv(x: Floats, conv: _Conv, relu: bool) -> Floats:
    if conv.padding:
        p = conv.padding
        padded = np.zeros((x.shape[0] + 2 * p, x.shape[1] + 2 * p, x.shape[2]), dtype=np.float32)
        padded[p:-p, p:-p] = x
        x = padded
    height, width, channels = x.shape
    k, s = conv.size, conv.stride
    out_h, out_w = (height - k) // s + 1, (width - k) // s + 1
    sh, sw, sc = x.strides
    patches = as_strided(x, (out_h, out_w, k, k, channels), (sh * s, sw * s, sh, sw, sc), writeable=False)
    out = patches.reshape(out_h * out_w, k * k * channels) @ conv.weights
    out += conv.bias
    if relu:
        np.maximum(out, 0, out=out)
    return out.reshape(out_h, out_w, -1)


def _pool(x: Floats, size: int, stride: int, reduce_max: bool) -> Floats:
    """Max or average over size × size windows, no padding (every window lies inside the input)."""
    height, width, _ = x.shape
    out_h, out_w = (height - size) // stride + 1, (width - size) // stride + 1
    out: Floats | None = None
    for dy in range(size):
        for dx in range(size):
            window = x[
                dy : dy + stride * (out_h - 1) + 1 : stride, dx : dx + stride * (out_w - 1) + 1 : stride
            ]
            if out is None:
                out = window.copy()
            elif reduce_max:
                np.maximum(out, window, out=out)
            else:
                out += window
    assert out is not None
    if not reduce_max:
        out *= np.float32(1.0 / (size * size))  # dlib's CPU pooling: the window's sum over its area
    return out


def _add(a: Floats, b: Floats) -> Floats:
    """dlib's add of two tensors of different shapes: the larger shape, each zero outside its own extent."""
    if a.shape == b.shape:
        return a + b
    shape = tuple(max(i, j) for i, j in zip(a.shape, b.shape, strict=True))
    out = np.zeros(shape, dtype=np.float32)
    out[: a.shape[0], : a.shape[1], : a.shape[2]] += a
    out[: b.shape[0], : b.shape[1], : b.shape[2]] += b
    return out


def forward(net: Network, chip: NDArray[np.uint8]) -> Floats:
    """The 128-d descriptor of a 150 × 150 RGB chip, as dlib's `compute_face_descriptor` gives it."""
    if chip.shape != CHIP_SHAPE or chip.dtype != np.uint8:
        raise ValueError(f"expected a {CHIP_SIZE}x{CHIP_SIZE} RGB uint8 chip, got {chip.shape} {chip.dtype}")
    x = (chip.astype(np.float32) - np.asarray(net.mean_rgb, dtype=np.float32)) * np.float32(1 / 256)
    tags: dict[int, Floats] = {}
    for step in net.steps:
        if step.kind == "conv":
            assert step.conv is not None
            x = _conv(x, step.conv, step.relu)
        elif step.kind == "relu":
            x = np.maximum(x, 0)
        elif step.kind == "tag":
            tags[step.tag] = x
        elif step.kind == "skip":
            x = tags[step.tag]
        elif step.kind == "add_prev":
            x = _add(x, tags[step.tag])
        elif step.kind == "max_pool":
            x = _pool(x, step.size, step.stride, reduce_max=True)
        elif step.kind == "avg_pool":
            x = _pool(x, step.size, step.stride, reduce_max=False)
        elif step.kind == "avg_all":
            x = x.mean(axis=(0, 1), dtype=np.float32)[np.newaxis, np.newaxis, :]
    # dlib's fc flattens in (k, nr, nc) order; after avg_pool_everything nr = nc = 1.
    flat = x.transpose(2, 0, 1).reshape(1, -1)
    return np.asarray((flat @ net.fc)[0], dtype=np.float32)


def self_check_chip() -> NDArray[np.uint8]:
    """A fixed 150 px test chip (smooth shading, stripes and noise; the same bytes on every machine)
    for comparing the port with dlib at load: every weight takes part whatever the picture shows.
    """
    rows, cols = np.mgrid[0:CHIP_SIZE, 0:CHIP_SIZE].astype(np.float64)
    shade = 40 * np.sin(cols / 13.0) * np.cos(rows / 19.0) + 30 * np.sin((rows + cols) / 7.0)
    noise = np.random.default_rng(150).normal(0.0, 18.0, CHIP_SHAPE)
    chip = np.array([130.0, 110.0, 95.0]) + shade[..., np.newaxis] + noise
    return np.asarray(np.clip(np.rint(chip), 0, 255), dtype=np.uint8)


# --- one BLAS thread --------------------------------------------------------------------------------------

_BLAS_LOCK = threading.Lock()


def single_threaded_blas() -> bool:
    """Set numpy's bundled OpenBLAS to one thread (process-wide); False if it cannot be found.

    The matching worker runs one process per core and counts CPU-seconds: extra BLAS threads on
    these small matrices only add spinning. The environment variable works only before numpy loads,
    so this calls OpenBLAS's own setter.
    """
    with _BLAS_LOCK:
        libs = Path(np.__file__).parent.parent / "numpy.libs"
        for lib_path in sorted(libs.glob("libscipy_openblas*.so*")) + sorted(libs.glob("libopenblas*.so*")):
            lib = ctypes.CDLL(str(lib_path))
            for name in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_",
                         "openblas_set_num_threads"):  # fmt: skip
                setter = getattr(lib, name, None)
                if setter is not None:
                    setter.argtypes = [ctypes.c_int]
                    setter(1)
                    return True
        return False
