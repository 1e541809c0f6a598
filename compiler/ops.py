"""NumPy semantics of the ONNX/QONNX operators streamfold evaluates itself.

Used for three things, always with these same definitions: folding constant subgraphs, probing
the per-channel chains that become thresholds, and the host-side float steps at both ends of a
model. Quantizers use qonnx's own functions, so rounding is exactly qonnx's (``ROUND`` is
round-half-to-even).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from qonnx.custom_op.general.bipolar_quant import binary_quant
from qonnx.custom_op.general.intquant import int_quant
from qonnx.custom_op.general.trunc import trunc_v1, trunc_v2

from .errors import CompileError


@dataclass
class OpCall:
    """One operator applied to a single dynamic tensor.

    ``inputs`` holds the node's inputs in order, with ``None`` at the slot of the dynamic tensor
    and constant arrays elsewhere.
    """

    op_type: str
    inputs: list
    attrs: dict = field(default_factory=dict)
    node: str = ""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        args = [x if a is None else a for a in self.inputs]
        return evaluate(self.op_type, args, self.attrs, self.node)

    def to_json(self, key: str, arrays: dict) -> dict:
        ins = []
        for i, a in enumerate(self.inputs):
            if a is None:
                ins.append(None)
            else:
                k = f"{key}.in{i}"
                arrays[k] = np.asarray(a)
                ins.append(k)
        return {"op_type": self.op_type, "inputs": ins, "attrs": self.attrs, "node": self.node}

    @staticmethod
    def from_json(d: dict, arrays) -> "OpCall":
        ins = [None if k is None else np.asarray(arrays[k]) for k in d["inputs"]]
        return OpCall(d["op_type"], ins, dict(d.get("attrs", {})), d.get("node", ""))


def run_chain(ops: list, x: np.ndarray) -> np.ndarray:
    for op in ops:
        x = op(x)
    return x


def quant_int(x, scale, zeropt, bitwidth, signed, narrow, rounding_mode="ROUND") -> np.ndarray:
    """The integer levels qonnx's Quant produces for ``x`` (before rescaling)."""
    bitwidth = np.asarray(bitwidth, dtype=np.float32)
    out = int_quant(x, scale, zeropt, bitwidth, signed, narrow, rounding_mode)
    return np.round(np.asarray(out, dtype=np.float64) / np.asarray(scale, dtype=np.float64)
                    + np.asarray(zeropt, dtype=np.float64)).astype(np.int64)


def trunc_int(x, scale, zeropt, in_bits, out_scale, out_bits, signed, narrow,
              rounding_mode="FLOOR") -> np.ndarray:
    """The integer levels qonnx's Trunc (version 2) produces for ``x`` (before rescaling by
    ``out_scale``); ``zeropt`` is 0 where streamfold calls it."""
    y = trunc_v2(np.asarray(x, dtype=np.float64), scale, zeropt, in_bits, narrow, signed,
                 np.float64(out_scale), out_bits, rounding_mode)
    return np.round(np.asarray(y, dtype=np.float64) / np.float64(out_scale)).astype(np.int64)


def bipolar_int(x) -> np.ndarray:
    """The -1/+1 levels qonnx's BipolarQuant produces for ``x`` (before rescaling)."""
    return np.where(np.asarray(x) >= 0.0, 1, -1).astype(np.int64)


def _bn(x, scale, bias, mean, var, attrs):
    eps = attrs.get("epsilon", 1e-5)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    r = lambda a: np.asarray(a).reshape(shape)  # noqa: E731
    return (x - r(mean)) / np.sqrt(r(var) + np.asarray(eps, dtype=x.dtype)) * r(scale) + r(bias)


