"""Integer-exact NumPy reference of every unit kind and of a whole pipeline.

Values, not codes: tensors hold element values (bipolar as -1/+1) with a leading frame axis,
shaped ``(frames, *stream.shape)``. The semantics are those stated in ``streamfold.compiler.ir``.
"""
from __future__ import annotations

import numpy as np

from streamfold.compiler.ir import MatrixVectorUnit, Pipeline

_REFERENCES = {}


def reference_of(kind: str):
    """Decorator: register the reference function of a unit kind."""
    def deco(fn):
        _REFERENCES[kind] = fn
        return fn
    return deco


def apply_thresholds(acc: np.ndarray, thresholds: np.ndarray, out_dtype, out_bias: int) -> np.ndarray:
    """acc (..., C), thresholds (C, T) ascending -> output values (..., C)."""
    count = (acc[..., :, None] >= thresholds).sum(axis=-1).astype(np.int64)
    if out_dtype.bipolar:
        return 2 * count - 1
    return out_bias + count


@reference_of("mvau")
def mvau_reference(u: MatrixVectorUnit, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(u.weights, dtype=np.int64)
    dot = x @ w.T
    acc = (dot + u.mw) // 2 if u.binary else dot
    if u.thresholds is None:
        return acc
    return apply_thresholds(acc, np.asarray(u.thresholds, dtype=np.int64), u.out_dtype, u.out_bias)


def run_unit(unit, x: np.ndarray) -> np.ndarray:
    try:
        fn = _REFERENCES[unit.kind]
    except KeyError:
        raise NotImplementedError(f"no reference for unit kind {unit.kind!r}") from None
    frames = x.shape[0]
    x = np.asarray(x, dtype=np.int64).reshape((frames,) + tuple(unit.in_stream.shape))
    y = fn(unit, x)
    return np.asarray(y, dtype=np.int64).reshape((frames,) + tuple(unit.out_stream.shape))


def run_pipeline(pipeline: Pipeline, x: np.ndarray, upto: int | None = None) -> np.ndarray:
    """Run frames ``x`` (values, ``(frames, *in_stream.shape)``) through the units."""
    y = np.asarray(x, dtype=np.int64)
    for unit in pipeline.units[:upto]:
        y = run_unit(unit, y)
    return y


# ----------------------------------------------------------------------------- convolution units
@reference_of("swg")
def swg_reference(u, x: np.ndarray) -> np.ndarray:
    """Sliding windows, ``(frames, OH, OW, K*C)`` in ``(ky, kx, c)`` order, or
    ``(frames, OH, OW, C/simd, K, simd)`` when ``depthwise`` (see ``SlidingWindowUnit``)."""
    x = np.asarray(x, dtype=np.int64)
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = u.kernel, u.stride, u.pads
    oh, ow = u.out_hw
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=int(u.pad_value))
    win = np.empty((n, oh, ow, kh, kw, c), dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            win[:, :, :, ky, kx, :] = xp[:, ky:ky + sh * (oh - 1) + 1:sh, kx:kx + sw * (ow - 1) + 1:sw, :]
    if u.depthwise:
        cf = c // u.simd
        win = win.reshape(n, oh, ow, kh, kw, cf, u.simd).transpose(0, 1, 2, 5, 3, 4, 6)
        return win.reshape(n, oh, ow, cf, kh * kw, u.simd)
    return win.reshape(n, oh, ow, kh * kw * c)


def _vvau_acc(u, x: np.ndarray) -> np.ndarray:
    """x ``(frames, *rows, C/pe, K, pe)`` values -> accumulators ``(frames, *rows, C)``."""
    x = np.asarray(x, dtype=np.int64)
    cf, k, pe = u.channels // u.pe, u.k, u.pe
    lead = x.shape[:-3]
    xv = x.reshape(lead + (cf, k, pe)).swapaxes(-1, -2).reshape(lead + (cf * pe, k))  # (..., C, K)
    w = np.asarray(u.weights, dtype=np.int64)
    dot = (xv * w).sum(axis=-1)
    return (dot + k) // 2 if u.binary else dot


@reference_of("vvau")
def vvau_reference(u, x: np.ndarray) -> np.ndarray:
    acc = _vvau_acc(u, x)
    if u.thresholds is None:
        return acc
    return apply_thresholds(acc, np.asarray(u.thresholds, dtype=np.int64), u.out_dtype, u.out_bias)


@reference_of("maxpool")
def maxpool_reference(u, x: np.ndarray) -> np.ndarray:
    """Max over each window (bipolar: max of -1/+1 values, the OR of the bits)."""
    x = np.asarray(x, dtype=np.int64)
    (kh, kw), (sh, sw) = u.kernel, u.stride
    oh, ow = u.out_hw
    out = None
    for ky in range(kh):
        for kx in range(kw):
            v = x[:, ky:ky + sh * (oh - 1) + 1:sh, kx:kx + sw * (ow - 1) + 1:sw, :]
            out = v if out is None else np.maximum(out, v)
    return out


@reference_of("gsumpool")
def gsumpool_reference(u, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64)
    return x.sum(axis=(1, 2))
