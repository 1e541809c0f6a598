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
