"""Frames of element values <-> beats on a stream (see ``streamfold.compiler.ir``)."""
from __future__ import annotations

import numpy as np

from streamfold.compiler.ir import StreamSpec


def pack(values: np.ndarray, spec: StreamSpec) -> list[int]:
    """Frames ``(frames, *spec.shape)`` of values -> list of beats (Python ints), element 0 in the LSBs."""
    codes = spec.dtype.encode(np.asarray(values).reshape(-1, spec.fold))
    bits = spec.dtype.bits
    beats = []
    for row in codes.tolist():
        word = 0
        for i, c in enumerate(row):
            word |= int(c) << (i * bits)
        beats.append(word)
    return beats


def unpack(beats, spec: StreamSpec) -> np.ndarray:
    """List of beats -> frames ``(frames, *spec.shape)`` of values."""
    bits, fold = spec.dtype.bits, spec.fold
    mask = (1 << bits) - 1
    codes = np.empty((len(beats), fold), dtype=np.int64)
    for b, word in enumerate(beats):
        word = int(word)
        for i in range(fold):
            codes[b, i] = (word >> (i * bits)) & mask
    values = spec.dtype.decode(codes)
    return values.reshape((-1,) + tuple(spec.shape))
