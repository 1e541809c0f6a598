"""Small QONNX graphs built by hand with ``onnx.helper`` (no torch, no Brevitas).

Used by the error, determinism and fuzz tests: each builds in milliseconds and is small enough to
compile and mutate thousands of times.

:func:`dense_model` is the default two-layer network::

    x (1, 8) -> Quant(UINT4) -> MatMul(Quant(W1, INT4)) -> Mul -> Add -> Relu -> Quant(UINT4)
             -> MatMul(Quant(W2, INT4)) -> Add -> y (1, 4)

with hooks to put other nodes on the data path (``between``), change the activation width, drop
the quantizers or make the input shape dynamic.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

QONNX_DOMAIN = "qonnx.custom_op.general"
OPSET = 13


class Graph:
    """A tiny graph builder: every helper returns the name of the tensor it produces."""

    def __init__(self, seed: int = 0):
        self.nodes: list = []
        self.inits: list = []
        self.rng = np.random.default_rng(seed)
        self.k = 0

    def _name(self, prefix: str) -> str:
        self.k += 1
        return f"{prefix}_{self.k}"

    def const(self, arr, prefix: str = "c") -> str:
        name = self._name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(self, op: str, inputs: list, domain: str = "", **attrs) -> str:
        out = self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=self._name(op), domain=domain,
                                           **attrs))
        return out

    def quant(self, x: str, scale: float, bits: int, signed: int = 0, narrow: int = 0) -> str:
        ins = [x, self.const(np.float32(scale), "scale"), self.const(np.float32(0.0), "zp"),
               self.const(np.float32(bits), "bits")]
        return self.node("Quant", ins, domain=QONNX_DOMAIN, signed=signed, narrow=narrow,
                         rounding_mode="ROUND")

    def qweight(self, shape, bits: int = 4, scale=0.25) -> str:
        lim = (1 << (bits - 1)) - 1
        w = (self.rng.integers(-lim, lim + 1, size=shape) * np.asarray(scale)).astype(np.float32)
        ins = [self.const(w, "w"), self.const(np.asarray(scale, dtype=np.float32), "wscale"),
               self.const(np.float32(0.0), "zp"), self.const(np.float32(bits), "bits")]
        return self.node("Quant", ins, domain=QONNX_DOMAIN, signed=1, narrow=1, rounding_mode="ROUND")

    def model(self, x: str, x_shape, y: str, y_shape, name: str = "handmade") -> onnx.ModelProto:
        g = helper.make_graph(self.nodes, name,
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info(y, TensorProto.FLOAT, y_shape)],
                              initializer=self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET),
                                                helper.make_opsetid(QONNX_DOMAIN, 1)],
                              producer_name="streamfold-tests")
        m.ir_version = 8
        return m


def dense_model(*, features=(8, 6, 4), act_bits: int = 4, in_bits: int = 4, w_bits: int = 4,
                between=None, quantized: bool = True, dynamic: bool = False, seed: int = 0,
                out_quant: bool = False) -> onnx.ModelProto:
    """The default two-layer network (see the module docstring).

    ``between(g, t) -> t``: extra nodes between the first matrix product's per-channel ops and its
    activation quantizer. ``quantized=False``: the same network without any quantizer (a float
    model). ``dynamic``: a symbolic batch and feature dimension. ``out_quant``: end in a Quant.
    """
    f0, f1, f2 = features
    g = Graph(seed)
    x = "x"
    t = g.quant(x, 1 / 15, in_bits) if quantized else x
    w1 = g.qweight((f0, f1), w_bits) if quantized else g.const(
        g.rng.standard_normal((f0, f1)).astype(np.float32), "w")
    t = g.node("MatMul", [t, w1])
    t = g.node("Mul", [t, g.const(g.rng.uniform(0.5, 1.5, (1, f1)).astype(np.float32), "mul")])
    t = g.node("Add", [t, g.const(g.rng.uniform(-1, 1, (1, f1)).astype(np.float32), "bias")])
    t = g.node("Relu", [t])
    if between is not None:
        t = between(g, t)
    if quantized:
        t = g.quant(t, 0.5, act_bits)
    w2 = g.qweight((f1, f2), w_bits) if quantized else g.const(
        g.rng.standard_normal((f1, f2)).astype(np.float32), "w")
    t = g.node("MatMul", [t, w2])
    t = g.node("Add", [t, g.const(g.rng.uniform(-1, 1, (1, f2)).astype(np.float32), "bias")])
    if out_quant:
        t = g.quant(t, 0.25, 4, signed=1)
    x_shape = ["batch", "features"] if dynamic else [1, f0]
    return g.model(x, x_shape, t, [1, f2] if not dynamic else ["batch", f2])


def save(model: onnx.ModelProto, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def conv_model(*, channels=(1, 4, 6), size: int = 6, act_bits: int = 2, w_bits: int = 2,
               seed: int = 0) -> onnx.ModelProto:
    """A small convolutional network::

        x (1, C0, S, S) -> Quant(UINT4) -> Conv 3x3 pad 1 (Quant W) -> BatchNormalization -> Relu
          -> Quant(UINT act_bits) -> MaxPool 2x2 -> Conv 3x3 depthwise -> Mul -> Quant
          -> Flatten -> Gemm(Quant W, bias) -> y (1, 3)
    """
    c0, c1, c2 = channels
    g = Graph(seed)
    t = g.quant("x", 1 / 15, 4)
    t = g.node("Conv", [t, g.qweight((c1, c0, 3, 3), w_bits, 0.5)], kernel_shape=[3, 3],
               pads=[1, 1, 1, 1], strides=[1, 1])
    bn = [g.const(g.rng.uniform(0.5, 1.5, c1).astype(np.float32)),
          g.const(g.rng.uniform(-1, 1, c1).astype(np.float32)),
          g.const(g.rng.uniform(-1, 1, c1).astype(np.float32)),
          g.const(g.rng.uniform(0.5, 2, c1).astype(np.float32))]
    t = g.node("BatchNormalization", [t] + bn, epsilon=1e-5)
    t = g.node("Relu", [t])
    t = g.quant(t, 0.5, act_bits)
    t = g.node("MaxPool", [t], kernel_shape=[2, 2], strides=[2, 2])
    t = g.node("Conv", [t, g.qweight((c1, 1, 3, 3), w_bits, 0.5)], kernel_shape=[3, 3],
               pads=[1, 1, 1, 1], group=c1)
    t = g.node("Mul", [t, g.const(g.rng.uniform(0.2, 1, (1, c1, 1, 1)).astype(np.float32))])
    t = g.quant(t, 0.5, act_bits)
    t = g.node("Flatten", [t], axis=1)
    half = size // 2
    t = g.node("Gemm", [t, g.qweight((3, c1 * half * half), w_bits, 0.25),
                        g.const(g.rng.uniform(-1, 1, 3).astype(np.float32), "bias")], transB=1)
    return g.model("x", [1, c0, size, size], t, [1, 3])


def residual_model(*, channels: int = 4, size: int = 6, join: str = "Add", skip_scale: float = 1.0,
                   seed: int = 0) -> onnx.ModelProto:
    """A residual (or concatenating) block::

        x (1, C, S, S) -> Quant(UINT4, s) -+-> Conv 3x3 -> BN -> Relu -> Quant(UINT4) -> Conv 3x3
                                           |     -> BN -> Quant(INT5, s) --+
                                           +--------------------------------+-> Add (or Concat)
          -> Relu -> Quant(UINT4) -> GlobalAveragePool -> Flatten -> Gemm -> y (1, 3)

    ``skip_scale``: the skip path is requantized with ``s * skip_scale`` (1: equal scales, a
    power of two: exact rescaling, anything else: an Add that cannot be made exact).
    """
    c = channels
    g = Graph(seed)
    s = 1 / 15
    x = g.quant("x", s, 4)

    def bn(t):
        p = [g.const(g.rng.uniform(0.5, 1.5, c).astype(np.float32)),
             g.const(g.rng.uniform(-1, 1, c).astype(np.float32)),
             g.const(g.rng.uniform(-0.5, 0.5, c).astype(np.float32)),
             g.const(g.rng.uniform(0.5, 2, c).astype(np.float32))]
        return g.node("BatchNormalization", [t] + p, epsilon=1e-5)

    t = g.node("Conv", [x, g.qweight((c, c, 3, 3), 4, 0.25)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    t = g.quant(g.node("Relu", [bn(t)]), 0.25, 4)
    t = g.node("Conv", [t, g.qweight((c, c, 3, 3), 4, 0.25)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    t = g.quant(bn(t), s, 5, signed=1)
    skip = x if skip_scale == 1.0 else g.quant(x, s * skip_scale, 6, signed=1)
    if join == "Add":
        t = g.node("Add", [t, skip])
        n_out = c
    else:
        t = g.node("Concat", [t, skip], axis=1)
        n_out = 2 * c
    t = g.quant(g.node("Relu", [t]), 0.3, 4)
    t = g.node("GlobalAveragePool", [t])
    t = g.node("Flatten", [t], axis=1)
    t = g.node("Gemm", [t, g.qweight((3, n_out), 4, 0.25),
                        g.const(g.rng.uniform(-1, 1, 3).astype(np.float32), "bias")], transB=1)
    return g.model("x", [1, c, size, size], t, [1, 3])


def avgpool_model(*, channels: int = 4, size: int = 8, kernel: int = 2, drop_bits: int = 2,
                  rounding: str = "FLOOR", seed: int = 0) -> onnx.ModelProto:
    """A windowed average pool as Brevitas's TruncAvgPool2d exports it::

        x (1, C, S, S) -> Quant(UINT4) -> Conv 3x3 -> BN -> Relu -> Quant(UINT4, s) -> AveragePool k x k
          -> Trunc(scale s/k², in 4 + log2(k²) bits -> out 4 bits, output scale s/k² * 2**drop_bits)
          -> Flatten -> Gemm -> y (1, 3)

    ``drop_bits``: how many low bits of the window sum the Trunc drops (0: an exact average).
    """
    c = channels
    g = Graph(seed)
    t = g.quant("x", 1 / 15, 4)
    t = g.node("Conv", [t, g.qweight((c, c, 3, 3), 4, 0.25)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    p = [g.const(g.rng.uniform(0.5, 1.5, c).astype(np.float32)),
         g.const(g.rng.uniform(-1, 1, c).astype(np.float32)),
         g.const(g.rng.uniform(-0.5, 0.5, c).astype(np.float32)),
         g.const(g.rng.uniform(0.5, 2, c).astype(np.float32))]
    t = g.node("BatchNormalization", [t] + p, epsilon=1e-5)
    s = 0.25
    t = g.quant(g.node("Relu", [t]), s, 4)
    t = g.node("AveragePool", [t], kernel_shape=[kernel, kernel], strides=[kernel, kernel])
    sum_bits = 4 + int(np.ceil(np.log2(kernel * kernel)))
    ins = [t, g.const(np.float32(s / kernel ** 2), "tscale"), g.const(np.float32(0.0), "zp"),
           g.const(np.float32(sum_bits), "bits"),
           g.const(np.float32(s / kernel ** 2 * 2 ** drop_bits), "oscale"),
           g.const(np.float32(sum_bits - drop_bits), "obits")]
    t = g.node("Trunc", ins, domain=QONNX_DOMAIN, signed=0, narrow=0, rounding_mode=rounding)
    t = g.node("Flatten", [t], axis=1)
    n = c * (size // kernel) ** 2
    t = g.node("Gemm", [t, g.qweight((3, n), 4, 0.25),
                        g.const(g.rng.uniform(-1, 1, 3).astype(np.float32), "bias")], transB=1)
    m = g.model("x", [1, c, size, size], t, [1, 3])
    for o in m.opset_import:
        if o.domain == QONNX_DOMAIN:
            o.version = 2  # Trunc version 2 (with an output scale), as Brevitas exports it
    return m


def channel_scale_model(*, channels: int = 4, size: int = 6, mixing: bool = False, seed: int = 0):
    """Per-channel activation scales, as Brevitas's MobileNet-v1 has them on its pointwise layers::

        x -> Quant(UINT4) -> Conv 1x1 -> BN -> Relu -> Quant(UINT4, scale per channel (1, C, 1, 1))
          -> depthwise Conv 3x3 (or, ``mixing``, a regular 3x3 Conv) -> BN -> Relu -> Quant(UINT4)
          -> GlobalAveragePool -> Flatten -> Gemm -> y (1, 3)
    """
    c = channels
    g = Graph(seed)

    def bn(t):
        p = [g.const(g.rng.uniform(0.5, 1.5, c).astype(np.float32)),
             g.const(g.rng.uniform(-1, 1, c).astype(np.float32)),
             g.const(g.rng.uniform(-0.5, 0.5, c).astype(np.float32)),
             g.const(g.rng.uniform(0.5, 2, c).astype(np.float32))]
        return g.node("BatchNormalization", [t] + p, epsilon=1e-5)

    t = g.quant("x", 1 / 15, 4)
    t = g.node("Conv", [t, g.qweight((c, c, 1, 1), 4, 0.25)], kernel_shape=[1, 1])
    scales = g.rng.uniform(0.1, 0.4, (1, c, 1, 1)).astype(np.float32)
    t = g.quant(g.node("Relu", [bn(t)]), scales, 4)
    if mixing:
        t = g.node("Conv", [t, g.qweight((c, c, 3, 3), 4, 0.25)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    else:
        t = g.node("Conv", [t, g.qweight((c, 1, 3, 3), 4, 0.25)], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                   group=c)
    t = g.quant(g.node("Relu", [bn(t)]), 0.3, 4)
    t = g.node("GlobalAveragePool", [t])
    t = g.node("Flatten", [t], axis=1)
    t = g.node("Gemm", [t, g.qweight((3, c), 4, 0.25),
                        g.const(g.rng.uniform(-1, 1, 3).astype(np.float32), "bias")], transB=1)
    return g.model("x", [1, c, size, size], t, [1, 3])


def conv1d_model(*, channels=(2, 4), length: int = 16, seed: int = 0) -> onnx.ModelProto:
    """A 1-D convolutional network (as ``Conv1d`` exports it)::

        x (1, C0, L) -> Quant(UINT4) -> Conv k=3 pad 1 -> Mul (per channel (C1, 1)) -> Relu
          -> Quant(UINT3) -> MaxPool k=2 -> Flatten -> Gemm -> y (1, 3)
    """
    c0, c1 = channels
    g = Graph(seed)
    t = g.quant("x", 1 / 15, 4)
    t = g.node("Conv", [t, g.qweight((c1, c0, 3), 4, 0.25)], kernel_shape=[3], pads=[1, 1], strides=[1])
    t = g.node("Mul", [t, g.const(g.rng.uniform(0.2, 1, (c1, 1)).astype(np.float32))])
    t = g.quant(g.node("Relu", [t]), 0.5, 3)
    t = g.node("MaxPool", [t], kernel_shape=[2], strides=[2])
    t = g.node("Flatten", [t], axis=1)
    t = g.node("Gemm", [t, g.qweight((3, c1 * length // 2), 4, 0.25),
                        g.const(g.rng.uniform(-1, 1, 3).astype(np.float32), "bias")], transB=1)
    return g.model("x", [1, c0, length], t, [1, 3])


def subpixel_model(*, channels: int = 2, size: int = 6, block: int = 2, op: str = "DepthToSpace",
                   mode: str = "CRD", inside: bool = False, seed: int = 0) -> onnx.ModelProto:
    """A super-resolution tail: the reorder ends the model (ESPCN's PixelShuffle)::

        x (1, C, S, S) -> Quant(UINT4) -> Conv 3x3 pad 1 (-> C*r² channels) -> Relu -> Quant(UINT4)
          -> DepthToSpace(r, mode) (or nearest Resize by r) -> y

    ``inside``: a 3x3 convolution (-> Relu -> Quant) follows the reorder, which then is a stream unit.
    """
    c, r = channels, block
    g = Graph(seed)
    t = g.quant("x", 1 / 15, 4)
    oc = c * r * r if op == "DepthToSpace" else c
    t = g.node("Conv", [t, g.qweight((oc, c, 3, 3), 4, 0.25)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    t = g.quant(g.node("Relu", [t]), 0.25, 4)
    if op == "DepthToSpace":
        t = g.node("DepthToSpace", [t], blocksize=r, mode=mode)
    else:
        t = g.node("Resize", [t, "", g.const(np.array([1, 1, r, r], dtype=np.float32), "scales")],
                   mode="nearest")
    if inside:
        t = g.node("Conv", [t, g.qweight((c, c, 3, 3), 4, 0.25)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        t = g.quant(g.node("Relu", [t]), 0.5, 4)
    return g.model("x", [1, c, size, size], t, [1, c, size * r, size * r])