def depth_to_space(x: np.ndarray, r: int, mode: str = "DCR") -> np.ndarray:
    """ONNX DepthToSpace of an NCHW tensor (DCR or CRD, the ONNX definitions)."""
    n, c, h, w = x.shape
    if mode == "DCR":
        y = x.reshape(n, r, r, c // (r * r), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(n, c // (r * r), r, r, h, w).transpose(0, 1, 4, 2, 5, 3)
    return y.reshape(n, c // (r * r), h * r, w * r)


def resize_scales(args, attrs, op_type: str, shape) -> tuple:
    """The integer (N, C, H, W) factors of a nearest-neighbour Resize/Upsample, or ValueError."""
    if op_type == "Upsample":
        scales = np.asarray(args[1] if len(args) > 1 else attrs["scales"], dtype=np.float64)
    else:
        scales = np.asarray(args[2], dtype=np.float64) if len(args) > 2 and args[2] is not None and \
            np.size(args[2]) else None
        if scales is None and len(args) > 3 and args[3] is not None:
            scales = np.asarray(args[3], dtype=np.float64) / np.asarray(shape, dtype=np.float64)
    mode = attrs.get("mode", "nearest")
    cm = attrs.get("coordinate_transformation_mode", "half_pixel")
    nm = attrs.get("nearest_mode", "round_prefer_floor")
    if op_type == "Resize" and (cm, nm) not in (("half_pixel", "round_prefer_floor"), ("asymmetric", "floor")):
        # with whole factors, these two pick input pixel x // s; others (align_corners ...) do not
        raise ValueError(f"coordinate mode {cm!r} with nearest mode {nm!r} is not a whole-factor repeat; "
                         "use asymmetric/floor or the default half_pixel/round_prefer_floor")
    if scales is None or mode != "nearest" or np.any(scales != np.round(scales)) or np.any(scales < 1):
        raise ValueError(f"only nearest-neighbour resizing by whole factors is supported "
                         f"(mode {mode!r}, scales {None if scales is None else scales.tolist()})")
    return tuple(int(v) for v in scales)


def _resize_nearest(x, args, attrs, op_type, node):
    f = resize_scales(args, attrs, op_type, x.shape)
    for axis, k in enumerate(f):
        if k > 1:
            x = np.repeat(x, k, axis=axis)
    return x


def _reshape(x, shape, attrs):
    shape = [int(s) for s in np.asarray(shape).reshape(-1)]
    if not attrs.get("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    # the model was exported with batch 1: keep whatever batch the caller streams
    if shape and shape[0] == 1 and x.shape[0] != 1:
        shape[0] = x.shape[0]
    return x.reshape(shape)


def _flatten(x, attrs):
    axis = attrs.get("axis", 1)
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


def _gemm_const(a, b, c, attrs):
    if attrs.get("transA", 0):
        a = a.T
    if attrs.get("transB", 0):
        b = b.T
    y = attrs.get("alpha", 1.0) * (a @ b)
    if c is not None:
        y = y + attrs.get("beta", 1.0) * c
    return y


_ELEMENTWISE = {
    "Mul": lambda a, b: a * b,
    "Add": lambda a, b: a + b,
    "Sub": lambda a, b: a - b,
    "Div": lambda a, b: a / b,
    "Pow": lambda a, b: np.power(a, b),
    "Max": np.maximum,
    "Min": np.minimum,
}

_UNARY = {
    "Relu": lambda x: np.maximum(x, 0),
    "Sqrt": np.sqrt,
    "Neg": np.negative,
    "Identity": lambda x: x,
    "Dropout": lambda x: x,
    "Reciprocal": lambda x: 1 / x,
    # activations a lookup table takes between two quantizers (ONNX definitions, opset 14+)
    "HardSwish": lambda x: x * np.clip(x / 6 + 0.5, 0, 1),
    "HardSigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
    "Sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "Tanh": np.tanh,
    "Erf": lambda x: _erf(x),
    "Exp": np.exp,
}


def _erf(x):
    import math
    return np.vectorize(math.erf, otypes=[np.asarray(x).dtype])(x)

#: operators streamfold can evaluate (constants, chains, host steps)
EVALUABLE = sorted(set(_ELEMENTWISE) | set(_UNARY) | {
    "BatchNormalization", "Quant", "BipolarQuant", "Trunc", "Reshape", "Flatten", "Transpose", "Squeeze",
    "Unsqueeze", "Clip", "Cast", "MatMul", "Gemm", "Constant", "DepthToSpace", "Resize", "Upsample"})
#: elementwise ops that are not monotone (or not known to be): thresholds cannot take them, a
#: lookup table can
NON_MONOTONE = {"HardSwish", "Erf"}


def _same_float(args):
    """Keep the computation in the dynamic operand's float type (float32 as onnxruntime does)."""
    dts = [a.dtype for a in args if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    dt = np.float64 if np.float64 in dts else (dts[0] if dts else np.float64)
    return [np.asarray(a, dtype=dt) if isinstance(a, np.ndarray) and a.dtype.kind in "fiu" else a
            for a in args]


def evaluate(op_type: str, args: list, attrs: dict, node: str = "") -> np.ndarray:
    """Evaluate one operator on NumPy arrays.

    Inputs it cannot take (shapes that do not broadcast, missing inputs, unknown attribute values)
    raise a one-line :class:`CompileError` naming the node; floating-point warnings are silenced
    (NaN and inf are the callers' to check where they matter).
    """
    try:
        with np.errstate(all="ignore"):
            return _evaluate(op_type, args, attrs, node)
    except CompileError:
        raise
    except (ValueError, IndexError, TypeError, KeyError, ArithmeticError, AttributeError) as e:
        shapes = ", ".join("-" if a is None else str(np.shape(a)) for a in args)
        msg = str(e).strip().splitlines()
        raise CompileError(f"node {node!r} ({op_type}): cannot be evaluated on inputs of shapes "
                           f"({shapes}) and attributes {str(attrs)[:120]} ({type(e).__name__}: "
                           f"{msg[0][:160] if msg else ''})") from None


def _evaluate(op_type: str, args: list, attrs: dict, node: str = "") -> np.ndarray:
    if op_type in _ELEMENTWISE:
        a, b = _same_float([np.asarray(args[0]), np.asarray(args[1])])
        return _ELEMENTWISE[op_type](a, b)
    if op_type in _UNARY:
        return _UNARY[op_type](np.asarray(args[0]))
    if op_type == "BatchNormalization":
        x = np.asarray(args[0])
        rest = [np.asarray(a, dtype=x.dtype) for a in args[1:5]]
        return _bn(x, *rest, attrs)
    if op_type == "Quant":
        x, scale, zp, bits = (np.asarray(a) for a in args[:4])
        return int_quant(x, scale, zp, bits, attrs.get("signed", 1), attrs.get("narrow", 0),
                         attrs.get("rounding_mode", "ROUND"))
    if op_type == "BipolarQuant":
        return binary_quant(np.asarray(args[0]), np.asarray(args[1]))
    if op_type == "Trunc":  # qonnx's Trunc: version 2 has an output scale input (6 inputs)
        a = [np.asarray(v) for v in args]
        mode = attrs.get("rounding_mode", "FLOOR")
        if len(a) >= 6:
            return trunc_v2(a[0], a[1], a[2], a[3], attrs.get("narrow", 0), attrs.get("signed", 1),
                            a[4], a[5], mode)
        return trunc_v1(a[0], a[1], a[2], a[3], a[4], mode)
    if op_type == "Reshape":
        return _reshape(np.asarray(args[0]), args[1], attrs)
    if op_type == "Flatten":
        return _flatten(np.asarray(args[0]), attrs)
    if op_type == "Transpose":
        x = np.asarray(args[0])
        return np.transpose(x, attrs.get("perm") or None)
    if op_type == "Squeeze":
        axes = attrs.get("axes") if len(args) < 2 else [int(a) for a in np.asarray(args[1]).ravel()]
        return np.squeeze(np.asarray(args[0]), axis=tuple(axes) if axes else None)
    if op_type == "Unsqueeze":
        axes = attrs.get("axes") if len(args) < 2 else [int(a) for a in np.asarray(args[1]).ravel()]
        return np.expand_dims(np.asarray(args[0]), tuple(axes))
    if op_type == "Clip":
        x = np.asarray(args[0])
        lo = args[1] if len(args) > 1 and args[1] is not None else attrs.get("min", -np.inf)
        hi = args[2] if len(args) > 2 and args[2] is not None else attrs.get("max", np.inf)
        return np.clip(x, lo, hi)
    if op_type == "DepthToSpace":
        return depth_to_space(np.asarray(args[0]), int(attrs["blocksize"]), attrs.get("mode", "DCR"))
    if op_type in ("Resize", "Upsample"):
        return _resize_nearest(np.asarray(args[0]), args, attrs, op_type, node)
    if op_type == "Cast":
        return np.asarray(args[0])
    if op_type == "MatMul":
        return np.asarray(args[0]) @ np.asarray(args[1])
    if op_type == "Gemm":
        return _gemm_const(np.asarray(args[0]), np.asarray(args[1]),
                           None if len(args) < 3 or args[2] is None else np.asarray(args[2]), attrs)
    raise CompileError(f"node {node!r}: op {op_type} cannot be evaluated; supported: {', '.join(EVALUABLE)}")
