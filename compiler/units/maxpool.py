"""Streaming max-pool (kind ``maxpool``) over ``kernel`` windows with ``stride``, no padding.

``pe`` channels per beat; on bipolar data the max is an OR of the element bits. Hardware:
:mod:`streamfold.hw.maxpool` (two window reductions: along the row, then across rows).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..datatypes import DataType, StreamSpec
from ..memory import MemSpec, pool_phases
from . import pooling
from .base import ColumnStep, UnitKind, conv_out


@dataclass
class MaxPoolUnit(pooling.ChannelFolded):
    """Max-pool (module docstring)."""

    kind: ClassVar[str] = "maxpool"
    #: the window reduction (:mod:`streamfold.hw.window_reduce`)
    reduce_op: ClassVar[str] = "max"
    name: str
    in_shape: tuple
    dtype: DataType
    kernel: tuple = (2, 2)
    stride: tuple = (2, 2)
    pe: int = 1
    source: str = ""

    @property
    def out_hw(self) -> tuple[int, int]:
        h, w, _ = self.in_shape
        return conv_out(h, self.kernel[0], self.stride[0], 0, 0), \
            conv_out(w, self.kernel[1], self.stride[1], 0, 0)

    @property
    def in_stream(self) -> StreamSpec:
        return StreamSpec(tuple(self.in_shape), self.dtype, self.pe)

    @property
    def out_dtype(self) -> DataType:
        return self.stage_dtypes()[-1]

    @property
    def out_stream(self) -> StreamSpec:
        return StreamSpec(self.out_hw + (self.in_shape[2],), self.out_dtype, self.pe)

    def stage_dtypes(self) -> tuple:
        """Element types of the input, of the row stage's output and of the column stage's
        output (the unit's output); a max keeps the input's type."""
        return (self.dtype, self.dtype, self.dtype)

    def reduce_stages(self) -> list:
        h, w, c = self.in_shape
        cf = c // self.pe
        (kh, kw), (sh, sw) = self.kernel, self.stride
        _oh, ow = self.out_hw
        st = []
        if (kw, sw) != (1, 1):
            st.append((w, kw, sw, cf))
        if (kh, sh) != (1, 1):
            st.append((h, kh, sh, ow * cf))
        return st

    def partial_memories(self) -> list[MemSpec]:
        """Pixel partials (``ceil(kw/sw)`` banks of ``C/pe`` words; registers when ``C/pe == 1``)
        and row partials (``ceil(kh/sh)`` banks of ``OW*C/pe`` words)."""
        h, w, c = self.in_shape
        cf = c // self.pe
        _, d1, d2 = self.stage_dtypes()
        _oh, ow = self.out_hw
        mems = []
        if cf > 1:
            mems += [MemSpec(f"col_partial{i}", cf, self.pe * d1.bits, "sdp")
                     for i in range(pool_phases(self.kernel[1], self.stride[1]))]
        if ow * cf > 1:
            mems += [MemSpec(f"row_partial{i}", ow * cf, self.pe * d2.bits, "sdp")
                     for i in range(pool_phases(self.kernel[0], self.stride[0]))]
        return mems


def reference(u: MaxPoolUnit, x: np.ndarray) -> np.ndarray:
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


def column_step(u: MaxPoolUnit) -> ColumnStep:
    return ColumnStep(u.name, int(u.kernel[1]), int(u.stride[1]), 0, 0)


def for_strip(u: MaxPoolUnit, width: int) -> MaxPoolUnit:
    h, _, c = u.in_shape
    return u.replace(in_shape=(h, int(width), c))


KIND = UnitKind(
    name="maxpool", ir=MaxPoolUnit, reference=reference, cycles=pooling.cycles,
    hardware="streamfold.hw.maxpool:MaxPoolHW",
    timeline=pooling.timeline, latest=pooling.latest, memories=MaxPoolUnit.partial_memories,
    line_buffer=True, features=pooling.features, feature_names=pooling.FEATURE_NAMES,
    default_coef=pooling.DEFAULT_COEF, column_step=column_step, for_strip=for_strip,
)
